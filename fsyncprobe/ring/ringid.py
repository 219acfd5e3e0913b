"""The ring-id write's consequence: a membership change followed by a frozen node, and another.

Pure. At every new membership each node's corosync enters the COMMIT state and stores the new
ring id before it passes the commit token on (exec/totemsrp.c `memb_state_commit_enter` calls
`corosync_ring_id_store`, exec/main.c: creat + an 8-byte write + close, no fsync, in the main
thread). While that write blocks, the node holds the commit token; the nodes that already
entered COMMIT restarted their token timers (`reset_token_timeout` in `memb_state_commit_enter`)
and declare the token lost when it has not come back within T ("The token was lost in the
COMMIT state"): the new ring is abandoned, a new membership is gathered and formed, and every
node stores the ring id again. In corosync issue 520 such a write took 4.687 s and corosync then
logged "Corosync main process was not scheduled for 4987.3057 ms".

Which clock: the token bound of `fsyncprobe.ring.model.stall_bounds` (T - R). Not the knet-link
bound: a write blocks corosync's main thread only, and libknet's heartbeat runs in its own
thread (libknet threads_heartbeat.c `_handle_heartbt_thread`), which keeps answering pings,
unlike a SIGSTOP, which stops every thread.

So with p the chance that one node's write outlasts that bound (measured: k of n writes; an exact
Clopper-Pearson interval, which stays wide when n is small), a membership change of an N-node ring
is followed by another with probability q = 1 - prod over nodes of (1 - p_i) (nodes independent),
and, since each re-formation writes again, by q / (1 - q) further re-formations on average (a
geometric cascade).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fsyncprobe.ring.inputs import NodeDistribution
from fsyncprobe.ring.tail import CI_LEVEL
from fsyncprobe.ring.types import ModelReport, RingIdModel
from fsyncprobe.stats.histogram import Histogram, bucket_value
from fsyncprobe.stats.summary import SavedHistogram, summarize


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in logs from the shorter side."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if k > n // 2:  # P(X <= k) = 1 - P(X >= k + 1) = 1 - P(n - X <= n - k - 1)
        return 1.0 - _binom_cdf(n - k - 1, n, 1.0 - p)
    lp, lq = math.log(p), math.log1p(-p)
    lgn = math.lgamma(n + 1)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
    return min(total, 1.0)


def clopper_pearson(k: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """The exact two-sided binomial interval for k successes in n trials (Clopper & Pearson
    1934): the p whose tails leave (1 - level) / 2 on each side; [0, 1] when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"{k} successes in {n} trials")
    alpha = (1.0 - level) / 2

    def bisect(pred_low: bool) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(80):
            mid = (lo + hi) / 2
            # lower end: P(X >= k; p) = alpha, rising in p; upper end: P(X <= k; p) = alpha, falling in p
            too_big = (1.0 - _binom_cdf(k - 1, n, mid) > alpha) if pred_low else (_binom_cdf(k, n, mid) < alpha)
            lo, hi = (lo, mid) if too_big else (mid, hi)
        return (lo + hi) / 2

    low = 0.0 if k == 0 else bisect(True)
    high = 1.0 if k == n else bisect(False)
    return low, high


def count_over(h: SavedHistogram | Histogram, x_ns: float) -> tuple[int, int]:
    """(samples longer than x, all samples) of a histogram (each bucket at its value, within 0.4 %)."""
    saved = SavedHistogram.of(h) if isinstance(h, Histogram) else h
    over = sum(c for i, c in saved.buckets if bucket_value(i) > x_ns and c > 0)
    if saved.max_ns > x_ns and over == 0 and saved.buckets:
        over = 1  # the exact maximum is over even when its bucket's value is not
    total = sum(max(c, 0) for _, c in saved.buckets)
    return over, total


def _cascade(q: float) -> float | None:
    return None if q >= 1.0 else q / (1.0 - q)


def ring_id_model(nodes: Sequence[NodeDistribution], model: ModelReport) -> RingIdModel | None:
    """The ring-id write's consequence for `model`'s ring, from the nodes that measured it (None
    when none did). Unmeasured ring members are assumed like the worst measured node."""
    measured = [nd for nd in nodes if nd.ring_id_histogram is not None]
    if not measured:
        return None
    if model.stall_tolerance_bound_by == "given":
        tol_ms, bound_by = model.stall_tolerance_ms, "given"
    else:
        token = next((b for b in model.stall_bounds if b.name == "token"), None)
        tol_ms, bound_by = (token.stall_ms, "token") if token else (model.stall_tolerance_ms,
                                                                   model.stall_tolerance_bound_by)
    x_ns = tol_ms * 1e6
    per_node: list[tuple[float, float, float, int, int, NodeDistribution]] = []
    for nd in measured:
        assert nd.ring_id_histogram is not None
        k, n = count_over(nd.ring_id_histogram, x_ns)
        lo, hi = clopper_pearson(k, n)
        per_node.append((k / n if n else 0.0, lo, hi, k, n, nd))
    per_node.sort(key=lambda t: (t[0], t[2]), reverse=True)
    worst = per_node[0]
    ring = [(p, lo, hi) for p, lo, hi, *_ in per_node][: model.nodes]
    ring += [(worst[0], worst[1], worst[2])] * max(model.nodes - len(ring), 0)

    def any_node(idx: int) -> float:
        keep = 1.0
        for t in ring:
            keep *= 1.0 - t[idx]
        return 1.0 - keep

    q, q_lo, q_hi = any_node(0), any_node(1), any_node(2)
    extra = _cascade(q)
    worst_h = worst[5].ring_id_histogram
    assert worst_h is not None
    h = worst_h.to_histogram() if isinstance(worst_h, SavedHistogram) else worst_h
    summary = summarize(h)
    dirs: list[str] = []
    for nd in measured:
        dirs += [d for d in nd.ring_id_state_dirs if d not in dirs]
    return RingIdModel(
        state_dirs=tuple(dirs), samples=worst[4], over_tolerance=worst[3], max_ms=summary.max_ns / 1e6,
        p99_ms=summary.p99_ns / 1e6, tolerance_ms=tol_ms, tolerance_bound_by=bound_by,
        node_probability=worst[0], node_probability_low=worst[1], node_probability_high=worst[2],
        change_probability=q, change_probability_low=q_lo, change_probability_high=q_hi,
        extra_reformations_per_change=extra, extra_reformations_per_change_high=_cascade(q_hi),
        extra_reformations_per_year=None if extra is None else extra * model.false_losses_per_year,
        confidence_level=CI_LEVEL,
    )
