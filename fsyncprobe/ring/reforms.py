"""How many membership changes a series of stalls of one node should cause, by the model, and how
far a real count may lie from that by chance alone (issue 17: the end-to-end check of the rate).

Pure: no I/O, no clock, no printing. The model's own chance that a stall re-forms the ring is
`fsyncprobe.ring.transition` (what its false-loss rate uses). Kept here for comparison: the
stall tolerance as a step (width 0: what the model's rate did before, counting the stalls
longer than the tolerance) and the linear ramp the first long runs were compared with, one ping
period plus one heartbeat tick wide (`knet_ramp_width_ms`; docs/validation.md, "Rate of
membership changes").

Each stall re-forms the ring or not, independently, with its own probability, so the count is a
Poisson-binomial variable; with stall lengths drawn from a distribution instead of known, every
stall has the same probability (the distribution's mass beyond the threshold, or the ramp's mean
over the distribution) and the count is binomial, the special case with all probabilities equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fsyncprobe.ring.model import KNET_THREADS_TIMER_RES_MS


def knet_ramp_width_ms(ping_interval_ms: float, tick_ms: float = KNET_THREADS_TIMER_RES_MS) -> float:
    """Width of the stall lengths over which a knet link goes down, from never to always: the
    time between two pings, a whole number of heartbeat ticks (a ping leaves on the first tick at
    least `ping_interval_ms` after the last one: libknet threads_heartbeat.c `_handle_check_each`,
    run once per `threads_timer_res` tick, libknet.h KNET_THREADS_TIMER_RES), plus the one tick by
    which a timeout may be noticed late. 600 + 200 = 800 ms at knet_ping_interval 412 ms."""
    return float(math.ceil(ping_interval_ms / tick_ms) * tick_ms + tick_ms)


def reform_probability(stall_ms: float, tolerance_ms: float, width_ms: float = 0.0) -> float:
    """The chance that one stall of `stall_ms` re-forms the ring: 0 below `tolerance_ms - width/2`,
    1 above `tolerance_ms + width/2`, linear between (width 0: a step, 1 from the tolerance on)."""
    if width_ms <= 0:
        return 1.0 if stall_ms >= tolerance_ms else 0.0
    return min(1.0, max(0.0, (stall_ms - tolerance_ms) / width_ms + 0.5))


def expected_reforms(stalls_ms: Sequence[float], tolerance_ms: float, width_ms: float = 0.0) -> float:
    """Expected number of membership changes for these stalls, each independent."""
    return sum(reform_probability(s, tolerance_ms, width_ms) for s in stalls_ms)


def count_distribution(probabilities: Sequence[float]) -> list[float]:
    """P(count = k) for k = 0..n of independent events with these probabilities (the
    Poisson-binomial distribution, by the exact recurrence over the events)."""
    pmf = [1.0]
    for p in probabilities:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p} outside [0, 1]")
        nxt = [0.0] * (len(pmf) + 1)
        for k, mass in enumerate(pmf):
            nxt[k] += mass * (1 - p)
            nxt[k + 1] += mass * p
        pmf = nxt
    return pmf


def count_interval(probabilities: Sequence[float], level: float = 0.99) -> tuple[int, int]:
    """Central interval [lo, hi] of the count: P(count < lo) <= (1 - level) / 2 and
    P(count > hi) <= (1 - level) / 2, each as large as that allows (so it holds at least `level`)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} outside (0, 1)")
    pmf = count_distribution(probabilities)
    tail = (1 - level) / 2
    lo, below = 0, 0.0
    while lo < len(pmf) - 1 and below + pmf[lo] <= tail:
        below += pmf[lo]
        lo += 1
    hi, above = len(pmf) - 1, 0.0
    while hi > 0 and above + pmf[hi] <= tail:
        above += pmf[hi]
        hi -= 1
    return lo, hi
