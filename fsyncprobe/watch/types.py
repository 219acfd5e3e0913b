"""What a watch observed: frozen dataclasses a `Report` carries (`Report.watch`).

Kept apart from `fsyncprobe.watch.runner` so that `fsyncprobe.report.types` can import these
without importing the runner (as it imports `fsyncprobe.ring.types`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fsyncprobe.stats.summary import LatencySummary, SavedHistogram


class CallKind(str, Enum):
    """What one observed latency sample is."""

    FSYNC = "fsync"
    """fsync(2)."""
    FDATASYNC = "fdatasync"
    """fdatasync(2)."""
    SYNC_FILE_RANGE = "sync_file_range"
    """sync_file_range(2)."""
    MSYNC = "msync"
    """msync(2)."""
    SYNC_WRITE = "sync_write"
    """write/pwrite/writev on a file opened with O_SYNC or O_DSYNC (each is a sync write)."""
    WRITE = "write"
    """write, pwrite64, writev, pwritev, pwritev2 on any other file descriptor."""
    OPEN = "open"
    """open, openat, openat2, creat."""
    RENAME = "rename"
    """rename, renameat, renameat2."""
    UNLINK = "unlink"
    """unlink, unlinkat."""
    RUN_DELAY = "run_delay"
    """Scheduling delay of any thread: from wake-up (or preemption) to running on a CPU
    (sched_wakeup/sched_wakeup_new/sched_switch; what corosync issue 520 describes)."""
    BLOCKED = "blocked"
    """Time the main thread spent inside one system call, other than the calls it waits in
    (poll, epoll_wait, select, nanosleep, futex...): the main loop is held up that long."""


SYNC_KINDS: tuple[CallKind, ...] = (
    CallKind.FSYNC, CallKind.FDATASYNC, CallKind.SYNC_FILE_RANGE, CallKind.MSYNC, CallKind.SYNC_WRITE,
)
"""The kinds that make data durable: merged, they are a process's sync latency."""

KIND_CODES: dict[CallKind, int] = {k: i for i, k in enumerate(CallKind)}
"""The number each kind has inside the bpftrace program (fits in 4 bits)."""


@dataclass(frozen=True)
class CallStats:
    """Every observed call of one kind by one process: the same summary and histogram as `bench`."""

    kind: CallKind
    """What was timed."""
    latency: LatencySummary
    """count, mean, p50_ns ... max_ns, as `bench` reports them."""
    histogram: SavedHistogram
    """The whole distribution (the log-linear buckets of `fsyncprobe.stats.histogram`, counted in the kernel;
    exact sum and max, min and spread from the buckets, within 0.4 %)."""


@dataclass(frozen=True)
class WatchedProcess:
    """One watched command name and what its processes did."""

    name: str
    """Command name (`/proc/PID/comm`), as given to `--process`."""
    pids: tuple[int, ...]
    """The processes of that name that were watched."""
    calls: tuple[CallStats, ...]
    """One entry per kind of call that was observed (kinds never seen are left out)."""
    scheduling: bool
    """True when its threads' run delay and its main thread's blocking were watched too."""
    exited_pids: tuple[int, ...] = ()
    """Watched processes that exited during the watch (what they did before is kept)."""

    def call(self, kind: CallKind) -> CallStats | None:
        """The entry of `kind`, if observed."""
        return next((c for c in self.calls if c.kind == kind), None)


class StopReason(str, Enum):
    """Why the watch ended."""

    DURATION = "duration"
    """`--duration` was reached."""
    SIGINT = "SIGINT"
    """Ctrl-C."""
    SIGTERM = "SIGTERM"
    """SIGTERM (`systemctl stop`)."""
    PROCESS_EXITED = "process_exited"
    """Every process of a watched name exited."""
    TRACER_EXITED = "tracer_exited"
    """bpftrace itself ended early."""


@dataclass(frozen=True)
class Restart:
    """A watched command name whose processes all exited and whose successor was watched in their place."""

    name: str
    """The command name."""
    exited_pids: tuple[int, ...]
    """The processes of that name watched until then."""
    new_pids: tuple[int, ...]
    """The processes of that name that started after them, watched from then on."""
    unobserved_ns: int
    """From the exit being seen to the probes being attached again: a gap in the observation
    (every watched name's, as bpftrace is started again with the new pids)."""


@dataclass(frozen=True)
class WatchReport:
    """What `fsyncprobe watch` observed."""

    observed_ns: int
    """Wall time the probes were attached, up to the last histograms pulled (summed over the
    spans between restarts: a gap while bpftrace starts again is not counted)."""
    requested_ns: int | None
    """`--duration` (None: until SIGINT/SIGTERM)."""
    interval_ns: int
    """How often the in-kernel histograms were pulled."""
    bpftrace_version: str
    """`bpftrace --version`."""
    stopped_by: StopReason
    """Why it ended."""
    processes: tuple[WatchedProcess, ...]
    """Every watched command name."""
    notes: tuple[str, ...] = ()
    """What the reader must know about this watch (tracepoints missing, a process exited...)."""
    restarts: tuple[Restart, ...] = ()
    """Watched names whose process was replaced by a new one during the watch (`--restart-wait`)."""
    measurement_beside_ns: int = 0
    """Watched time during which a fsyncprobe `bench` or `verdict` held the node's lock (the watch
    does not take it: it runs for hours and passively; it reads who holds it): the load that
    measurement put on the disk is in the figures of that time."""

    def process(self, name: str) -> WatchedProcess | None:
        """The watched process of that command name, if any."""
        return next((p for p in self.processes if p.name == name), None)
