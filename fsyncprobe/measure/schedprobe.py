"""The scheduling-stall probe: how late a real-time sleeper wakes while the sync workload runs.

Corosync runs at real-time priority (exec/main.c `corosync_setscheduler`: SCHED_RR at
`sched_get_priority_max(SCHED_RR)`, unless started with `-p`) and locks its memory
(`corosync_mlockall`). Heavy host I/O can still keep it from running on time (corosync issue 520:
"corosync not scheduled for N ms" under disk load), and a node whose corosync is silent long enough
is declared gone. So beside every sync workload we run a process set up the same way that sleeps a
short fixed interval, over and over, and records how late each wake-up was. Its distribution is
what a corosync process on this node would have suffered under this I/O.

It is a separate process, not a thread: a thread would wait for the measuring loop's GIL and
report Python's lock hand-offs, not the kernel's scheduling delays (the protocol with its parent:
`fsyncprobe.measure.sideprocess`).
"""

from __future__ import annotations

import sys
import time

from fsyncprobe.measure.sideprocess import SideProcess, child_setup, histogram_fields, say, set_realtime
from fsyncprobe.measure.types import SchedProbeResult
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize

DEFAULT_INTERVAL_NS = 2_000_000
"""How long the probe sleeps each time: short enough for hundreds of samples a second, long enough
that the probe itself costs well under 1 % of a core (each wake-up is a few microseconds)."""


def _child(interval_ns: int) -> int:
    """The probe process: sleep, record lateness, until stdin closes; print the histogram."""
    stop = child_setup()
    policy, priority, note = set_realtime()
    hist = Histogram()
    interval_s = interval_ns / 1e9
    clock = time.monotonic_ns
    sleep = time.sleep
    record = hist.record
    say({"ready": True})
    start = clock()
    while not stop.is_set():
        t0 = clock()
        sleep(interval_s)
        record(clock() - t0 - interval_ns)
    say({"policy": policy, "priority": priority, "interval_ns": interval_ns, "duration_ns": clock() - start,
         "note": note, **histogram_fields(hist)})
    return 0


class SchedProbe:
    """Runs the probe process beside a workload: `start()`, work, `stop()` -> the result.

    Use as a context manager so the process is reaped on every path.
    """

    def __init__(self, interval_ns: int = DEFAULT_INTERVAL_NS) -> None:
        self.interval_ns = interval_ns
        self._side = SideProcess("scheduling probe", ["fsyncprobe.measure.schedprobe", str(interval_ns)],
                                 exit_timeout_s=2)

    def __enter__(self) -> SchedProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self._side.close()

    @property
    def pid(self) -> int | None:
        """The probe process's pid while it runs (tests stop it to see a stall measured)."""
        return self._side.pid

    def start(self) -> None:
        """Start the process and wait until it measures (its Python start-up is not counted)."""
        self._side.start()

    def stop(self) -> SchedProbeResult | None:
        """Stop the probe and return what it saw (None if it died without a result)."""
        got = self._side.finish()
        if got is None:
            return None
        data, hist = got
        return SchedProbeResult(
            policy=data["policy"], priority=data["priority"], interval_ns=data["interval_ns"],
            lateness=summarize(hist), histogram=SavedHistogram.of(hist), duration_ns=data["duration_ns"],
            note=data["note"],
        )


if __name__ == "__main__":
    raise SystemExit(_child(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_INTERVAL_NS))
