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
class BackgroundWrite:
    """What `--background-write RATE|max` asks for: large buffered writes beside the workload, as a
    vzdump backup onto the system disk does (issue 16); `fsyncprobe.measure.background` runs it."""

    rate_bytes_per_s: int | None
    """Bytes a second the writer aims for (None: `max`, as fast as the kernel lets it)."""


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
    label: str | None = None
    """The run's name when a profile gave one (`[[workload]] name`), so two runs of one workload
    (paced and back to back, with and without a background writer) tell apart; None otherwise."""
    background_write: BackgroundWrite | None = None
    """A backup-like buffered writer beside the workload (`--background-write`); None: none ran."""
    rate_per_s: float | None = None
    """Paced (open-loop) rate: operation k starts at start + k / rate (`--rate`, `--interval`, a
    profile's `rate`/`interval`); None runs operations back to back (closed loop)."""

    @property
    def run_name(self) -> str:
        """What a profile's threshold calls this run: its label, else its workload's name."""
        return self.label or self.workload.value


@dataclass(frozen=True)
class TimelineSecond:
    """One second of the measured run."""

    second: int
    """Seconds since the measurement started (0-based)."""
    ops: int
    """Operations completed in this second."""
    max_latency_ns: int
    """Slowest operation completed in this second."""
    measured_ns: int | None = None
    """How much of this second the figures cover: with the scheduling probe, only its quiet windows
    are counted (`BenchResult.probe_windows`), so the second's rate is `ops / measured_ns`; None:
    the whole second."""


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
    windows: int = 1
    """Stretches of time the probe measured in: its windows beside the workload
    (`BenchResult.probe_windows`); 1 when it ran throughout. `duration_ns` is their sum."""


class WindowKind(str, Enum):
    """What ran beside the workload in one window of the measured run."""

    QUIET = "quiet"  # nothing of ours: the probe paused, setting no timer
    PROBE = "probe"  # the scheduling probe sampling beside the workload


@dataclass(frozen=True)
class Window:
    """One window of the measured run (times from the start of the measurement)."""

    kind: WindowKind
    """`quiet` (the headline figures) or `probe` (the scheduling delay)."""
    start_ns: int
    """When the workload's first operation of the window could start (after the switch)."""
    end_ns: int
    """When the window ended (at a fold of the loop, between two operations)."""
    ops: int
    """Operations completed in it."""
    probe_from_ns: int | None = None
    """Probe windows: when the probe itself began sampling (its own clock reading, the same
    monotonic clock); None when not known."""
    probe_to_ns: int | None = None
    """Probe windows: when it had stopped sampling (read before it answered the pause); None for
    the last window, which ended with the probe."""


@dataclass(frozen=True)
class ProbeWindows:
    """How a run with the scheduling probe was split: the headline figures (`ops`, `latency`,
    `histogram`, `timeline` of the `BenchResult`) come only from the quiet windows, in which the
    probe was paused and set no timer; the scheduling delay only from the probe windows. The
    operations done beside the probe are kept here, apart (issue 16: on a VM the probe's wake-ups
    speed up a sync loop)."""

    quiet_window_ns: int
    """Planned length of a quiet window."""
    probe_window_ns: int
    """Planned length of a probe window (the two alternate, quiet first)."""
    run_ns: int
    """Wall time of the whole measured run: the quiet and probe windows and the switches."""
    quiet_windows: int
    """Quiet windows in the run."""
    quiet_ns: int
    """Their total time: the time base of the headline figures (= `BenchResult.elapsed_ns`)."""
    probe_windows: int
    """Probe windows in the run."""
    probe_ns: int
    """Their total time, as the engine counts it."""
    switch_ns: int
    """Time spent switching (waiting for the probe to pause), in neither kind of window."""
    beside_probe_ops: int
    """Operations done in the probe windows (not in the headline figures)."""
    beside_probe_ops_per_s: float
    """Their rate: beside_probe_ops / probe_ns; against the headline rate it shows how much the
    probe's wake-ups move the workload on this machine."""
    beside_probe_latency: LatencySummary
    """Their latency."""
    beside_probe_histogram: SavedHistogram
    """Their whole latency distribution."""
    windows: tuple[Window, ...] = ()
    """Every window in order."""
    note: str | None = None
    """What went wrong with the windows (the probe stopped answering), when something did."""
    overruns: int = 0
    """Quiet windows an operation held open past their plan by more than `windows.OVERRUN_GRACE_NS`
    (windows switch only between operations), in which the probes were resumed while it ran: on a
    slow disk they sample while a sync blocks, when corosync suffers most. Those operations still
    count in the headline (the probes' wake-ups move a sync by microseconds)."""


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
    """Writes asked for per second of writing: with the probe windows (the default) it writes only
    in those, at a rate raised so that the run as a whole sees about `ringid.RATE_PER_S` a second."""
    policy: str
    """Scheduling policy the writer ran with (`SCHED_RR` like corosync as root, else `SCHED_OTHER`)."""
    latency: LatencySummary
    """Per-write latency (open + write + close)."""
    histogram: SavedHistogram
    """The whole latency distribution."""
    duration_ns: int
    """How long the writer wrote (with the probe windows: their time only)."""
    note: str | None = None
    """What the reader must know (no real-time priority, a failed write)."""


@dataclass(frozen=True)
class BackgroundWriteResult:
    """What the background writer did beside this workload (`fsyncprobe.measure.background`): it ran
    from the start of the warm-up to the end of the measured part, so the measured part meets a page
    cache already holding its dirty data and the kernel's writeback of it under way."""

    rate_asked_bytes_per_s: int | None
    """The rate asked for (None: `max`)."""
    write_size_bytes: int
    """Bytes per write(2) call (buffered, never synced by the writer itself)."""
    cap_bytes: int
    """The file never grew past this: half the free space left after the workload's files, at most
    `background.MAX_CAP_BYTES`; at the cap the writer truncated it and started again."""
    written_bytes: int
    """Bytes written in all."""
    duration_ns: int
    """How long it wrote (warm-up and measured part)."""
    written_bytes_per_s: float
    """`written_bytes / duration`: the rate it achieved."""
    restarts: int
    """Times the file reached the cap (or the disk was full) and was truncated to start again."""
    dirty_max_bytes: int | None
    """Largest `Dirty:` of /proc/meminfo seen meanwhile (the whole system's dirty page cache); None
    when /proc/meminfo could not be read."""
    writeback_max_bytes: int | None
    """Largest `Writeback:` of /proc/meminfo seen meanwhile (pages being written to disk)."""
    dirty_mean_bytes: float | None
    """Mean of `Dirty:` over the samples (about ten a second)."""
    note: str | None = None
    """What the reader must know (a failed write that stopped the writer)."""


@dataclass(frozen=True)
class PacingResult:
    """How an open-loop (paced) run kept its schedule. Operation k was due at start + k / rate; a
    late one does not move the ones after it. Produced by `fsyncprobe.measure.pacing`."""

    rate_per_s: float
    """Operations per second asked for."""
    interval_ns: int
    """1 / rate: the time between two due times (rounded to the nanosecond; due times are computed
    from k, so the rounding never adds up)."""
    scheduled_ops: int
    """Operations due within the measured time (all of `--ops`, or those due before the end of
    `--duration`)."""
    late_ops: int
    """Operations started late because the operation before them was still running at their due
    time: the disk did not keep up with the rate. (A late wake-up of the sleeping loop is lag, not
    a late operation.)"""
    lag: LatencySummary
    """Schedule lag of every started operation: its start minus its due time. On time it is the
    sleep's wake-up lateness (timer slack, scheduling); for late operations it is the backlog.
    Reported apart from the latency, which runs from each operation's own start."""
    lag_histogram: SavedHistogram
    """The whole lag distribution."""


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
    background_write: BackgroundWriteResult | None = None
    """The backup-like writer that ran beside this workload (None when none ran)."""
    pacing: PacingResult | None = None
    """How a paced run kept its schedule (None for a closed-loop run)."""
    probe_windows: ProbeWindows | None = None
    """With the scheduling probe: which windows gave which figure; `ops`, `elapsed_ns`,
    `ops_per_s`, `latency`, `histogram`, `timeline` and `stalls` then cover the quiet windows only
    (None: no probe, the figures cover the whole run)."""

    @property
    def device_ops(self) -> int:
        """Operations the device counters (`device_writes`) cover: the whole run's, those done beside
        the probe included, for ratios such as flushes per sync."""
        return self.ops + (self.probe_windows.beside_probe_ops if self.probe_windows is not None else 0)
