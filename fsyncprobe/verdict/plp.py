"""Flushes per sync and power-loss protection, as far as software can tell (issue 13). Pure.

Primary sources, for what the kernel and the drive promise:
- Documentation/block/writeback_cache_control.rst: "Many storage devices, especially in the consumer
  market, come with volatile write back caches. That means the devices signal I/O completion to the
  operating system before data actually has hit the non-volatile storage", so a data integrity
  operation (fsync) must force it out with a flush (REQ_PREFLUSH); "For devices that do not support
  volatile write caches ... the block layer completes empty REQ_PREFLUSH requests before entering the
  driver" (none reaches the device).
- Documentation/ABI/stable/sysfs-block, queue/write_cache: reads "write back" or "write through";
  writing it "can change the kernels view of the device, but it doesn't alter the device state", and
  "write through" on a write-back device "will also eliminate cache flushes issued by the kernel".
- NVM Express Base Specification, Identify Controller byte 525 (VWC), bit 0: a volatile write cache is
  present; "If a volatile write cache is not present, Flush commands complete successfully and have no
  effect". drivers/nvme/host/core.c sets BLK_FEAT_WRITE_CACHE only when the controller reports
  NVME_CTRL_VWC_PRESENT, so for NVMe queue/write_cache mirrors that bit.

A drive with power-loss protection (PLP: capacitors that let it write its cache to flash when the
power goes) can acknowledge a flush at once, or declare no volatile cache at all; a drive without
PLP must write its cache to flash on every flush, which takes milliseconds. The class, the cache
mode the kernel sees, whether flushes reach the device and how long they take therefore give a
hint, never proof: a drive that ignores flushes looks like one with PLP, and only cutting the power
while it syncs tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fsyncprobe.device.types import DeviceClass, LeafDevice
from fsyncprobe.measure.types import BenchResult, DeviceWrites
from fsyncprobe.units import format_duration_ns

PLP_FLUSH_MAX_NS = 100_000
"""A flush answered within 100 us is faster than a drive can write a volatile cache to flash:
consistent with PLP. Measured, one sync at a time, in Mark Callaghan's "SSDs, power loss protection
and fsync latency" (Small Datum, 7 January 2026, fio with O_DIRECT and an fsync or fdatasync per
write: http://smalldatum.blogspot.com/2026/01/ssds-power-loss-protection-and-fsync.html): data-centre
SSDs with PLP (Intel D7-P5520, Samsung PM9A3) synced in microseconds to tens of microseconds. The
drive makers' datasheets give write latencies, not flush latencies; their side is the VWC bit above
(no volatile cache: a flush has nothing to do)."""

NO_PLP_FLUSH_MIN_NS = 1_000_000
"""A flush that takes 1 ms or more is a drive writing its volatile cache to flash on every sync: the
same post found consumer SSDs without PLP (Samsung 990 Pro, Crucial T500) slow to sync while their
raw write throughput stayed high ("For an SSD without power loss protection, writes are fast but fsync
is slow"), up to milliseconds per sync. A consumer drive that syncs in 0.1-1 ms (such figures are
reported for the 990 Pro with small writes) falls between the two bounds, where the hint says
inconclusive: the bounds are kept apart so that neither claim is made on a borderline figure."""

NO_PLP_SYNC_RATE_MAX = 1_000.0
"""Without flush counters (Linux < 5.5): a write-back SSD that makes fewer than 1,000 syncs a second
one at a time spends 1 ms or more per sync, the consumer-class figure above."""

FLUSHES_PER_SYNC_WARN = 0.5
"""A write-back device that received fewer flushes than half the syncs: something between the
filesystem and the device drops them (a `nobarrier`/`barrier=0` mount, a layer that acknowledges
flushes itself)."""

FLUSHES_PER_SYNC_FAIL = 0.1
"""Fewer than one flush per ten syncs: the syncs are not reaching the medium."""

PROOF = "only a power-cut test (pulling the power while the drive syncs, then checking what survived) proves it"


class PlpHint(str, Enum):
    """What the evidence says about power-loss protection."""

    CONSISTENT = "consistent-with-plp"
    NO_PLP = "no-plp"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class PlpAssessment:
    """The hint for one leaf device and the evidence it rests on."""

    device: str
    """Kernel name of the leaf."""
    hint: PlpHint
    """The hint."""
    summary: str
    """One line: `write-through nvme with no flushes sent: consistent with PLP`."""
    evidence: tuple[str, ...]
    """Class, cache mode, flushes per sync, flush latency, sync rate: what was seen."""


def flushes_per_sync(d: DeviceWrites, syncs: int | None) -> float | None:
    """Flush requests per sync; `syncs` is None when the workload does not sync on every operation
    (rules.SYNC_PER_OP_WORKLOADS says which do)."""
    if d.flush_ops is None or not syncs:
        return None
    return d.flush_ops / syncs


def mean_flush_ns(d: DeviceWrites) -> float | None:
    """Mean time of one flush (None when none were counted)."""
    if not d.flush_ops or d.flush_time_ns is None:
        return None
    return d.flush_time_ns / d.flush_ops


def flush_text(d: DeviceWrites, syncs: int | None) -> str | None:
    """`1.00 flushes per sync, mean 0.35 ms` / `no flushes: the device says write through` for a
    report row (None when the kernel did not count them)."""
    if d.flush_ops is None:
        return None
    through = (d.write_cache or "").strip() == "write through"
    if d.flush_ops == 0:
        return "no flushes" + (": the device says write through, so the kernel sends none" if through else "")
    per = flushes_per_sync(d, syncs)
    mean = mean_flush_ns(d)
    text = f"{d.flush_ops:,} flushes" + (f" ({per:.2f} per sync)" if per is not None else "")
    return text + (f", mean {format_duration_ns(mean)}" if mean is not None else "")


_FLASH = (DeviceClass.NVME, DeviceClass.SATA_SSD, DeviceClass.SAS_SSD)
_NOT_A_DRIVE = {
    DeviceClass.VIRTUAL: "a virtual disk: the guest sees no drive; whether a flush is durable is the host's business "
                         "(the hypervisor's cache mode and the host's drive)",
    DeviceClass.NETWORK_BLOCK: "a network block device: whether a flush is durable is the storage system's business",
    DeviceClass.NETWORK_FS: "a network filesystem: whether a sync is durable is the server's business",
    DeviceClass.RAM: "RAM: nothing survives a power cut",
    DeviceClass.HDD: "a spinning disk: PLP is an SSD feature; an HDD's flush waits for the platter "
                     "(see the impossible-rate rule)",
}


def assess(leaf: LeafDevice, writes: DeviceWrites | None, b: BenchResult, syncs: int | None) -> PlpAssessment:
    """The PLP hint for one leaf, from its class, cache mode, the flushes it received during `b`
    and their latency (or, without flush counters, the sync rate); `syncs` as for `flushes_per_sync`."""
    cls = leaf.device_class
    wc = (leaf.write_cache or (writes.write_cache if writes else None) or "").strip() or None
    per = flushes_per_sync(writes, syncs) if writes else None
    mean = mean_flush_ns(writes) if writes else None
    ev = [f"class {cls.value}", f"queue/write_cache {wc or 'unknown'}"]
    if writes is not None and writes.flush_ops is not None:
        ev.append(f"{writes.flush_ops:,} flushes during {b.device_ops:,} {b.params.workload.value} operations"
                  + (f" ({per:.2f} per sync)" if per is not None else ""))
    if mean is not None:
        ev.append(f"mean flush {format_duration_ns(mean)}")
    ev.append(f"{b.ops_per_s:,.0f} syncs/s ({b.params.workload.value}, one at a time)")
    ev.append(PROOF)

    def out(hint: PlpHint, summary: str) -> PlpAssessment:
        return PlpAssessment(device=leaf.name, hint=hint, summary=summary, evidence=tuple(ev))

    if cls in _NOT_A_DRIVE:
        return out(PlpHint.NOT_APPLICABLE, _NOT_A_DRIVE[cls])
    if cls in (DeviceClass.USB, DeviceClass.SD):
        return out(PlpHint.NO_PLP, f"{cls.value} storage: no power-loss protection whatever its cache mode says")
    if cls not in _FLASH:
        return out(PlpHint.INCONCLUSIVE, f"{cls.value}: the device's kind is unknown, so nothing can be said")
    what = f"{wc or 'unknown-cache'} {cls.value}"
    if wc == "write through":
        vwc = " (NVMe: the controller reports no volatile write cache)" if cls is DeviceClass.NVME else ""
        sent = "" if writes is None or writes.flush_ops is None else f" with {writes.flush_ops:,} flushes sent"
        return out(PlpHint.CONSISTENT,
                   f"{what}{sent}: the drive declares no volatile cache{vwc}, as drives with PLP do: "
                   "consistent with PLP, unless the cache mode was set by hand")
    if wc != "write back":
        return out(PlpHint.INCONCLUSIVE, f"{what}: the cache mode is unknown")
    if per is not None and per < FLUSHES_PER_SYNC_WARN:
        return out(PlpHint.INCONCLUSIVE, f"{what}: flushes do not reach it ({per:.2f} per sync), so their latency "
                                         "says nothing (see flushes-per-sync)")
    if mean is not None:
        if mean <= PLP_FLUSH_MAX_NS:
            return out(PlpHint.CONSISTENT, f"{what} with {format_duration_ns(mean)} flushes: faster than a volatile "
                                           "cache can be written to flash; consistent with PLP (or a drive that "
                                           "ignores flushes)")
        if mean >= NO_PLP_FLUSH_MIN_NS:
            return out(PlpHint.NO_PLP, f"{what} with {format_duration_ns(mean)} flushes: consumer-class, no sign of "
                                       "PLP (each flush writes a volatile cache to flash)")
        return out(PlpHint.INCONCLUSIVE, f"{what} with {format_duration_ns(mean)} flushes: between the PLP and the "
                                         "consumer-class figures")
    if syncs and b.ops_per_s < NO_PLP_SYNC_RATE_MAX:
        return out(PlpHint.NO_PLP, f"{what} at {b.ops_per_s:,.0f} syncs/s: consumer-class, no PLP")
    return out(PlpHint.INCONCLUSIVE, f"{what}: no flush latency was measured")
