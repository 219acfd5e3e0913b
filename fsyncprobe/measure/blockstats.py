"""Block-layer write counters and cache modes of the devices under a filesystem.

The counters are /proc/diskstats (Documentation/admin-guide/iostats.rst) via psutil: sectors
written are always 512-byte units there whatever the device's sector size, and psutil converts.
Comparing them with the bytes the workload wrote exposes a cache that swallows syncs: a device
that acknowledges 1,000 fsyncs a second but writes nothing meanwhile is not making them durable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from fsyncprobe.device.facts import Snapshot
from fsyncprobe.measure.types import DeviceWrites

SYS_CLASS_BLOCK = "/sys/class/block"


@dataclass(frozen=True)
class BlockDevice:
    """A block device whose counters we read."""

    name: str
    """Kernel name."""
    role: str
    """`mounted` or `leaf`."""


@dataclass(frozen=True)
class Counters:
    """Cumulative write counters of one device."""

    write_bytes: int
    write_ops: int


def devices_of(snapshot: Snapshot) -> tuple[BlockDevice, ...]:
    """The device(s) the filesystem sits on, then the physical devices under them, each once
    (none for tmpfs or NFS, whose snapshot has no block stack)."""
    out: dict[str, BlockDevice] = {}
    for stack in snapshot.stacks:
        if stack and stack[0] not in out:
            out[stack[0]] = BlockDevice(name=stack[0], role="mounted")
    for stack in snapshot.stacks:
        if stack and stack[-1] not in out:
            out[stack[-1]] = BlockDevice(name=stack[-1], role="leaf")
    return tuple(out.values())


def read_counters(names: list[str]) -> dict[str, Counters]:
    """Current cumulative counters for `names` (devices the kernel does not list are skipped)."""
    if not names:
        return {}
    try:
        stats = psutil.disk_io_counters(perdisk=True, nowrap=True) or {}
    except (OSError, RuntimeError):
        return {}
    return {
        n: Counters(write_bytes=stats[n].write_bytes, write_ops=stats[n].write_count)
        for n in names
        if n in stats
    }


def queue_attr(name: str, attr: str) -> str | None:
    """A `queue/` attribute of a device; a partition reads its parent disk's queue."""
    base = os.path.join(SYS_CLASS_BLOCK, name)
    for candidate in (base, os.path.dirname(os.path.realpath(base))):
        try:
            with open(os.path.join(candidate, "queue", attr), encoding="ascii") as f:
                return f.read().strip()
        except OSError:
            continue
    return None


def deltas(
    devices: tuple[BlockDevice, ...], before: dict[str, Counters], after: dict[str, Counters]
) -> tuple[DeviceWrites, ...]:
    """What each device wrote between two readings, with its cache mode."""
    out = []
    for d in devices:
        if d.name not in before or d.name not in after:
            continue
        fua = queue_attr(d.name, "fua")
        out.append(
            DeviceWrites(
                device=d.name,
                role=d.role,
                write_bytes=max(0, after[d.name].write_bytes - before[d.name].write_bytes),
                write_ops=max(0, after[d.name].write_ops - before[d.name].write_ops),
                write_cache=queue_attr(d.name, "write_cache"),
                fua=None if fua is None else fua == "1",
            )
        )
    return tuple(out)
