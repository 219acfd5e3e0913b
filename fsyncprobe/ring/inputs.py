"""What the token-ring model takes from a node: its measured distributions, from its benches (a
run's or a saved report's) or from given latencies. The ring knows measurements, not reports:
`fsyncprobe.report` sits above it and holds a `ModelReport`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fsyncprobe.errors import InputError
from fsyncprobe.measure.types import BenchResult, Workload
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram
from fsyncprobe.units import format_seconds
from fsyncprobe.watch.types import SYNC_KINDS, CallKind, WatchReport


@dataclass(frozen=True)
class NodeDistribution:
    """What one node measured, as the model needs it."""

    hostname: str
    """Node name."""
    stall_histogram: SavedHistogram | Histogram | None
    """Scheduling lateness of the real-time probe beside the sync workload (None: not measured)."""
    sync_histogram: SavedHistogram | Histogram | None
    """Sync-write latency (None: not measured)."""
    measured_ns: int
    """Wall time of the sync measurement (the time base of `sync_histogram`)."""
    commit_p999_ns: int | None = None
    """p99.9 of the pmxcfs-shaped sqlite commit, when measured."""
    stall_measured_ns: int | None = None
    """Wall time the stall probe ran (None: same as `measured_ns`)."""
    stall_policy: str | None = None
    """Scheduling policy of the stall probe (`SCHED_RR` or `SCHED_OTHER`)."""
    evidence: str = "measured"
    """Where the distributions came from: `measured` (a benchmark), `watched` (`fsyncprobe
    watch`), `given` (latencies on the command line)."""
    ring_id_histogram: SavedHistogram | Histogram | None = None
    """Latency of corosync's ring-id write measured beside the workloads (None: not measured)."""
    ring_id_state_dirs: tuple[str, ...] = ()
    """The state dirs it was measured on."""


def node_from_benches(hostname: str, benches: Sequence[BenchResult]) -> NodeDistribution:
    """The model's inputs from one node's benches: every bench's sync latencies and
    scheduling-probe lateness merged; the sqlite workload's p99.9 as the pmxcfs commit latency.
    A histogram no real run could make (a saved report's) is an `InputError` naming `hostname`."""
    sync = Histogram()
    stall = Histogram()
    measured = stall_measured = 0
    policies: set[str] = set()
    commit: int | None = None
    ring_id = Histogram()
    state_dirs: list[str] = []
    try:
        for b in benches:
            sync.merge(b.histogram.to_histogram())
            measured += b.elapsed_ns
            if b.sched_probe is not None:
                stall.merge(b.sched_probe.histogram.to_histogram())
                stall_measured += b.sched_probe.duration_ns
                policies.add(b.sched_probe.policy)
            if b.ring_id_store is not None:
                ring_id.merge(b.ring_id_store.histogram.to_histogram())
                if b.ring_id_store.state_dir not in state_dirs:
                    state_dirs.append(b.ring_id_store.state_dir)
            if b.params.workload == Workload.SQLITE:
                commit = max(commit or 0, b.latency.p999_ns)
    except ValueError as exc:
        raise InputError(f"report from {hostname}: {exc}") from None
    return NodeDistribution(
        hostname=hostname,
        stall_histogram=SavedHistogram.of(stall) if stall.total else None,
        sync_histogram=SavedHistogram.of(sync) if sync.total else None,
        measured_ns=measured, commit_p999_ns=commit,
        stall_measured_ns=stall_measured or None,
        stall_policy="/".join(sorted(policies)) or None,
        ring_id_histogram=SavedHistogram.of(ring_id) if ring_id.total else None,
        ring_id_state_dirs=tuple(state_dirs),
    )


def node_from_latencies(hostname: str, latencies_ms: Sequence[float]) -> NodeDistribution:
    """A node from given sync latencies (ms), run back to back (the time base is their sum)."""
    h = Histogram()
    for v in latencies_ms:
        h.record(round(v * 1e6))
    return NodeDistribution(hostname=hostname, stall_histogram=None, sync_histogram=SavedHistogram.of(h),
                            measured_ns=max(h.sum_value, 1), evidence="given")


def node_from_watch(hostname: str, watch: WatchReport) -> NodeDistribution:
    """The model's inputs from a watch: the run delay of the watched corosync threads as the
    scheduling stalls, and the sync calls of the other watched processes (pmxcfs) as the sync
    latency, both over the observed time. pmxcfs's sync-call p99.9 stands in for the commit
    latency: a lower bound of a whole commit, which also writes and may sync twice at a checkpoint.
    A histogram no real watch could make is an `InputError` naming `hostname`."""
    stall = Histogram()
    sync = Histogram()
    try:
        for p in watch.processes:
            if p.scheduling:
                c = p.call(CallKind.RUN_DELAY)
                if c is not None:
                    stall.merge(c.histogram.to_histogram())
            else:
                for kind in SYNC_KINDS:
                    c = p.call(kind)
                    if c is not None:
                        sync.merge(c.histogram.to_histogram())
    except ValueError as exc:
        raise InputError(f"watch report from {hostname}: {exc}") from None
    observed = max(watch.observed_ns, 1)
    names = "/".join(p.name for p in watch.processes if p.scheduling) or "no process"
    return NodeDistribution(
        hostname=hostname,
        stall_histogram=SavedHistogram.of(stall) if stall.total else None,
        sync_histogram=SavedHistogram.of(sync) if sync.total else None,
        measured_ns=observed, commit_p999_ns=sync.percentile(99.9) if sync.total else None,
        stall_measured_ns=observed, evidence="watched",
        stall_policy=f"{names} run delay observed by `fsyncprobe watch` over {format_seconds(observed / 1e9)}",
    )
