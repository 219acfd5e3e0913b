"""The paced (open-loop) timing loop: operation k starts at start + k / rate, whatever happened to
the ones before it, and each operation's latency runs from its own start.

pmxcfs does not sync back to back: it commits a handful of changes a second (shared/DESIGN.md,
"Workloads"). A sync after an idle pause meets power-saving exit latencies (NVMe APST, SATA link
power management, CPU C-states) that a closed loop never sees; ioping measures one request a second
by default for this reason (ioping(1)). `PacedPhase` has the call shape and return value of
`loop.run_phase`, so the engine runs either per phase.

Open loop: the schedule is computed from k (`due_ns`), so a late operation never shifts the ones
after it and rounding never adds up. When the disk cannot keep up, the next operations start as soon
as the one before ends (they are late, and counted), and a `--duration` run ends at its deadline
with the rest never started; the schedule lag (start minus due time) is reported apart from the
latency. Between operations the loop sleeps until the due time: Python 3.11's `time.sleep` sleeps in
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) on Linux (Modules/timemodule.c, pysleep), the clock
`time.monotonic_ns` reads, so a sleep ends at its deadline plus the timer slack (50 us by default,
prctl(2) PR_SET_TIMERSLACK) and the scheduling delay: that wake-up lateness is measured and reported
as schedule lag too.
"""

from __future__ import annotations

import math
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from fsyncprobe.measure import workloads
from fsyncprobe.measure.loop import TICK_NS, Progress, ProgressCallback, Recorder, run_phase
from fsyncprobe.measure.types import PacingResult
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize
from fsyncprobe.units import format_duration_ns

MIN_RATE_PER_S = 0.001
"""Slowest pace accepted: one operation in 1,000 s (the interval's upper bound, 1000 s)."""
MAX_RATE_PER_S = 100_000.0
"""Fastest pace accepted: every 10 us. Above that the sleep's own wake-up lateness (tens of
microseconds) is the interval, and a closed loop (no `--rate`) is the honest measurement."""

PhaseFunction = Callable[
    [Callable[[], None], int | None, int | None, Recorder | None, str, ProgressCallback | None,
     workloads.RotatingWrite | None],
    tuple[int, int],
]
"""`loop.run_phase`'s shape: (op, duration_ns, ops_limit, recorder, phase, progress, rotating) ->
(ops, elapsed_ns)."""


def interval_ns(rate_per_s: float) -> float:
    """Nanoseconds between two due times (not rounded: due times are computed from it and k)."""
    return 1e9 / rate_per_s


def period_fraction(rate_per_s: float) -> tuple[int, int]:
    """The interval in nanoseconds as an exact fraction (numerator, denominator) of the float rate,
    so due times are exact integers however long the run (a float k * interval loses nanoseconds
    beyond 2**53)."""
    f = Fraction(10**9) / Fraction(rate_per_s)
    return f.numerator, f.denominator


def due_ns(start_ns: int, k: int, rate_per_s: float) -> int:
    """When operation k (0-based) is due: start + k / rate, rounded to the nanosecond. Computed
    from k every time, never by adding intervals, so the schedule cannot drift."""
    num, den = period_fraction(rate_per_s)
    return start_ns + (2 * k * num + den) // (2 * den)


def scheduled_within(duration_ns: int, rate_per_s: float) -> int:
    """How many operations fall due before the end of a `duration_ns` phase: those with
    due_ns(0, k) < duration_ns (`--rate 10 --duration 20s`: k = 0..199, 200 operations)."""
    if duration_ns <= 0:
        return 0
    n = max(1, math.ceil(duration_ns * rate_per_s / 1e9))
    while n > 1 and due_ns(0, n - 1, rate_per_s) >= duration_ns:
        n -= 1
    while due_ns(0, n, rate_per_s) < duration_ns:
        n += 1
    return n


def planned_end_ns(start_ns: int, ops_done: int, rate_per_s: float) -> int:
    """When a phase that kept up ends: when the next operation would be due, so that ops / elapsed
    is the rate asked for (for a `--duration` that is not a whole number of intervals, up to one
    interval after its deadline: `--rate 5 --duration 500ms` makes 3 operations in 600 ms)."""
    return due_ns(start_ns, ops_done, rate_per_s)


class PacedPhase:
    """A `loop.run_phase` look-alike that paces operations at `rate_per_s`; after the measured
    phase (the one given a Recorder) `result()` says how it kept its schedule. The warm-up (no
    Recorder) is paced too, at the same rate, so the first measured operations follow the same
    idle gap as the rest rather than a burst of back-to-back syncs; nothing of it is recorded."""

    def __init__(self, rate_per_s: float, clock: Callable[[], int] = time.monotonic_ns,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`clock` and `sleep` are the real ones; the tests give a fake pair to check the schedule
        exactly."""
        if not MIN_RATE_PER_S <= rate_per_s <= MAX_RATE_PER_S:
            raise ValueError(f"rate {rate_per_s} outside {MIN_RATE_PER_S}..{MAX_RATE_PER_S}")
        self.rate_per_s = rate_per_s
        self.clock = clock
        self.sleep = sleep
        self.lag = Histogram()
        self.late_ops = 0
        self.scheduled_ops = 0
        self.measured = False

    def result(self) -> PacingResult | None:
        """The measured phase's schedule figures (None when no phase was measured)."""
        if not self.measured:
            return None
        return PacingResult(
            rate_per_s=self.rate_per_s, interval_ns=round(interval_ns(self.rate_per_s)),
            scheduled_ops=self.scheduled_ops, late_ops=self.late_ops,
            lag=summarize(self.lag), lag_histogram=SavedHistogram.of(self.lag),
        )

    def __call__(
        self,
        op: Callable[[], None],
        duration_ns: int | None,
        ops_limit: int | None,
        loop: Recorder | None,
        phase: str,
        progress: ProgressCallback | None,
        rotating: workloads.RotatingWrite | None = None,
    ) -> tuple[int, int]:
        """Run `op` on the schedule until the duration or the op count is reached; return
        (ops, elapsed_ns) like `run_phase`. Elapsed runs to the planned end (`planned_end_ns`),
        sleeping after the last operation, so a paced run that kept up reports its rate; one that
        fell behind ends at its deadline (or its last operation) and reports the rate it made.

        The timed region is the same as `run_phase`'s: read the clock, the operation (for
        overwrite/append: pwrite and the sync call, nothing else), read the clock. Folding into
        the histograms, the timeline and the progress callback happen outside it, in time the
        loop would otherwise sleep."""
        rate = self.rate_per_s
        num, den = period_fraction(rate)
        num2, den2 = 2 * num, 2 * den  # due = start + round(k * num / den), in integers
        clock = self.clock
        sleep = self.sleep
        start = clock()
        deadline = start + duration_ns if duration_ns is not None else None
        k = 0
        late = 0
        lat = array("q")
        lags = array("q")
        batch_sec = 0
        next_tick = start + TICK_NS
        last_tick_ops = 0
        last_tick_t = start
        t1 = start
        if loop is not None:
            self.measured = True
            self.late_ops = 0
            self.lag = Histogram()
            self.scheduled_ops = (
                ops_limit if ops_limit is not None
                else scheduled_within(duration_ns, rate) if duration_ns is not None else 0
            )
            loop.start_ns = loop.end_ns = start
        if rotating is not None:
            fd = rotating.fd
            buf = rotating.buf
            step = rotating.block_size
            slots = rotating.slots
            sync_call = rotating.sync_call
            pwrite = os.pwrite

        def flush() -> None:
            if loop is not None and lat:
                loop.fold(lat, 0, batch_sec)
                self.lag.record_counted(Counter(lags))
            del lat[:]
            del lags[:]

        completed = True
        try:
            while ops_limit is None or k < ops_limit:
                due = start + (k * num2 + den) // den2
                if deadline is not None and due >= deadline:
                    break
                now = clock()
                if deadline is not None and now >= deadline:
                    completed = False  # behind: what fell due before the deadline and never started
                    break
                if now >= next_tick:
                    flush()
                    if progress is not None:
                        done = k
                        dt = now - last_tick_t
                        progress(Progress(
                            phase=phase, elapsed_ns=now - start, total_ns=duration_ns, ops=done,
                            total_ops=ops_limit,
                            ops_per_s=(done - last_tick_ops) * 1e9 / dt if dt > 0 else 0.0,
                        ))
                        last_tick_ops = done
                    last_tick_t = now
                    next_tick = start + ((now - start) // TICK_NS + 1) * TICK_NS
                    now = clock()
                if now < due:
                    sleep((due - now) / 1e9)
                elif k and t1 >= due:
                    late += 1  # the operation before was still running when this one fell due
                if rotating is None:
                    t0 = clock()
                    op()
                    t1 = clock()
                else:
                    off = rotating.next_slot * step
                    nxt = rotating.next_slot + 1
                    rotating.next_slot = nxt if nxt < slots else 0
                    if sync_call is None:
                        t0 = clock()
                        pwrite(fd, buf, off)
                        t1 = clock()
                    else:
                        t0 = clock()
                        pwrite(fd, buf, off)
                        sync_call(fd)
                        t1 = clock()
                k += 1
                sec = (t0 - start) // 1_000_000_000
                if sec != batch_sec:
                    flush()
                    batch_sec = sec
                lat.append(t1 - t0)
                lags.append(t0 - due if t0 > due else 0)
        finally:
            # Whatever stopped us (a signal, an I/O error), keep the samples already taken.
            flush()
            if loop is not None:
                self.late_ops = late
                loop.end_ns = t1
        end = clock()
        if completed:
            target = planned_end_ns(start, k, rate)
            if end < target:
                # Idle to the planned end; the sleep's own overshoot after the last operation is
                # no part of the measurement, so a run that kept up reports exactly its rate.
                sleep((target - end) / 1e9)
                end = target
        return k, end - start


def result_of(phase: PhaseFunction | PacedPhase) -> PacingResult | None:
    """The schedule figures of a paced phase function (None for the closed loop)."""
    return phase.result() if isinstance(phase, PacedPhase) else None


def notes(paced: PacingResult | None, ops: int, cut_short: bool = False) -> list[str]:
    """What the reader of a paced run must know: that the disk did not keep up, when it did not
    (a run `cut_short` by a signal or an error did not start the rest for that reason)."""
    if paced is None:
        return []
    out: list[str] = []
    rate = f"{paced.rate_per_s:g}/s"
    if paced.late_ops:
        out.append(
            f"paced at {rate}: {paced.late_ops:,} of {ops:,} operations started late (the one before was still "
            f"running at their due time; schedule lag up to {format_duration_ns(paced.lag.max_ns)}): the disk did "
            "not keep up, so these syncs were not isolated; latency still runs from each operation's own start"
        )
    missed = paced.scheduled_ops - ops
    if missed > 0 and not cut_short:
        out.append(f"paced at {rate}: {missed:,} of {paced.scheduled_ops:,} scheduled operations never started "
                   "before the end of the run")
    return out


def phase_function(rate_per_s: float | None) -> PhaseFunction | PacedPhase:
    """What runs a phase: `loop.run_phase` (closed loop) or a `PacedPhase` at `rate_per_s`."""
    return run_phase if rate_per_s is None else PacedPhase(rate_per_s)
