"""What a measurement is and what it found: the parameters and results of one workload run.

Frozen dataclasses the engine fills and a `Report` carries (`Report.benches`); the statistics
types they hold (`LatencySummary`, `SavedHistogram`) are `fsyncprobe.stats.summary`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fsyncprobe.stats.summary import LatencySummary, SavedHistogram


class Workload(str, Enum):
    """What one measured operation is (shared/DESIGN.md, "Workloads")."""

    PVEPERF = "pveperf"
    PVEPERF_DURABLE = "pveperf-durable"
    OVERWRITE = "overwrite"
    APPEND = "append"
    SQLITE = "sqlite"


PVEPERF_WORKLOADS = frozenset({Workload.PVEPERF, Workload.PVEPERF_DURABLE})
"""pveperf's loop (300 rotating files, 4,001 bytes each): `pveperf` in pveperf's own call order (the
sync before the write, so the data is never synced), `pveperf-durable` with the write first."""


class SyncMethod(str, Enum):
    """The call that makes a write durable."""

    FSYNC = "fsync"
    FDATASYNC = "fdatasync"
    DSYNC = "dsync"  # open(O_DSYNC): every write is a data sync
    SYNC = "sync"  # open(O_SYNC): every write is a full sync


@dataclass(frozen=True)
class BenchParams:
    """Everything that defines a measurement, so a report says exactly what was run."""

    path: str
    """The path the user named; the workload runs in a private temp dir on its filesystem."""
    workload: Workload
    """What one operation is."""
    sync: SyncMethod
    """The sync call (ignored by `sqlite`, where SQLite decides when to sync)."""
    block_size_bytes: int
    """Bytes written per operation (`pveperf` and `pveperf-durable` write 4,001 unless told otherwise)."""
    file_size_bytes: int
    """Size of the file `overwrite` rotates within and `append` wraps at."""
    duration_ns: int | None
    """Measured time asked for (None when `ops_limit` bounds the run)."""
    ops_limit: int | None
    """Operation count asked for (None when `duration_ns` bounds the run)."""
    warmup_ns: int
    """Uncounted warm-up time before measuring."""
    stall_threshold_ns: int
    """An operation slower than this counts as a stall."""


@dataclass(frozen=True)
class TimelineSecond:
    """One second of the measured run."""

    second: int
    """Seconds since the measurement started (0-based)."""
    ops: int
    """Operations completed in this second."""
    max_latency_ns: int
    """Slowest operation completed in this second."""


@dataclass(frozen=True)
class StallSummary:
    """Operations slower than a threshold."""

    threshold_ns: int
    """An operation slower than this is a stall."""
    count: int
    """How many operations were stalls."""
    longest_ns: int
    """The slowest operation (same as the max latency)."""


@dataclass(frozen=True)
class DeviceWrites:
    """What one block device really did during the measurement (kernel counters)."""

    device: str
    """Kernel name (`sda`, `loop3`, `dm-0`)."""
    role: str
    """`mounted` for the device the filesystem sits on, `leaf` for a physical device under it."""
    write_bytes: int
    """Bytes the block layer wrote to it during the run (/proc/diskstats via psutil)."""
    write_ops: int
    """Write requests completed during the run."""
    write_cache: str | None
    """`queue/write_cache`: `write back` (volatile cache, flushes needed) or `write through`."""
    fua: bool | None
    """`queue/fua`: whether the device takes Force Unit Access writes."""
    flush_ops: int | None = None
    """Flush requests the device completed during the run (/proc/diskstats column 19,
    Documentation/admin-guide/iostats.rst, Linux >= 5.5); None when the kernel does not count them or
    the device is a partition (the block layer counts flushes on the whole disk)."""
    flush_time_ns: int | None = None
    """Time the device spent on those flushes (/proc/diskstats column 20, kept in whole milliseconds
    by the kernel, so the run's total is within 1 ms); None when `flush_ops` is."""


@dataclass(frozen=True)
class SchedProbeResult:
    """How late a sleeping (real-time) thread woke up while the sync workload ran.

    This is what a corosync process on this node would have suffered under this I/O load
    (the mechanism of corosync issue 520). Produced by `fsyncprobe.measure.schedprobe`.
    """

    policy: str
    """Scheduling policy the probe ran with (`SCHED_RR` as root, `SCHED_OTHER` otherwise)."""
    priority: int
    """Real-time priority (0 for SCHED_OTHER)."""
    interval_ns: int
    """How long the probe asked to sleep each time."""
    lateness: LatencySummary
    """Wake-up delay beyond `interval_ns`."""
    histogram: SavedHistogram
    """The whole lateness distribution."""
    duration_ns: int
    """How long the probe ran."""
    note: str | None = None
    """Why it ran without real-time priority, when it did."""


@dataclass(frozen=True)
class RingIdStoreResult:
    """How long corosync's ring-id write took beside the sync workload: `corosync_ring_id_store`
    (exec/main.c: creat, an 8-byte write, close, in corosync's main thread at every new membership)
    repeated on files of the same kind in a private temp dir on the filesystem holding corosync's
    state dir. Produced by `fsyncprobe.measure.ringid`."""

    state_dir: str
    """The corosync state dir whose filesystem was measured (the temp dir was made inside it)."""
    state_dir_source: str
    """Where that path came from: corosync.conf `system.state_dir`, corosync's default, or the measured path."""
    mountpoint: str
    """Mount point of the filesystem holding the state dir."""
    fstype: str
    """Its filesystem type."""
    same_filesystem: bool
    """True when it is the filesystem the sync workload loaded."""
    rate_per_s: float
    """Writes asked for per second."""
    policy: str
    """Scheduling policy the writer ran with (`SCHED_RR` like corosync as root, else `SCHED_OTHER`)."""
    latency: LatencySummary
    """Per-write latency (open + write + close)."""
    histogram: SavedHistogram
    """The whole latency distribution."""
    duration_ns: int
    """How long the writer ran."""
    note: str | None = None
    """What the reader must know (no real-time priority, a failed write)."""


@dataclass(frozen=True)
class BenchResult:
    """One measured workload."""

    params: BenchParams
    """What was run."""
    mountpoint: str
    """Mount point of the filesystem measured (from /proc/self/mountinfo)."""
    fstype: str
    """Filesystem type (`ext4`, `tmpfs`, ...)."""
    ops: int
    """Operations measured (warm-up excluded)."""
    elapsed_ns: int
    """Wall time of the measured part."""
    ops_per_s: float
    """ops / elapsed."""
    latency: LatencySummary
    """Per-operation latency."""
    histogram: SavedHistogram
    """The whole latency distribution."""
    timeline: tuple[TimelineSecond, ...]
    """Per-second rate and worst latency."""
    stalls: StallSummary
    """Operations over the stall threshold."""
    device_writes: tuple[DeviceWrites, ...]
    """What the block devices under the filesystem wrote meanwhile."""
    warmup_ops: int
    """Operations done in the uncounted warm-up."""
    partial: bool = False
    """True when the run was cut short (signal, error); the figures cover only what ran."""
    partial_reason: str | None = None
    """Why the run is partial."""
    notes: tuple[str, ...] = ()
    """Things the reader must know to read the figures (tmpfs: fsync is a no-op; ...)."""
    sched_probe: SchedProbeResult | None = None
    """Scheduling delays seen beside this workload (None when the probe did not run)."""
    ring_id_store: RingIdStoreResult | None = None
    """corosync's ring-id write timed beside this workload (None when not measured)."""
