"""The end-to-end check of the rate (issue 17): stall one node of a real Corosync ring again and
again, for lengths drawn from a known distribution, count the membership changes the survivors
really formed, and set the count beside what the model predicts from the same distribution.
Shared by tests/test_ring_realring_rate.py (a CI-sized run) and bench/ringrate.py (a long run).

The rings are tests/ringkit.py's (3 nodes, knet, `token: 1000`). One trial: wait a random part of
two knet ping periods (the stall's phase against the pings decides a stall near the tolerance),
SIGSTOP the node's corosync for the drawn length, SIGCONT, and read the logs. A survivor logs
"A new membership" once per re-formation (the stalled node is dropped and taken back in the same
new membership when its link is already up again, or in two when not: each line counts). The
stalled node rotates over the ring.

Waiting between trials. A stall that took no knet link down cannot re-form the ring at these
lengths (the token bound T - R is 1350 ms), so such a trial ends 1.5 s after the resume; one that
did waits for the membership (T + consensus after the resume at most), then for libknet's pong
timeout back-off to decay (threads_heartbeat.c `_adjust_pong_timeouts`: a link that went down
gets 10 x knet_ping_timeout, one step less a second) so every trial meets the configured timeout.
Nothing is lost if a membership comes later than that: every trial reads the logs from where the
previous one stopped, and a membership found before the next stall is added to the previous
trial (and counted as `late`).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fsyncprobe.ring import model as ring
from fsyncprobe.ring import reforms
from fsyncprobe.ring.inputs import node_from_latencies
from fsyncprobe.ring.transition import Transition
from tests.ringkit import NODES, TOKEN_MS, Ring

NEW_MEMBERSHIP = "A new membership"
LINK_DOWN = "is down"
BACKOFF_S = 9.5
"""After a knet link went down: 9 one-second steps of libknet's back-off, from the resume."""
QUIET_S = 1.5
"""How long after the resume a trial that took no link down watches the logs."""
PHASE_S = 1.2
"""The random wait before a stall: two knet ping periods (pings leave on the 200 ms heartbeat
tick, every third one at T = 1650 ms)."""


@dataclass(frozen=True)
class LogNormalStalls:
    """Stall lengths ln S ~ Normal(ln median, sigma), cut at `cap_ms` (a cut stall lasts cap_ms)."""

    median_ms: float
    """Median stall."""
    sigma: float
    """Standard deviation of ln S."""
    cap_ms: float
    """Longest stall applied (beyond the token bound every model says 1)."""

    def draw(self, n: int, seed: int) -> list[float]:
        rng = random.Random(seed)
        return [min(rng.lognormvariate(math.log(self.median_ms), self.sigma), self.cap_ms) for _ in range(n)]

    def p_reform(self, chance: Callable[[float], float]) -> float:
        """The chance that one stall drawn from this distribution re-forms the ring, for
        `chance(stall_ms)` the chance that a stall of that length does: its mean over the
        distribution, by the midpoint rule over 20,000 quantiles."""
        dist = statistics.NormalDist(math.log(self.median_ms), self.sigma)
        m = 20_000
        return sum(chance(min(math.exp(dist.inv_cdf((k + 0.5) / m)), self.cap_ms)) for k in range(m)) / m


@dataclass
class Trial:
    """One stall and what the ring did."""

    ring: int
    node: int
    requested_ms: float
    actual_ms: float
    memberships: int
    """"A new membership" lines the watched survivor logged for this stall."""
    link_down: bool
    late: int = 0
    """Of `memberships`, those found only before the next stall."""


@dataclass(frozen=True)
class ModelView:
    """What the model says about the test ring's stalls."""

    tolerance_ms: float
    """`run_model(...).stall_tolerance_ms`: the median stall that re-forms the ring."""
    bound: str
    """The clock that sets it."""
    transition: Transition
    """P(s), the chance that a stall of s re-forms the ring, as the model's rate uses it
    (`model.report_transition`: the same function `run_model` calls)."""
    ramp_ms: float
    """The linear ramp the previous long runs were compared with (one ping period plus one tick,
    `reforms.knet_ramp_width_ms`), kept for comparison."""

    def chances(self) -> list[tuple[str, Callable[[float], float]]]:
        """(name, P(s)) for every way of predicting: the model's transition first."""
        tr, tol = self.transition, self.tolerance_ms
        return [
            (f"model P(s) ({tr.lower_ms:.0f}-{tr.upper_ms:.0f} ms)", tr.probability),
            ("threshold (step)", lambda s: reforms.reform_probability(s, tol)),
            (f"linear ramp {self.ramp_ms:.0f} ms", lambda s: reforms.reform_probability(s, tol, self.ramp_ms)),
        ]


def model_view() -> ModelView:
    """The model's figures for the test ring (3 nodes, `token: 1000`, knet defaults)."""
    params = ring.ModelParams(nodes=NODES, token_ms=TOKEN_MS, network_latency_ms=0.05, jitter_ms=0.0, coupling=0.0)
    report = ring.run_model([node_from_latencies("test", [0.01] * 100)], params)
    interval = float(report.knet_ping_interval_ms or 0.0)
    width = reforms.knet_ramp_width_ms(interval) if report.stall_tolerance_bound_by == "knet link" else 0.0
    return ModelView(report.stall_tolerance_ms, report.stall_tolerance_bound_by,
                     ring.report_transition(params, report), width)


def _count(text: str, what: str) -> int:
    return text.count(what)


def run_series(r: Ring, index: int, stalls_ms: Sequence[float], seed: int,
               stop: Callable[[], bool] = lambda: False) -> list[Trial]:
    """Apply `stalls_ms` to ring `r` in order (stalled node rotating, random phase from `seed`)
    until done or `stop()`; the trials. A ring that lost a member for good fails the series."""
    rng = random.Random(seed)
    offsets = [len(r.log(i)) for i in range(1, NODES + 1)]
    trials: list[Trial] = []
    # T = token + (N - 2) x token_coefficient (650 ms by default; totemconfig.c)
    token_s = (r.token_ms + (NODES - 2) * 650) / 1000
    for k, stall_ms in enumerate(stalls_ms):
        if stop():
            break
        node = (k + index) % NODES + 1
        watch = node % NODES + 1
        time.sleep(rng.uniform(0, PHASE_S))
        if trials:
            _settle(r, trials[-1], offsets)
        pid = r.procs[node].pid
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(stall_ms / 1000)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        down = False
        while time.monotonic() < resumed + QUIET_S:
            time.sleep(0.1)
            down = any(LINK_DOWN in r.log(i)[offsets[i - 1]:] for i in range(1, NODES + 1))
            if down:
                break
        if down or stall_ms > 0.6 * token_s * 1000:
            deadline = resumed + token_s * 2.2 + 1.0  # T + consensus (1.2 T) + a margin
            while time.monotonic() < deadline and NEW_MEMBERSHIP not in r.log(watch)[offsets[watch - 1]:]:
                time.sleep(0.1)
        logs = [r.log(i) for i in range(1, NODES + 1)]
        down = down or any(LINK_DOWN in logs[i - 1][offsets[i - 1]:] for i in range(1, NODES + 1))
        trials.append(Trial(index, node, stall_ms, (resumed - stopped) * 1000,
                            _count(logs[watch - 1][offsets[watch - 1]:], NEW_MEMBERSHIP), down))
        offsets = [len(t) for t in logs]
        if down:
            time.sleep(max(0.0, resumed + BACKOFF_S - time.monotonic()))
    if trials:
        _settle(r, trials[-1], offsets)
    return trials


def _settle(r: Ring, last: Trial, offsets: list[int]) -> None:
    """Add memberships that came after `last` ended to it, wait for the full ring again."""
    watch = last.node % NODES + 1
    logs = [r.log(i) for i in range(1, NODES + 1)]
    late = _count(logs[watch - 1][offsets[watch - 1]:], NEW_MEMBERSHIP)
    if late:
        last.memberships += late
        last.late += late
    if late or any(LINK_DOWN in logs[i - 1][offsets[i - 1]:] for i in range(1, NODES + 1)):
        last.link_down = True
        time.sleep(BACKOFF_S)
    offsets[:] = [len(t) for t in logs]
    deadline = time.monotonic() + 20
    while not r.log(watch).rsplit("Members[", 1)[-1].startswith(f"{NODES}]"):
        if time.monotonic() > deadline:
            raise AssertionError(f"ring {r.prefix} did not re-form with {NODES} members:\n{r.log(watch)[-2000:]}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Prediction:
    """One way of predicting the count, and the count's central interval under it."""

    name: str
    expected: float
    low: int
    high: int


def predictions(dist: LogNormalStalls, trials: Sequence[Trial], view: ModelView, level: float) -> list[Prediction]:
    """The predicted number of stalls that re-form the ring: from the distribution (a binomial
    count: every stall has the same chance) and from the stalls as they happened (Poisson-binomial),
    with the model's transition P(s) (what its false-loss rate uses), with the threshold as a step
    (what it used before) and with the linear ramp of the earlier runs."""
    n = len(trials)
    out = []
    for name, chance in view.chances():
        q = dist.p_reform(chance)
        lo, hi = reforms.count_interval([q] * n, level)
        out.append(Prediction(f"{name}, from the distribution", n * q, lo, hi))
    for name, chance in view.chances():
        ps = [chance(t.actual_ms) for t in trials]
        lo, hi = reforms.count_interval(ps, level)
        out.append(Prediction(f"{name}, from the stalls as applied", sum(ps), lo, hi))
    return out


def table(dist: LogNormalStalls, trials: Sequence[Trial], view: ModelView, level: float) -> str:
    """The result as Markdown: counts, each prediction with its interval, and stalls by length."""
    n = len(trials)
    reformed = sum(1 for t in trials if t.memberships)
    lines = [
        f"stalls: log-normal, median {dist.median_ms:g} ms, sigma {dist.sigma:g}, cut at {dist.cap_ms:g} ms; "
        f"model: tolerance {view.tolerance_ms:.0f} ms ({view.bound} bound), P(s) {view.transition.describe()}",
        f"{n} stalls; {reformed} re-formed the ring ({sum(t.memberships for t in trials)} \"A new membership\" "
        f"lines, {sum(t.late for t in trials)} late); {sum(t.link_down for t in trials)} took a knet link down",
        "",
        f"| prediction | expected | {level:.0%} interval | counted | inside |",
        "|---|---|---|---|---|",
    ]
    for p in predictions(dist, trials, view, level):
        if p.low == p.high:  # a step given the stall lengths leaves nothing to chance
            inside, span = "-", "none (no chance left)"
        else:
            inside, span = ("yes" if p.low <= reformed <= p.high else "no"), f"{p.low}-{p.high}"
        lines.append(f"| {p.name} | {p.expected:.1f} | {span} | {reformed} | {inside} |")
    centre, width = fit_ramp(trials)
    lines += ["", f"A ramp fitted to these stalls (maximum likelihood, not a prediction): centre {centre:.0f} ms, "
              f"width {width:.0f} ms; by stalled node: " + ", ".join(
                  "n{} {:.0f}/{:.0f} ms".format(i, *fit_ramp([t for t in trials if t.node == i]))
                  for i in range(1, NODES + 1) if any(t.node == i for t in trials)) + " (centre/width)."]
    lines += ["", "| stall (as applied) | stalls | re-formed | fraction | model P(s) | "
              f"ramp {view.ramp_ms:.0f} | step |",
              "|---|---|---|---|---|---|---|"]
    chances = [c for _, c in view.chances()]
    order = [chances[0], chances[2], chances[1]]
    for lo, hi in itertools.pairwise(BIN_EDGES_MS):
        sel = [t for t in trials if lo <= t.actual_ms < hi]
        if not sel:
            continue
        got = sum(1 for t in sel if t.memberships)
        cells = [sum(c(t.actual_ms) for t in sel) / len(sel) for c in order]
        label = f"{lo}-{hi} ms" if hi < 100_000 else f">= {lo} ms"
        lines.append(f"| {label} | {len(sel)} | {got} | {got / len(sel):.2f} | " + " | ".join(f"{c:.2f}" for c in cells)
                     + " |")
    return "\n".join(lines)


BIN_EDGES_MS = (0, 200, 300, 400, 500, 550, 600, 650, 700, 750, 800, 900, 1000, 1200, 100_000)
"""The stall-length bins of the tables (docs/validation.md)."""


def fit_ramp(trials: Sequence[Trial]) -> tuple[float, float]:
    """Maximum-likelihood centre and width of `reforms.reform_probability` for these trials (grid:
    centre in 5 ms steps over 300-1000 ms, width in 20 ms steps up to 1200 ms): how the real
    transition compares with the model's."""
    best = (-math.inf, 0.0, 0.0)
    for c in range(300, 1001, 5):
        for w in range(0, 1201, 20):
            ll = 0.0
            for t in trials:
                p = min(max(reforms.reform_probability(t.actual_ms, c, w), 1e-6), 1 - 1e-6)
                ll += math.log(p if t.memberships else 1 - p)
            if ll > best[0]:
                best = (ll, float(c), float(w))
    return best[1], best[2]
