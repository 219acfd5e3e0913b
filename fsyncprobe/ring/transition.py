"""The chance P(s) that one stall of length s re-forms the ring, and the rate of membership changes
it gives for a node's stall rate: the expected count over the stall distribution, not the stalls
beyond one threshold (issue 17, docs/model.md "From the stall tolerance to a rate").

Pure: no I/O, no clock, no printing.

Why a transition and not a step. With knet (corosync 3's default) the clock that turns a stall
into a new membership is the link heartbeat (`model.stall_bounds`): a link is declared down when
the last pong is older than the pong timeout, and a down link stops the token until pongs come
back. Two things the model cannot know for any single stall decide whether its length crosses
that line, and both are uniform:

- The last pong's age when the stall begins. libknet's heartbeat thread wakes every
  `threads_timer_res` (200 ms, libknet.h `KNET_THREADS_TIMER_RES`, which corosync does not
  change) and `send_ping` (threads_heartbeat.c) sends a ping on that tick only when at least
  `ping_interval` passed since the last one, so pings, and the pongs answering them within a
  round trip, come a whole number of ticks apart: the *ping period* ceil(interval / tick) x tick
  (600 ms for knet_ping_interval 412 ms). A stall begins at a random point of that period, so
  the age of the last pong is uniform over it.
- Where the timeout is noticed. `send_ping` compares the cached `pong_last` with
  `pong_timeout_adj` right after the ping, on the same tick. A peer of the stalled node notices
  on its first tick at least the timeout after the last pong, up to one tick late
  (ceil(timeout / tick) x tick after the ping: 1000 ms for an 825 ms timeout); the stalled node
  itself runs the check at once when it resumes (its `usleep` ran out during the stop), with no
  tick's delay. Which side's check ends the ring depends on which node stalls and where the token
  is (on the test rings the transition's centre moved by 150 ms with the stalled node:
  docs/validation.md); the model knows neither, so it takes the offset as uniform over one tick.

The stall that re-forms the ring is then s* = c - A + D with A uniform over the ping period and D
over the tick: its density is the convolution of the two uniforms, a trapezoid, and P(s), its
distribution function, is S-shaped: quadratic over one tick at each end, linear between. The
model keeps its stall tolerance (`model.stall_bounds`, tested against real rings) as the centre
c, the median of s*; the mechanism's own median, timeout - period/2 + tick/2, lies 6 ms above it
for the test ring (625 against 619 ms) and matches the real rings' fitted centres (625, 610 ms).
Both widths 0 give back the step at c.

The rate. A node whose stalls longer than x come at rate L(x) per second has membership changes at
the rate  integral of P(s) against the stall density  =  integral of f(t) L(t) dt  (integration by
parts; f = P', the trapezoid), the mean of L over the thresholds s*. `Transition.mean` computes it
over cells of equal width, each cell's exact mass times L at the cell's lower end: L does not
increase, so this is never below the integral (conservative by construction), is monotone in L,
and is exactly L(c) for the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

NEGLIGIBLE_MS = 1e-6
"""Widths below this count as 0."""
CELLS = 32
"""Cells of the quadrature in `Transition.mean` (one per 25 ms at the test ring's 800 ms)."""


@dataclass(frozen=True)
class Transition:
    """P(s): the chance that one stall of s ms re-forms the ring, the distribution function of
    c - A + D with A uniform over `phase_ms` and D over `tick_ms`, centred so its median is
    `centre_ms`."""

    centre_ms: float
    """The median stall that re-forms the ring: the model's stall tolerance."""
    phase_ms: float
    """Width of the last pong's age when a stall begins: the knet ping period on the heartbeat
    tick (0: no spread, as with a non-knet bound)."""
    tick_ms: float
    """Width of the offset at which the timeout is noticed: libknet's heartbeat tick (0: none)."""

    def _widths(self) -> tuple[float, float]:
        """(wider, narrower) width; a width under `NEGLIGIBLE_MS` counts as 0 (no float trouble
        from a nanosecond's spread, which means nothing at these lengths)."""
        a, b = (w if w >= NEGLIGIBLE_MS else 0.0 for w in (self.phase_ms, self.tick_ms))
        return max(a, b), min(a, b)

    @property
    def lower_ms(self) -> float:
        """Longest stall that never re-forms the ring."""
        return self.centre_ms - sum(self._widths()) / 2

    @property
    def upper_ms(self) -> float:
        """Shortest stall that always re-forms the ring."""
        return self.centre_ms + sum(self._widths()) / 2

    def probability(self, stall_ms: float) -> float:
        """P(s) for a stall of `stall_ms`: 0 up to `lower_ms`, 1 from `upper_ms` on, quadratic
        over the narrower width at each end and linear between (width 0: a step at the centre,
        1 from the centre on)."""
        wide, narrow = self._widths()
        if wide <= 0:
            return 1.0 if stall_ms >= self.centre_ms else 0.0
        if stall_ms <= self.lower_ms:
            return 0.0
        if stall_ms >= self.upper_ms:
            return 1.0
        x = stall_ms - self.lower_ms
        if narrow <= 0:
            return x / wide
        if x <= narrow:
            return x * x / (2 * wide * narrow)
        if x <= wide:
            return (x - narrow / 2) / wide
        rest = wide + narrow - x
        return 1.0 - rest * rest / (2 * wide * narrow)

    def mean(self, rate: Callable[[float], float], cells: int = CELLS) -> float:
        """The mean of `rate(t ms)` (a non-increasing exceedance rate) over the thresholds s*: the
        rate of membership changes. Each of `cells` equal cells over [lower, upper] weighs the
        rate at its lower end by its exact mass, so the result is never below the integral."""
        span = self.upper_ms - self.lower_ms
        if span <= 0:
            return rate(self.centre_ms)
        total = 0.0
        below = 0.0
        for k in range(cells):
            start = self.lower_ms + span * k / cells
            end = self.upper_ms if k == cells - 1 else self.lower_ms + span * (k + 1) / cells
            at_end = self.probability(end) if k < cells - 1 else 1.0
            mass = at_end - below
            below = at_end
            if mass > 0:
                total += mass * rate(start)
        return total

    def describe(self) -> str:
        """One line for the report's assumptions."""
        if self.upper_ms <= self.lower_ms:
            return f"a step at {self.centre_ms:.0f} ms"
        return (f"0 below {self.lower_ms:.0f} ms, 1 from {self.upper_ms:.0f} ms, median {self.centre_ms:.0f} ms "
                f"(ping period {self.phase_ms:g} ms convolved with tick {self.tick_ms:g} ms)")


def knet_ping_period_ms(ping_interval_ms: float, tick_ms: float) -> float:
    """The time between two pings: the first heartbeat tick at least `ping_interval_ms` after the
    previous ping (libknet threads_heartbeat.c `send_ping`, run once per tick by
    `_handle_heartbt_thread`). 600 ms for 412 ms on the 200 ms tick; the interval itself without
    a tick."""
    if tick_ms <= 0:
        return float(ping_interval_ms)
    return float(math.ceil(ping_interval_ms / tick_ms - 1e-9) * tick_ms)


def step(centre_ms: float) -> Transition:
    """The tolerance as a threshold: what the model's rate was before the transition."""
    return Transition(centre_ms, 0.0, 0.0)
