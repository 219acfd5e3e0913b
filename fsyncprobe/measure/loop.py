"""The timed hot loop: run one operation over and over, read the clock around exactly it, and
fold the latencies into a histogram, a per-second timeline and a stall count off the hot path.

Kept apart from the engine (which prepares, guards and cleans up around it) because this is the
one piece of code whose every line costs time in the measured figure (issue 7: the loop must
measure the disk, not Python).
"""

from __future__ import annotations

import itertools
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from fsyncprobe.measure import workloads
from fsyncprobe.measure.types import TimelineSecond
from fsyncprobe.stats.histogram import Histogram

TICK_NS = 100_000_000
"""Fold samples and report progress ten times a second, off the hot path."""


@dataclass(frozen=True)
class Progress:
    """What the engine tells the progress callback, ten times a second."""

    phase: str
    """`warmup` or `measure`."""
    elapsed_ns: int
    """Time spent in this phase."""
    total_ns: int | None
    """Planned length of the phase (None when bounded by an operation count)."""
    ops: int
    """Operations done in this phase."""
    total_ops: int | None
    """Planned operation count (None when bounded by time)."""
    ops_per_s: float
    """Rate over the last tick."""


ProgressCallback = Callable[[Progress], None]


class Recorder:
    """The timing loop and its bookkeeping; the hot path is in `run_phase`."""

    def __init__(self, stall_threshold_ns: int) -> None:
        self.hist = Histogram()
        self.stall_threshold_ns = stall_threshold_ns
        self.stalls = 0
        self.timeline: list[TimelineSecond] = []
        self._second_ops = 0
        self._second_max = 0
        self.ops = 0
        self.start_ns = 0
        self.end_ns = 0

    def fold(self, batch: array, second: int, close_seconds_before: int) -> None:
        """Account a batch of latencies to `second`, closing finished seconds first."""
        while len(self.timeline) < close_seconds_before:
            self.timeline.append(
                TimelineSecond(second=len(self.timeline), ops=self._second_ops, max_latency_ns=self._second_max)
            )
            self._second_ops = 0
            self._second_max = 0
        if not batch:
            return
        # Count in C first (collections.Counter): a 100 ms batch of fast operations holds a few
        # thousand distinct values, so the histogram's Python loop runs per value, not per sample.
        self.hist.record_counted(Counter(batch))
        n = len(batch)
        self.ops += n
        self._second_ops += n
        m = max(batch)
        if m > self._second_max:
            self._second_max = m
        if m > self.stall_threshold_ns:
            thr = self.stall_threshold_ns
            self.stalls += sum(1 for v in batch if v > thr)

    def close(self, elapsed_ns: int) -> None:
        """Close the last (possibly partial) second."""
        seconds = -(-elapsed_ns // 1_000_000_000)
        if len(self.timeline) < seconds - 1 and elapsed_ns - (seconds - 1) * 1_000_000_000 < TICK_NS:
            # A sliver under one tick past the last whole second (the operation that straddled
            # the deadline, already counted in the second it started in) is not a second.
            seconds -= 1
        self.fold(array("q"), 0, max(seconds - 1, len(self.timeline)))
        if self._second_ops or seconds > len(self.timeline):
            self.timeline.append(
                TimelineSecond(second=len(self.timeline), ops=self._second_ops, max_latency_ns=self._second_max)
            )
            self._second_ops = 0
            self._second_max = 0


def run_phase(
    op: Callable[[], None],
    duration_ns: int | None,
    ops_limit: int | None,
    loop: Recorder | None,
    phase: str,
    progress: ProgressCallback | None,
    rotating: workloads.RotatingWrite | None = None,
) -> tuple[int, int]:
    """Run `op` until the duration or the op count is reached; return (ops, elapsed_ns).

    With `loop` None (warm-up) nothing is recorded. The hot path is: read the clock, do the
    operation, read the clock, append the difference to an array. With `rotating` (overwrite,
    append) the operation is inlined: pwrite of the preallocated buffer, then the sync call,
    and nothing else sits between the two clock reads; otherwise it is one call of `op`.
    Every name the hot path uses is a local. Folding the batch into the histogram, the
    timeline and the progress callback happen once per 100 ms tick, outside the timed region
    (issue 7: the loop must measure the disk, not Python).
    """
    clock = time.monotonic_ns
    start = clock()
    deadline = start + duration_ns if duration_ns is not None else None
    done = 0
    next_tick = start + TICK_NS
    if deadline is not None and deadline < next_tick:
        next_tick = deadline
    last_tick_ops = 0
    last_tick_t = start
    batch = array("q")
    append = batch.append
    repeat = itertools.repeat
    t1 = batch_t0 = start
    if loop is not None:
        loop.start_ns = loop.end_ns = start
    if rotating is not None:
        fd = rotating.fd
        buf = rotating.buf
        step = rotating.block_size
        end_off = rotating.slots * step
        pwrite = os.pwrite
        sync_call = rotating.sync_call
    try:
        while True:
            remaining = (ops_limit - done - len(batch)) if ops_limit is not None else 1 << 62
            if remaining <= 0:
                break
            if rotating is None:
                for _ in repeat(None, remaining):
                    t0 = clock()
                    op()
                    t1 = clock()
                    append(t1 - t0)
                    if t1 >= next_tick:
                        break
            else:
                # One pass runs up to the end of the file (or the tick, or the op limit);
                # the offset comes from range(), so the loop body holds no arithmetic.
                before = len(batch)
                first = rotating.next_slot * step
                stop = min(end_off, first + remaining * step)
                if sync_call is None:
                    for off in range(first, stop, step):
                        t0 = clock()
                        pwrite(fd, buf, off)
                        t1 = clock()
                        append(t1 - t0)
                        if t1 >= next_tick:
                            break
                else:
                    for off in range(first, stop, step):
                        t0 = clock()
                        pwrite(fd, buf, off)
                        sync_call(fd)
                        t1 = clock()
                        append(t1 - t0)
                        if t1 >= next_tick:
                            break
                n = len(batch) - before
                nxt = rotating.next_slot + n
                rotating.next_slot = nxt if nxt < rotating.slots else 0
                if t1 < next_tick and n < remaining:
                    continue  # reached the end of the file: wrap; the batch waits for the tick
            done += len(batch)
            if loop is not None:
                # Ticks sit on a 100 ms grid from the start, so a batch lies within one second:
                # the second it started in.
                loop.fold(batch, 0, (batch_t0 - start) // 1_000_000_000)
            del batch[:]
            batch_t0 = t1
            if t1 >= next_tick:
                if progress is not None:
                    dt = t1 - last_tick_t
                    progress(
                        Progress(
                            phase=phase, elapsed_ns=t1 - start, total_ns=duration_ns, ops=done,
                            total_ops=ops_limit,
                            ops_per_s=(done - last_tick_ops) * 1e9 / dt if dt > 0 else 0.0,
                        )
                    )
                last_tick_ops = done
                last_tick_t = t1
                next_tick = start + ((t1 - start) // TICK_NS + 1) * TICK_NS
                if deadline is not None and deadline < next_tick:
                    next_tick = deadline
            if deadline is not None and t1 >= deadline:
                break
    finally:
        # Whatever stopped us (a signal, an I/O error), keep the samples already taken.
        if loop is not None:
            if batch:
                loop.fold(batch, 0, (batch_t0 - start) // 1_000_000_000)
                done += len(batch)
            loop.end_ns = t1
    return done, t1 - start
