"""The device section of a report (shared/DESIGN.md, "Device classes")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DeviceClass(str, Enum):
    """What kind of storage a leaf is, worst (for cluster state) last in `SEVERITY`."""

    NVME = "nvme"
    SATA_SSD = "sata-ssd"
    SAS_SSD = "sas-ssd"
    HDD = "hdd"
    USB = "usb"
    SD = "sd"
    VIRTUAL = "virtual"
    NETWORK_BLOCK = "network-block"
    NETWORK_FS = "network-fs"
    RAM = "ram"
    UNKNOWN = "unknown"


class Confidence(str, Enum):
    """How sure the classification is, from the strength of the evidence used."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class MountInfo:
    """The mount that holds the path (from /proc/self/mountinfo)."""

    mountpoint: str
    """Where it is mounted."""
    fstype: str
    """Filesystem type."""
    source: str
    """Mount source (`/dev/sda2`, `server:/export`, `tmpfs`)."""
    major_minor: str | None = None
    """Device number of the filesystem as mountinfo gives it (`8:2`); btrfs gives an anonymous one."""


@dataclass(frozen=True)
class LeafDevice:
    """One physical device under the path, classified."""

    name: str
    """Kernel name (`sda`, `nvme0n1`, `vda`) or a description for non-block leaves."""
    device_class: DeviceClass
    """Its class."""
    confidence: Confidence
    """How sure."""
    evidence: tuple[str, ...]
    """The facts the class rests on, strongest first."""
    stack: tuple[str, ...] = ()
    """The devices from the mounted one down to this leaf (`dm-0`, `sda2`, `sda`)."""
    model: str | None = None
    """Model string when known."""
    rotational: bool | None = None
    """`queue/rotational` (weak evidence: virtio and USB bridges report 1 for SSDs)."""
    write_cache: str | None = None
    """`queue/write_cache`: `write back` or `write through`."""
    fua: bool | None = None
    """`queue/fua`."""


@dataclass(frozen=True)
class DeviceReport:
    """What holds a path."""

    path: str
    """The path examined."""
    mount: MountInfo
    """The mount that holds it."""
    device_class: DeviceClass
    """The path's class: the worst leaf's."""
    confidence: Confidence
    """Confidence of that class."""
    leaves: tuple[LeafDevice, ...]
    """Every physical leaf."""
    evidence: tuple[str, ...] = ()
    """Path-level evidence (fstype, stack resolution)."""
    udev: bool = False
    """Whether udev properties were available (else sysfs alone was used)."""
    warnings: tuple[str, ...] = ()
    """What could not be resolved."""
