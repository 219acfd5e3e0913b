"""Device facts: what sysfs (and udev, when present) say about each device under a path.

The facts are kept apart from their interpretation so a machine's facts can be saved
(`fsyncprobe device --snapshot`), attached to a bug report, and classified anywhere
(`--from-snapshot`). The format is shared/DESIGN.md's "Device facts snapshot"; keys we add beyond
it (`stacks`, `layers`, `filesystems`, `udev`, `warnings`, `source`) are ignored by readers that do not
know them, as the format allows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from fsyncprobe.device.types import MountInfo
from fsyncprobe.errors import InputError

SNAPSHOT_VERSION = 1
SYS = "/sys"

# Attributes worth keeping, relative to a device's sysfs directory. A whitelist, not every file:
# some sysfs attributes are write-only, binary or slow to read (e.g. usb `descriptors`), and a
# snapshot should stay readable in a bug report.
_ATTRIBUTES = (
    "partition", "removable", "ro", "size",
    "queue/rotational", "queue/write_cache", "queue/fua", "queue/logical_block_size",
    "loop/backing_file", "dm/name", "dm/uuid", "md/level", "md/raid_disks",
    "vendor", "model", "rev", "type", "transport", "state", "subsysnqn", "cntrltype",
    "idVendor", "idProduct", "manufacturer", "product", "speed", "name", "serial",
    "device/type", "device/name",
    # SAS HBAs (mpt3sas, drivers/scsi/mpt3sas/mpt3sas_scsih.c) put the target's SAS address on
    # the scsi_device even when no sas_transport ancestor is visible (RAID-mode HBAs).
    "sas_address",
)


@dataclass(frozen=True)
class Node:
    """One device on a chain: a block device or one of its sysfs ancestors."""

    sys_name: str
    """Last component of its sysfs path (`sda`, `0:0:0:0`, `usb2`, `0000:00:17.0`)."""
    subsystem: str | None
    """Kernel subsystem (`block`, `scsi`, `usb`, `pci`, `mmc`, `virtio`...), None when it has none."""
    devtype: str | None
    """`DEVTYPE` from its uevent (`disk`, `partition`, `usb_device`...)."""
    driver: str | None
    """Bound driver (`sd`, `ahci`, `virtio_blk`, `usb-storage`...)."""
    attributes: dict[str, str] = field(default_factory=dict)
    """Selected sysfs attribute values, by path relative to the device's directory."""
    properties: dict[str, str] = field(default_factory=dict)
    """udev properties (`ID_BUS`, `ID_MODEL`...), or only the uevent keys when udev is absent."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the classifier needs about one path."""

    path: str
    """The path examined."""
    mount: MountInfo
    """The mount holding it."""
    chains: tuple[tuple[Node, ...], ...]
    """One chain per physical block leaf, from the lowest block device up to the root."""
    stacks: tuple[tuple[str, ...], ...] = ()
    """Per chain: the block devices from the mounted one down to the leaf (`dm-0`, `sda2`)."""
    filesystems: tuple[MountInfo, ...] = ()
    """Leaves that are filesystems, not block devices: a tmpfs or NFS reached through the stack
    (an overlayfs upperdir, a loop file on tmpfs), or the mount itself."""
    udev: bool = False
    """Whether udev properties were available when the facts were collected."""
    warnings: tuple[str, ...] = ()
    """What could not be resolved."""
    layers: tuple[tuple[Node, ...], ...] = ()
    """Per chain: the block devices of its stack that are not on the chain (a loop device and the
    partition on it, a device-mapper or md device), mounted one first, each as its own node with its
    attributes (`loop/backing_file`, `dm/name`, `md/level`) and udev properties; empty when not known."""


def read_attribute(path: str) -> str | None:
    """A sysfs attribute's value, stripped; None when it cannot be read (absent, or a device
    that vanished meanwhile)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _uevent(directory: str) -> dict[str, str]:
    text = read_attribute(os.path.join(directory, "uevent")) or ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _basename_of_link(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _udev_context() -> Any:
    """A pyudev context when libudev and its database are usable, else None.

    Containers and minimal VMs (this project's CI machines among them) have no /run/udev/data:
    then pyudev would return devices without properties, so we say "sysfs only" instead.
    """
    if not os.path.isdir("/run/udev/data"):
        return None
    try:
        import pyudev

        return pyudev.Context()
    except Exception:  # ImportError, or libudev missing (pyudev raises ImportError/OSError)
        return None


def collect_node(directory: str, context: Any = None) -> Node:
    """The facts of one sysfs device directory."""
    attributes = {}
    for name in _ATTRIBUTES:
        value = read_attribute(os.path.join(directory, name))
        if value is not None and value != "":
            attributes[name] = value
    properties = _uevent(directory)
    if context is not None:
        try:
            import pyudev

            dev = pyudev.Devices.from_sys_path(context, directory)
            # Only a device udev has processed has a database record (/run/udev/data, with
            # USEC_INITIALIZED); for any other pyudev would only repeat the uevent keys.
            if dev.is_initialized:
                properties.update({k: str(v) for k, v in dev.properties.items()})
        except Exception:  # a device that vanished, or one udev does not know
            pass
    return Node(
        sys_name=os.path.basename(directory),
        subsystem=_basename_of_link(os.path.join(directory, "subsystem")),
        devtype=properties.get("DEVTYPE"),
        driver=_basename_of_link(os.path.join(directory, "driver")),
        attributes=attributes,
        properties=properties,
    )


def has_udev_record(chain: tuple[Node, ...]) -> bool:
    """Whether udev had processed any device of the chain (its database record gives USEC_INITIALIZED)."""
    return any("USEC_INITIALIZED" in n.properties for n in chain)


def collect_chain(block_name: str, context: Any = None, sys_root: str = SYS) -> tuple[Node, ...]:
    """A block device and its ancestors, walked up the sysfs device tree as `udevadm info -a` does.

    Only directories with a `uevent` file are devices; the others (`block/`, `host0/` glue) are
    skipped, as udevadm skips them.
    """
    real = os.path.realpath(os.path.join(sys_root, "class", "block", block_name))
    devices_root = os.path.join(sys_root, "devices")
    chain = []
    d = real
    while d.startswith(devices_root + "/"):
        if os.path.exists(os.path.join(d, "uevent")):
            chain.append(collect_node(d, context))
        d = os.path.dirname(d)
    return tuple(chain)


# --- snapshot file format -------------------------------------------------------------------


def _node_json(n: Node) -> dict[str, Any]:
    return {"sys_name": n.sys_name, "subsystem": n.subsystem, "devtype": n.devtype, "driver": n.driver,
            "attributes": dict(n.attributes), "properties": dict(n.properties)}


def _node_from(raw: Any, where: str) -> Node:
    return Node(
        sys_name=_need(raw, "sys_name", str, where),
        subsystem=_need(raw, "subsystem", str, where, optional=True),
        devtype=_need(raw, "devtype", str, where, optional=True),
        driver=_need(raw, "driver", str, where, optional=True),
        attributes=_str_dict(raw.get("attributes"), where + ".attributes"),
        properties=_str_dict(raw.get("properties"), where + ".properties"),
    )


def snapshot_to_json(s: Snapshot) -> dict[str, Any]:
    """The documented JSON form."""

    def mount(m: MountInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"mountpoint": m.mountpoint, "fstype": m.fstype, "source": m.source}
        if m.major_minor is not None:
            out["major_minor"] = m.major_minor
        return out

    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "path": s.path,
        "mount": mount(s.mount),
        "chains": [[_node_json(n) for n in chain] for chain in s.chains],
        "stacks": [list(st) for st in s.stacks],
        "filesystems": [mount(m) for m in s.filesystems],
        "udev": s.udev,
        "warnings": list(s.warnings),
        "layers": [[_node_json(n) for n in layer] for layer in s.layers],
    }


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object")
    if key not in obj:
        if optional:
            return None
        raise InputError(f"{where}: missing key '{key}'")
    value = obj[key]
    if optional and value is None:
        return None
    if not isinstance(value, kind):
        raise InputError(f"{where}.{key}: expected {getattr(kind, '__name__', 'a value of another type')}")
    return value


def _str_dict(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected an object of strings")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _mount_from(obj: Any, where: str) -> MountInfo:
    return MountInfo(
        mountpoint=_need(obj, "mountpoint", str, where),
        fstype=_need(obj, "fstype", str, where),
        source=_need(obj, "source", str, where, optional=True) or "",
        major_minor=_need(obj, "major_minor", str, where, optional=True),
    )


def snapshot_from_json(data: Any) -> Snapshot:
    """Validate and load a snapshot (InputError naming the key on anything malformed)."""
    where = "snapshot"
    version = _need(data, "snapshot_version", int, where)
    if version != SNAPSHOT_VERSION:
        raise InputError(f"snapshot_version {version} is not supported (this fsyncprobe reads {SNAPSHOT_VERSION})")
    chains = []
    for i, raw_chain in enumerate(_need(data, "chains", list, where)):
        if not isinstance(raw_chain, list) or not raw_chain:
            raise InputError(f"snapshot.chains[{i}]: expected a non-empty list of devices")
        chains.append(tuple(_node_from(raw, f"snapshot.chains[{i}][{j}]") for j, raw in enumerate(raw_chain)))
    stacks_raw = data.get("stacks") or []
    if not isinstance(stacks_raw, list) or not all(isinstance(s, list) for s in stacks_raw):
        raise InputError("snapshot.stacks: expected a list of lists of device names")
    fs_raw = data.get("filesystems") or []
    if not isinstance(fs_raw, list):
        raise InputError("snapshot.filesystems: expected a list")
    layers_raw = data.get("layers") or []
    if not isinstance(layers_raw, list) or not all(isinstance(layer, list) for layer in layers_raw):
        raise InputError("snapshot.layers: expected a list of lists of devices")
    layers = tuple(tuple(_node_from(raw, f"snapshot.layers[{i}][{j}]") for j, raw in enumerate(layer))
                   for i, layer in enumerate(layers_raw))
    warnings_raw = data.get("warnings") or []
    if not isinstance(warnings_raw, list):
        raise InputError("snapshot.warnings: expected a list of strings")
    return Snapshot(
        path=_need(data, "path", str, where),
        mount=_mount_from(_need(data, "mount", dict, where), "snapshot.mount"),
        chains=tuple(chains),
        stacks=tuple(tuple(str(n) for n in s) for s in stacks_raw),
        filesystems=tuple(_mount_from(m, f"snapshot.filesystems[{i}]") for i, m in enumerate(fs_raw)),
        # The documented format has no `udev` key; a snapshot that records udev properties had them.
        udev=bool(data["udev"]) if "udev" in data else any(n.properties for c in chains for n in c),
        warnings=tuple(str(w) for w in warnings_raw),
        layers=layers,
    )


def load_snapshot(file: str) -> Snapshot:
    """Read a snapshot file; any problem is an InputError naming the file (exit 2)."""
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: not a valid snapshot: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read snapshot: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return snapshot_from_json(data)
    except InputError as exc:
        raise InputError(f"{file}: {exc}") from None
