"""Block-layer write and flush counters and cache modes of the devices under a filesystem.

The counters are /proc/diskstats (Documentation/admin-guide/iostats.rst) via psutil: sectors
written are always 512-byte units there whatever the device's sector size, and psutil converts.
Comparing them with the bytes the workload wrote exposes a cache that swallows syncs: a device
that acknowledges 1,000 fsyncs a second but writes nothing meanwhile is not making them durable.

psutil does not read the flush counters, so they are parsed here: columns 19 and 20 of a
/proc/diskstats line (flush requests completed, milliseconds spent flushing; Linux >= 5.5). A
sync that reaches a write-back device arrives as a flush; the block layer sends none to a device
that says `write through` (block/blk-core.c submit_bio_noacct strips REQ_PREFLUSH and completes an
empty flush at once; Documentation/block/writeback_cache_control.rst). Flushes are accounted on
the whole disk (block/blk-flush.c blk_account_io_flush uses disk->part0), never on a partition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from fsyncprobe.device.facts import Snapshot
from fsyncprobe.measure.types import DeviceWrites

SYS_CLASS_BLOCK = "/sys/class/block"
DISKSTATS = "/proc/diskstats"


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
    flush_ops: int | None = None
    flush_time_ms: int | None = None


def parse_flushes(text: str) -> dict[str, tuple[int, int]]:
    """(flush requests, milliseconds flushing) per device from /proc/diskstats text; devices of a
    kernel older than 5.5 (17 or fewer columns) are left out."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 20 and cols[18].isdigit() and cols[19].isdigit():
            out[cols[2]] = (int(cols[18]), int(cols[19]))
    return out


def read_flushes(names: list[str]) -> dict[str, tuple[int, int]]:
    """Current flush counters of the whole disks among `names` (partitions have none of their own)."""
    try:
        with open(DISKSTATS, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    flushes = parse_flushes(text)
    return {n: flushes[n] for n in names if n in flushes and is_whole_disk(n)}


def is_whole_disk(name: str) -> bool:
    """A device with its own request queue (a disk, loop, dm or md device), not a partition."""
    return os.path.isdir(os.path.join(SYS_CLASS_BLOCK, name, "queue"))


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
    flushes = read_flushes(names)
    return {
        n: Counters(write_bytes=stats[n].write_bytes, write_ops=stats[n].write_count,
                    flush_ops=flushes[n][0] if n in flushes else None,
                    flush_time_ms=flushes[n][1] if n in flushes else None)
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
        b, a = before[d.name], after[d.name]
        counted = b.flush_ops is not None and a.flush_ops is not None
        out.append(
            DeviceWrites(
                device=d.name,
                role=d.role,
                write_bytes=max(0, a.write_bytes - b.write_bytes),
                write_ops=max(0, a.write_ops - b.write_ops),
                write_cache=queue_attr(d.name, "write_cache"),
                fua=None if fua is None else fua == "1",
                flush_ops=max(0, (a.flush_ops or 0) - (b.flush_ops or 0)) if counted else None,
                flush_time_ns=max(0, (a.flush_time_ms or 0) - (b.flush_time_ms or 0)) * 1_000_000 if counted else None,
            )
        )
    return tuple(out)


def flush_notes(writes: tuple[DeviceWrites, ...], syncs: int) -> list[str]:
    """What the reader must know when the kernel sent a device no flushes because it says write
    through (Documentation/block/writeback_cache_control.rst): the sync then ends when the write
    completes, and its durability rests on the device's claim that it has no volatile cache."""
    out = []
    for d in writes:
        if syncs > 0 and d.flush_ops == 0 and (d.write_cache or "").strip() == "write through":
            out.append(
                f"the kernel sent no flushes to {d.device} during {syncs:,} syncs: it says its cache is write through "
                "(queue/write_cache), so a sync ends when the write completes and durability rests on that claim; "
                "if the device does keep a volatile cache (a drive that misreports, or write_cache forced by hand), "
                "a power cut loses syncs that were acknowledged"
            )
    return out
