"""Reports built directly, without a disk: the shared builders of the pure tests (rules, renderers).

Each builds what a real run would report, with the figures a test names and plausible ones for
the rest; the histogram holds one sample, which is all the rules read of it.
"""

from __future__ import annotations

from dataclasses import replace

from fsyncprobe.device.types import Confidence, DeviceClass, DeviceReport, LeafDevice, MountInfo
from fsyncprobe.measure.types import (
    BenchParams,
    BenchResult,
    DeviceWrites,
    PacingResult,
    StallSummary,
    SyncMethod,
    Workload,
)
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import LatencySummary, SavedHistogram

MS = 1_000_000


def bench(workload: Workload = Workload.PVEPERF, ops_per_s: float = 2000.0, p99_ns: int = 2 * MS,
          fstype: str = "ext4", writes: int | None = None, seconds: float = 4.0, p999_ns: int | None = None,
          ) -> BenchResult:
    """One measured workload with these figures (`writes`: requests the mounted device saw)."""
    ops = int(ops_per_s * seconds)
    h = Histogram()
    h.record(p99_ns // 4)
    lat = LatencySummary(count=ops, mean_ns=p99_ns / 4, stddev_ns=0.0, min_ns=p99_ns // 8, p50_ns=p99_ns // 4,
                         p90_ns=p99_ns // 2, p99_ns=p99_ns, p999_ns=p999_ns or p99_ns * 2,
                         max_ns=(p999_ns or p99_ns * 2) * 2)
    dw = () if writes is None else (DeviceWrites(device="sdz", role="mounted", write_bytes=writes * 4096,
                                                 write_ops=writes, write_cache="write back", fua=False),)
    params = BenchParams(path="/x", workload=workload, sync=SyncMethod.FSYNC, block_size_bytes=4096,
                         file_size_bytes=16 << 20, duration_ns=int(seconds * 1e9), ops_limit=None,
                         warmup_ns=0, stall_threshold_ns=100 * MS)
    return BenchResult(params=params, mountpoint="/", fstype=fstype, ops=ops, elapsed_ns=int(seconds * 1e9),
                       ops_per_s=ops_per_s, latency=lat, histogram=SavedHistogram.of(h), timeline=(),
                       stalls=StallSummary(threshold_ns=100 * MS, count=0, longest_ns=lat.max_ns),
                       device_writes=dw, warmup_ops=0)


def device(cls: DeviceClass, write_cache: str | None = "write back", name: str = "sdz") -> DeviceReport:
    """A path on one leaf device of class `cls`."""
    leaf = LeafDevice(name=name, device_class=cls, confidence=Confidence.HIGH, evidence=("test",),
                      write_cache=write_cache, rotational=cls is DeviceClass.HDD)
    return DeviceReport(path="/x", mount=MountInfo(mountpoint="/", fstype="ext4", source=f"/dev/{name}"),
                        device_class=cls, confidence=Confidence.HIGH, leaves=(leaf,))


def pmx_benches(rate: float = 2000.0, p99_ns: int = 2 * MS, commit_p999_ns: int = 5 * MS,
                writes: int | None = None) -> tuple[BenchResult, ...]:
    """What the pmxcfs profile measures: a sqlite run, a pveperf-durable run at `rate` ops/s, and its paced
    run (isolated syncs at 5/s, as fast as the pveperf-durable run's median)."""
    return (bench(Workload.SQLITE, 5000.0, MS, p999_ns=commit_p999_ns),
            bench(Workload.PVEPERF_DURABLE, rate, p99_ns, writes=writes),
            paced(bench(Workload.OVERWRITE, 5.0, p99_ns, seconds=3.0), "paced", 5.0))


def paced(b: BenchResult, label: str, rate_per_s: float, late_ops: int = 0) -> BenchResult:
    """`b` as a profile's named run paced at `rate_per_s` (`late_ops` of them started late)."""
    lag = LatencySummary(count=b.ops, mean_ns=100_000.0, stddev_ns=0.0, min_ns=50_000, p50_ns=100_000,
                         p90_ns=100_000, p99_ns=100_000, p999_ns=100_000, max_ns=100_000 + late_ops * 10 * MS)
    h = Histogram()
    h.record(lag.p50_ns)
    pacing = PacingResult(rate_per_s=rate_per_s, interval_ns=round(1e9 / rate_per_s), scheduled_ops=b.ops,
                          late_ops=late_ops, lag=lag, lag_histogram=SavedHistogram.of(h))
    return replace(b, params=replace(b.params, label=label, rate_per_s=rate_per_s), pacing=pacing)
