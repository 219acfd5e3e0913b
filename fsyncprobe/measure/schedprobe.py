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

from fsyncprobe.measure.sideprocess import (
    PAUSE_TIMEOUT_S,
    SideProcess,
    SideProcessOwner,
    Stretches,
    child_control,
    histogram_fields,
    say,
    set_realtime,
)
from fsyncprobe.measure.types import SchedProbeResult
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize

DEFAULT_INTERVAL_NS = 2_000_000
"""How long the probe sleeps each time when it samples throughout: short enough for hundreds of
samples a second, long enough that the probe itself costs well under 1 % of a core (each wake-up
is a few microseconds)."""
WINDOWED_INTERVAL_NS = 500_000
"""How long it sleeps in the engine's probe windows (a fifth of the run,
`fsyncprobe.measure.windows`): four times as often, so the run as a whole keeps about as many
samples as the 2 ms probe throughout gave (2,000 a second of window, 400 a second of run; at 2 ms
a default verdict had under 1,000, too few for the model to fit a tail). A stall longer than the
sleep is still one sample, whatever the sleep, so the rate of long stalls does not depend on it;
the cost, about 1 % of a core during the windows, stays out of the headline."""


def _child(interval_ns: int, start_paused: bool = False) -> int:
    """The probe process: sleep, record lateness, until stdin closes; print the histogram.

    Between a `pause` and a `resume` line (the engine's quiet windows, `fsyncprobe.measure.windows`)
    it takes no samples and sets no timer: it finishes the sleep in progress, answers, and blocks on
    an event until `resume`. After `resume` it starts a fresh sleep, so no sample spans a pause (a
    process stopped from outside, by SIGSTOP, would instead wake late by the whole pause once
    continued). `duration_ns` counts only the time it measured; `windows` the stretches of it. With
    `start_paused` it waits for the first `resume` before it measures anything."""
    control = child_control()
    policy, priority, note = set_realtime()
    hist = Histogram()
    interval_s = interval_ns / 1e9
    clock = time.monotonic_ns
    sleep = time.sleep
    record = hist.record
    say({"ready": True})
    stretches = Stretches(control, start_paused)
    while stretches.step() != Stretches.STOP:  # after a resume: a fresh sleep, nothing spans the pause
        t0 = clock()
        sleep(interval_s)
        record(clock() - t0 - interval_ns)
    say({"policy": policy, "priority": priority, "interval_ns": interval_ns, "duration_ns": stretches.active_ns,
         "windows": stretches.windows, "note": note, **histogram_fields(hist)})
    return 0


class SchedProbe(SideProcessOwner):
    """Runs the probe process beside a workload: `start()`, work, `stop()` -> the result.

    Use as a context manager so the process is reaped on every path.
    """

    def __init__(self, interval_ns: int = DEFAULT_INTERVAL_NS, start_paused: bool = False,
                 pause_timeout_s: float = PAUSE_TIMEOUT_S) -> None:
        """`start_paused`: the process measures nothing until the first `resume()` (the engine's
        probe windows); otherwise it measures from `start()` on."""
        self.interval_ns = interval_ns
        self.pause_timeout_s = pause_timeout_s
        args = ["fsyncprobe.measure.schedprobe", str(interval_ns)] + (["paused"] if start_paused else [])
        self._side = SideProcess("scheduling probe", args, exit_timeout_s=2)

    def pause(self) -> tuple[int, int]:
        """Stop the probe's sampling and return once it has (after the sleep in progress): from
        then on it sets no timer and does not run until `resume`. Returns the monotonic times
        (ns, the same clock in every process) at which the window just ended had begun and ended
        in the probe. OSError: the probe died or did not answer within `pause_timeout_s`."""
        return self._side.pause(self.pause_timeout_s)

    def resume(self) -> None:
        """Let the probe sample again (it starts a fresh sleep; nothing is waited for)."""
        self._side.send("resume")

    def stop(self) -> SchedProbeResult | None:
        """Stop the probe and return what it saw (None if it died without a result)."""
        got = self._side.finish()
        if got is None:
            return None
        data, hist = got
        return SchedProbeResult(
            policy=data["policy"], priority=data["priority"], interval_ns=data["interval_ns"],
            lateness=summarize(hist), histogram=SavedHistogram.of(hist), duration_ns=data["duration_ns"],
            note=data["note"], windows=data["windows"],
        )


if __name__ == "__main__":
    raise SystemExit(_child(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_INTERVAL_NS, "paused" in sys.argv[2:]))
