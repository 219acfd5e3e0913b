"""The report: frozen dataclasses that every command produces and every renderer reads.

`schema_version` changes when a field changes meaning or disappears; new optional fields do not
change it. The JSON form is `serialize.to_jsonable(report)`; the JSON Schema shipped in
`fsyncprobe/schema/` describes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fsyncprobe.device.model import DeviceReport
from fsyncprobe.histogram import Histogram
from fsyncprobe.ring_model import ModelReport
from fsyncprobe.verdict_model import Verdict

SCHEMA_VERSION = 1


class Workload(str, Enum):
    """What one measured operation is (shared/DESIGN.md, "Workloads")."""

    PVEPERF = "pveperf"
    OVERWRITE = "overwrite"
    APPEND = "append"
    SQLITE = "sqlite"


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
    """Bytes written per operation (`pveperf` always writes 4,001)."""
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
class LatencySummary:
    """Statistics of a latency distribution, in nanoseconds (percentiles within 0.4 %)."""

    count: int
    """Number of samples."""
    mean_ns: float
    """Arithmetic mean (exact)."""
    stddev_ns: float
    """Population standard deviation (exact)."""
    min_ns: int
    """Smallest sample (exact)."""
    p50_ns: int
    """Median."""
    p90_ns: int
    """90th percentile."""
    p99_ns: int
    """99th percentile."""
    p999_ns: int
    """99.9th percentile."""
    max_ns: int
    """Largest sample (exact)."""


@dataclass(frozen=True)
class SavedHistogram:
    """A histogram in a report, so `model` and `cluster` can reuse the whole distribution."""

    buckets: tuple[tuple[int, int], ...]
    """(bucket index, count) for non-empty buckets; see `histogram.bucket_bounds`."""
    sum_ns: int
    """Exact sum of all samples."""
    min_ns: int
    """Exact smallest sample."""
    max_ns: int
    """Exact largest sample."""
    sub_bucket_bits: int = 7
    """Resolution the buckets were made with (`histogram.SUB_BITS`)."""
    sum_squares_ns2: int | None = None
    """Exact sum of squared samples, so the standard deviation survives a round trip."""

    @classmethod
    def of(cls, h: Histogram) -> SavedHistogram:
        """Freeze a live histogram."""
        return cls(
            buckets=tuple((i, c) for i, c in h.to_sparse()),
            sum_ns=h.sum_value,
            min_ns=max(h.min_value, 0),
            max_ns=h.max_value,
            sum_squares_ns2=h.sum_sq,
        )

    def to_histogram(self) -> Histogram:
        """Rebuild a live histogram (raises ValueError on a bucket out of range)."""
        from fsyncprobe.histogram import SUB_BITS

        if self.sub_bucket_bits != SUB_BITS:
            raise ValueError(f"histogram resolution {self.sub_bucket_bits} bits, expected {SUB_BITS}")
        # No real run holds 2**53 operations (285 years at a million a second). A saved count
        # beyond that is corrupt and would overflow the signed 64-bit counters (OverflowError,
        # a traceback in `model --from-report`; found by tests/test_parsers_property.py).
        total = sum(max(0, count) for _, count in self.buckets)
        if total >= 1 << 53:
            raise ValueError(f"histogram holds {total} samples: not a measured run")
        h = Histogram.from_sparse(self.buckets, total_sum=self.sum_ns, min_value=self.min_ns, max_value=self.max_ns)
        if self.sum_squares_ns2 is not None:
            h.sum_sq = self.sum_squares_ns2
        return h


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


@dataclass(frozen=True)
class SchedProbeResult:
    """How late a sleeping (real-time) thread woke up while the sync workload ran.

    This is what a corosync process on this node would have suffered under this I/O load
    (the mechanism of corosync issue 520). Produced by `fsyncprobe.stallprobe`.
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


@dataclass(frozen=True)
class Report:
    """Everything one fsyncprobe command found."""

    command: str
    """Which command made it (`bench`, `device`, `verdict`, ...)."""
    tool_version: str
    """fsyncprobe version."""
    created_utc: str
    """ISO 8601 time the report was made."""
    hostname: str
    """Node name, so `cluster` can say which node holds a ring back."""
    path: str | None = None
    """The path examined."""
    benches: tuple[BenchResult, ...] = ()
    """Measured workloads."""
    device: DeviceReport | None = None
    """What holds the path."""
    model: ModelReport | None = None
    """Token-ring consequences of the measurements (`fsyncprobe.ring`; None when not modelled)."""
    warnings: tuple[str, ...] = ()
    """Actionable warnings about the run itself."""
    verdict: Verdict | None = None
    """PASS/WARN/FAIL and its findings (`verdict`, `cluster`; None for the other commands)."""
    schema_version: int = SCHEMA_VERSION
    """Version of this format."""
