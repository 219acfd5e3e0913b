"""The token-ring model: from measured stalls to cluster consequences (shared/DESIGN.md, "Token-ring model").

Pure: no I/O, no clock, no printing. Every input that is not measured is a named, reported
assumption (`ModelReport.assumptions`). The Corosync facts come from `fsyncprobe.ring.corosync`, which
cites corosync.conf(5) and exec/totemconfig.c for each of them.

What the model says, step by step:

1. Timers. From `token`, `token_coefficient` and the node count N, corosync derives the effective
   token T, consensus, token_retransmit, hold and (knet) the link ping interval and timeout
   (`corosync.derive_timers`).
2. Stall tolerance: the shortest silence of one node's corosync that makes the others form a new
   membership. Two clocks bound it (see `stall_bounds`): the token (a node that has not seen the
   token for T declares it lost, totemsrp.c `timer_function_orf_token_timeout`), and, with knet,
   the link heartbeat: a peer that has not answered pings for `knet_ping_timeout` is declared
   down, and its traffic (the token included) is dropped until `knet_pong_count` pongs bring the
   link back (libknet `libknet/threads_heartbeat.c`). The knet clock is half the token by
   default (ping_timeout = T / pong_count, pong_count = 2), so it is the one that bites: on our
   3-node test ring (T = 1650 ms) a stall of about 600-650 ms re-formed the membership half the
   time.
3. Rotation: R(N) = sum over nodes of (one-way latency + jitter + typical scheduling delay) + hold
   (the representative holds an idle token for `hold`, conf(5) `hold`).
4. Stall rate: how often one node's corosync is silent longer than x. Measured: the scheduling
   lateness of a real-time probe beside the sync workload (`fsyncprobe.measure.schedprobe`); optionally
   `coupling x sync latency`. Beyond the data, a generalised Pareto tail fitted to the largest
   samples (probability-weighted moments, Hosking & Wallis 1987), never lighter than exponential,
   with a seeded bootstrap confidence interval.
5. From the tolerance to a rate: a stall of s re-forms the ring with a chance P(s) that rises from
   0 to 1 around the tolerance (the knet ping period and heartbeat tick: `reform_transition`,
   `fsyncprobe.ring.transition`); a node's false-loss rate is its stall rate averaged over it.
   Nodes independent: the cluster's false-membership rate is the sum of the nodes' rates.
6. Outputs: false losses per year, the minimum safe effective token (target: one false loss per
   `target_years_per_false_loss` per cluster), the largest safe N, and the HA ceiling
   (T + consensus + sync + LRM loop + lock retry + p99.9 commit under the 60 s watchdog).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from fsyncprobe.ring import corosync
from fsyncprobe.ring.inputs import NodeDistribution
from fsyncprobe.ring.tail import CI_LEVEL, TAIL_FRACTION, TAIL_MIN_EXCEEDANCES, XI_MAX_DEFAULT, StallRate
from fsyncprobe.ring.transition import Transition, knet_ping_period_ms, step
from fsyncprobe.ring.types import Assumption, Evidence, HaCeiling, ModelReport, NodeModel, RingAnswers, TimerBound
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram
from fsyncprobe.units import format_seconds

SECONDS_PER_YEAR = 365.25 * 86400
MAX_NODES_SEARCHED = 128
"""Largest ring the model considers (knet and votequorum allow more; nobody runs a Totem ring that
large: the token rotates through every node)."""
MIN_EFFECTIVE_TOKEN_MS = 126
"""Smallest effective token corosync accepts with the default retransmit constant: token_retransmit
= T / 4.2 may not be under MINIMUM_TIMEOUT = 3 x 1000/HZ = 30 ms (totemconfig.c)."""
MAX_EFFECTIVE_TOKEN_MS = 600_000
"""Search limit for the minimum safe token (10 minutes)."""
HEAVY_TAIL_WARN = 0.1
"""Shape estimate above which the heavy-tail warning is considered (it is given only when the
heavier tail would change the false-membership finding)."""
MAX_EXTRAPOLATION_DEFAULT = 10.0
"""How far beyond the observed time the fitted tail may carry a recommendation below the
configured token: the per-node return period the target asks may be at most this many times the
observation. Extreme-value intervals widen fast beyond the span observed (Coles 2001, "An
Introduction to Statistical Modeling of Extreme Values", ch. 4: return levels far beyond the
record rest on the model, not the data); a factor of 10 is a stated, configurable choice."""


@dataclass(frozen=True)
class ModelParams:
    """Everything the model assumes; None means "corosync's default" or "derive it"."""

    nodes: int = 3
    """Nodes in the ring."""
    token_ms: float | None = None
    """`totem.token` as configured (None: 3000 ms, the 3.1.x default)."""
    token_coefficient_ms: float | None = None
    """`totem.token_coefficient` (None: 650 ms)."""
    network_latency_ms: float = 0.2
    """One-way network latency per hop (a LAN; `--network-latency-ms`)."""
    jitter_ms: float = 0.1
    """Extra per-hop delay on top of the latency (`--jitter-ms`)."""
    coupling: float | None = None
    """How much of a sync latency stalls corosync: None = use the measured scheduling stalls only;
    k >= 0 adds `k x sync latency` as a stall (0 = the source code's view, 1 = the folk worst case)."""
    target_years_per_false_loss: float = 10.0
    """Acceptable: one false membership change per this many years per cluster."""
    consensus_ms: float | None = None
    """`totem.consensus` (None: 1.2 x T)."""
    hold_ms: float | None = None
    """`totem.hold` (None: derived from token_retransmit)."""
    token_retransmits_before_loss_const: int | None = None
    """`totem.token_retransmits_before_loss_const` (None: 4)."""
    transport: str = "knet"
    """`totem.transport`: `knet` (3.x default) adds the link-heartbeat bound."""
    knet_ping_interval_ms: float | None = None
    """`knet_ping_interval` (None: T / (pong_count x 2))."""
    knet_ping_timeout_ms: float | None = None
    """`knet_ping_timeout` (None: T / pong_count)."""
    knet_pong_count: int | None = None
    """`knet_pong_count` (None: 2)."""
    idle_ring: bool = True
    """Whether the token is held for `hold` once per rotation (an idle ring, as a Proxmox cluster
    mostly is; conf(5) `hold`, `seqno_unchanged_const`)."""
    sync_phase_ms: float = corosync.SYNC_PHASE_MS_DEFAULT
    """Service synchronisation after a new membership, in the HA ceiling."""
    watchdog_s: float = corosync.WATCHDOG_S
    """HA watchdog timeout."""
    lrm_loop_s: float = corosync.LRM_LOOP_S
    """HA LRM loop period."""
    lock_retry_s: float = corosync.LOCK_RETRY_S
    """HA LRM lock-retry delay."""
    ha_margin_s: float = 2.0
    """Headroom kept under the watchdog."""
    stall_tolerance_ms: float | None = None
    """Override the computed stall tolerance (a measured figure)."""
    conf_source: str | None = None
    """Where token settings were read from (corosync.conf path), for the assumptions list."""
    tail_shape_max: float = XI_MAX_DEFAULT
    """Largest generalised Pareto shape the tail fit may take (0 forces an exponential tail)."""
    max_extrapolation: float = MAX_EXTRAPOLATION_DEFAULT
    """How many times the observed time the target's per-node return period may be before the
    evidence no longer supports a token below the configured one (`--max-extrapolation`)."""
    live_timers: corosync.TotemTimers | None = None
    """The timers the running ring uses (`runtime.config.totem.*`, `fsyncprobe.ring.live`): taken as
    they are, with no formula, for the ring as it runs (its node count, its token); the what-if
    searches over other tokens and ring sizes derive theirs."""
    live_rotation_ms: float | None = None
    """The running ring's mean time between token receipts (`stats.srp.mtt_rx_token`): the
    modelled rotation of the ring as it runs is never taken shorter than it."""
    value_sources: tuple[tuple[str, str], ...] = ()
    """(assumption name, where its value came from) for values given on the command line or read
    from the live ring; these labels replace the default ones in `ModelReport.assumptions`."""
    knet_heartbeat_tick_ms: float = 200.0
    """libknet's heartbeat tick (`threads_timer_res`, libknet.h KNET_THREADS_TIMER_RES; corosync
    does not change it): pings leave and pong timeouts are checked only on it, which spreads the
    stall that re-forms the ring (`reform_transition`; `--knet-heartbeat-tick-ms`)."""
    reform_step: bool = False
    """Count only the stalls beyond the stall tolerance (the tolerance as a step), as the model did
    before the transition: for comparison; it predicted 10-16 % too few membership changes on real
    rings (docs/validation.md)."""


# --- Stall tolerance -------------------------------------------------------------------------


def rotation_ms(timers: corosync.TotemTimers, params: ModelParams, sched_delay_ms: Sequence[float]) -> float:
    """R(N): every hop's one-way latency + jitter + that node's typical scheduling delay, plus
    the representative's hold once per rotation when the ring is idle."""
    per_hop = [params.network_latency_ms + params.jitter_ms + d for d in sched_delay_ms]
    hold = timers.hold_ms if params.idle_ring else 0.0
    r = sum(per_hop) + hold
    if params.live_rotation_ms is not None and timers == params.live_timers:
        # The ring as it runs: its own token interval (stats.srp.mtt_rx_token) when that is longer.
        r = max(r, params.live_rotation_ms)
    return r


KNET_THREADS_TIMER_RES_MS = 200
"""libknet's heartbeat thread wakes every `threads_timer_res` (libknet.h `KNET_THREADS_TIMER_RES`
200000 us; corosync 3.1 does not change it): pings leave and pong timeouts are checked only then.
The two effects shift the link-down stall in opposite directions and the model leaves both out
(see `stall_bounds`)."""
KNET_PONG_TIMEOUT_LAT_MUL = 2
"""libknet adds twice the measured link latency to the pong timeout (links.h
`KNET_LINK_PONG_TIMEOUT_LAT_MUL`, threads_heartbeat.c `_adjust_pong_timeouts`)."""


def stall_bounds(timers: corosync.TotemTimers, rotation: float, link_rtt_ms: float = 0.0) -> tuple[TimerBound, ...]:
    """Every clock that turns one node's silence into a new membership, smallest first.

    token: each node restarts its token timer when the token arrives and declares it lost after T
    (totemsrp.c `reset_token_timeout`, `timer_function_orf_token_timeout`). A node whose corosync
    stops holds the token up for its stall; the node after it last saw the token up to one
    rotation earlier, so the stall that expires its timer is T - R.

    knet link: every node pings every peer every `knet_ping_interval` and declares a link down
    when the last pong is older than `knet_ping_timeout` plus twice the link latency (libknet
    threads_heartbeat.c `_handle_check_each`, `_adjust_pong_timeouts`). When the stall begins
    the last pong is on average half a ping interval old, so the median stall that takes the link
    to the stalled node down is `knet_ping_timeout + 2 x latency - knet_ping_interval / 2`
    (3T/8 with the defaults). Both happen on the heartbeat thread's 200 ms tick: pings leave only
    on a tick (so they are further apart than the interval: the median comes earlier) and the
    timeout is noticed only on a tick (later); on our test ring the two cancelled (measured
    medians 582-662 ms against 619 ms at T = 1650, 1355 ms against 1369 ms at T = 3650), so the
    model leaves both out. A down link carries no data (the token included) until
    `knet_pong_count` + 1 pongs came back, at least two ping intervals (T/2 by default) after the
    node resumes, so with the stall itself the token timer runs out: a new membership. After a
    link went down libknet multiplies its timeout by 10, one step less each second
    (`KNET_LINK_PONG_TIMEOUT_BACKOFF`): the bound is for a ring that has been quiet for 10 s.

    fail_recv_const: rotations without receiving expected messages (totemsrp.c); minutes at any
    real rotation, listed for completeness.
    """
    out = [
        TimerBound(
            "token", max(timers.token_ms - rotation, 0.0),
            f"T - R = {timers.token_ms} - {rotation:.0f} ms: the next node's token timer "
            "(totemsrp.c timer_function_orf_token_timeout) runs from its last token, up to one rotation before",
        ),
        TimerBound(
            "fail_recv_const", timers.fail_recv_const * max(rotation, 1.0),
            f"{timers.fail_recv_const} rotations without expected messages (totemconfig.c FAIL_TO_RECV_CONST)",
        ),
    ]
    if timers.knet_ping_timeout_ms is not None and timers.knet_ping_interval_ms is not None:
        knet = (timers.knet_ping_timeout_ms + KNET_PONG_TIMEOUT_LAT_MUL * link_rtt_ms
                - timers.knet_ping_interval_ms / 2)
        out.append(TimerBound(
            "knet link", max(min(knet, timers.token_ms - rotation), 0.0),
            f"knet_ping_timeout + 2 x latency - knet_ping_interval / 2 = {timers.knet_ping_timeout_ms} + "
            f"{KNET_PONG_TIMEOUT_LAT_MUL * link_rtt_ms:g} - {timers.knet_ping_interval_ms}/2 ms: the median stall "
            f"after which the link is declared down (libknet threads_heartbeat.c); it needs "
            f"{timers.knet_pong_count} + 1 pongs to come back, and the token times out meanwhile",
        ))
    return tuple(sorted(out, key=lambda b: b.stall_ms))


def reform_transition(params: ModelParams, timers: corosync.TotemTimers, tol_ms: float,
                      bounds: Sequence[TimerBound]) -> Transition:
    """P(s), the chance that a stall of s ms re-forms the ring (`fsyncprobe.ring.transition`):
    centred on the stall tolerance; spread by the ping period on the heartbeat tick and the tick
    itself when the knet link is the clock that bites, a step otherwise (the token timer runs from
    the token's last pass, which the rotation, milliseconds, barely spreads)."""
    if params.reform_step or timers.knet_ping_interval_ms is None or bounds[0].name != "knet link":
        return step(tol_ms)
    tick = max(params.knet_heartbeat_tick_ms, 0.0)
    return Transition(tol_ms, knet_ping_period_ms(timers.knet_ping_interval_ms, tick), tick)


def report_transition(params: ModelParams, report: ModelReport) -> Transition:
    """The transition `run_model(..., params)` used for `report`."""
    return reform_transition(params, _timers(params, report.nodes), report.stall_tolerance_ms, report.stall_bounds)


def _saved(h: SavedHistogram | Histogram | None) -> SavedHistogram | None:
    return SavedHistogram.of(h) if isinstance(h, Histogram) else h


class _NodeRates:
    """A node's stall rate: the measured scheduling stalls and/or coupling x sync latency."""

    def __init__(self, node: NodeDistribution, coupling: float | None, warnings: list[str],
                 xi_max: float = XI_MAX_DEFAULT) -> None:
        self.hostname = node.hostname
        self.parts: list[StallRate] = []
        sched = None
        stall_h, sync_h = _saved(node.stall_histogram), _saved(node.sync_histogram)
        if stall_h is not None and any(c > 0 for _, c in stall_h.buckets):
            sched = StallRate(stall_h, node.stall_measured_ns or node.measured_ns, 1.0,
                              f"scheduling stalls ({node.stall_policy or 'probe'})", xi_max)
            self.parts.append(sched)
        k = coupling
        if k is None and sched is None:
            k = 1.0
            warnings.append(f"{node.hostname}: no scheduling-stall measurement; assumed coupling 1 "
                            "(every sync latency stalls corosync: the folk worst case)")
        if k is not None and k > 0 and sync_h is not None:
            self.parts.append(StallRate(sync_h, node.measured_ns, k, f"sync latency x {k:g}", xi_max))
        if not self.parts:
            warnings.append(f"{node.hostname}: nothing in this view can stall corosync (no stall samples, "
                            "coupling 0): its false-loss rate is 0")

    def rate(self, x_ns: float) -> float:
        # The mechanisms are not independent (the same I/O burst shows in both): take the worse.
        return max((p.rate(x_ns) for p in self.parts), default=0.0)

    def upper(self, x_ns: float) -> float:
        """The conservative end of the rate: the worse mechanism's upper interval end."""
        return max((p.upper(x_ns) for p in self.parts), default=0.0)

    def reforms(self, tr: Transition, upper: bool = False) -> float:
        """Membership changes per second this node's stalls cause: the stall rate (or its upper
        end) averaged over the thresholds of `tr` (`Transition.mean`)."""
        f = self.upper if upper else self.rate
        return tr.mean(lambda t_ms: f(t_ms * 1e6))

    def observed_s(self) -> float:
        """Seconds of data behind the rate (the shortest of its mechanisms')."""
        return min((p.measured_s for p in self.parts), default=0.0)

    def worst(self, x_ns: float) -> StallRate | None:
        return max(self.parts, key=lambda p: p.rate(x_ns), default=None)

    def typical_delay_ms(self) -> float:
        sched = [p for p in self.parts if p.source.startswith("scheduling")]
        return sched[0].mean_ns / 1e6 if sched else 0.0


# --- The model -------------------------------------------------------------------------------


def _timers(params: ModelParams, nodes: int, token_ms: float | None = None) -> corosync.TotemTimers:
    live = params.live_timers
    if live is not None and token_ms is None and live.nodes == nodes:
        return live  # the running ring's own timers (runtime.config.totem.*): no formula needed

    def opt(v: float | None) -> int | None:
        return None if v is None else round(v)

    s = corosync.CorosyncSettings(
        nodes=nodes, token_ms=opt(token_ms if token_ms is not None else params.token_ms),
        token_coefficient_ms=opt(params.token_coefficient_ms), consensus_ms=opt(params.consensus_ms),
        hold_ms=opt(params.hold_ms), token_retransmits_before_loss_const=params.token_retransmits_before_loss_const,
        transport=params.transport, knet_ping_interval_ms=opt(params.knet_ping_interval_ms),
        knet_ping_timeout_ms=opt(params.knet_ping_timeout_ms), knet_pong_count=params.knet_pong_count,
    )
    return corosync.derive_timers(s, nodes)


def _tolerance(params: ModelParams, timers: corosync.TotemTimers, delays: Sequence[float]) -> tuple[float, float]:
    r = rotation_ms(timers, params, delays)
    if params.stall_tolerance_ms is not None:
        return params.stall_tolerance_ms, r
    return stall_bounds(timers, r, _rtt(params))[0].stall_ms, r


def _rtt(params: ModelParams) -> float:
    # knet's latency figure is the ping round trip (threads_rx.c: pong time - ping time).
    return 2 * (params.network_latency_ms + params.jitter_ms)


def _ring_delays(rates: Sequence[_NodeRates], n: int) -> list[float]:
    # Measured nodes first, the rest like the slowest measured one (worst typical delay).
    delays = sorted((r.typical_delay_ms() for r in rates), reverse=True)
    worst = delays[0] if delays else 0.0
    return (delays + [worst] * n)[:n]


def _cluster_rate(rates: Sequence[_NodeRates], n: int, tr: Transition, upper: bool = False) -> float:
    """False losses per second of an n-node ring: the nodes' rates (or their upper ends) over the
    transition `tr`, summed, members beyond the measured ones like the worst measured."""
    per = sorted((r.reforms(tr, upper) for r in rates), reverse=True)
    if not per:
        return 0.0
    return sum(per[:n]) + per[0] * max(n - len(per), 0)


def _interval_low(part: StallRate, t_ms: float) -> float:
    return part.interval(t_ms * 1e6)[0]


def _rate_with_shape(part: StallRate, xi: float, t_ms: float) -> float:
    return part.rate_with_shape(t_ms * 1e6, xi)


def _ring_rate_upper(params: ModelParams, rates: Sequence[_NodeRates], ring: int, t: corosync.TotemTimers) -> float:
    """The conservative end of the false-loss rate of a `ring`-node ring with timers `t`."""
    r = rotation_ms(t, params, _ring_delays(rates, ring))
    bounds = stall_bounds(t, r, _rtt(params))
    tol = params.stall_tolerance_ms if params.stall_tolerance_ms is not None else bounds[0].stall_ms
    return _cluster_rate(rates, ring, reform_transition(params, t, tol, bounds), upper=True)


def run_model(nodes: Sequence[NodeDistribution], params: ModelParams) -> ModelReport:
    """Turn measured distributions into ring consequences. With one node, every ring member is
    assumed like it; with several, each is used and any further members are assumed like the
    slowest. Deterministic for a given `params.seed`."""
    if params.nodes < 1:
        raise ValueError("nodes must be at least 1")
    warnings: list[str] = []
    rates = [_NodeRates(nd, params.coupling, warnings, params.tail_shape_max) for nd in nodes]
    n = params.nodes
    if len(nodes) > n:
        warnings.append(f"{len(nodes)} node reports for a {n}-node ring: modelled {len(nodes)} nodes")
        n = len(nodes)
    timers = _timers(params, n)
    delays = _ring_delays(rates, n)
    tol_ms, rot = _tolerance(params, timers, delays)
    bounds = stall_bounds(timers, rot, _rtt(params))
    bound_by = "given" if params.stall_tolerance_ms is not None else bounds[0].name
    x_ns = tol_ms * 1e6
    tr = reform_transition(params, timers, tol_ms, bounds)
    per_year = _cluster_rate(rates, n, tr) * SECONDS_PER_YEAR
    target_rate = 1.0 / params.target_years_per_false_loss

    node_models: list[NodeModel] = []
    for r in rates:
        w = r.worst(x_ns)
        lo = hi = 0.0
        if w is not None:
            # the upper end the recommendations use: the worse mechanism's, which need not be the
            # mechanism with the worse point estimate
            lo, hi = tr.mean(functools.partial(_interval_low, w)), r.reforms(tr, upper=True)
        node_models.append(NodeModel(
            hostname=r.hostname, assumed=False, tail=w.describe() if w else None,
            stalls_over_tolerance=w.count_above(x_ns) if w else 0,
            false_losses_per_year=r.reforms(tr) * SECONDS_PER_YEAR,
            false_losses_per_year_low=lo * SECONDS_PER_YEAR, false_losses_per_year_high=hi * SECONDS_PER_YEAR,
            extrapolated=w is not None and w.extrapolated(x_ns),
        ))
    ordered = sorted(node_models, key=lambda m: m.false_losses_per_year, reverse=True)
    extra = n - len(node_models)
    if ordered and extra > 0:
        worst = ordered[0]
        for i in range(extra):
            node_models.append(NodeModel(
                hostname=f"(assumed like {worst.hostname}) #{i + 1}", assumed=True, tail=worst.tail,
                stalls_over_tolerance=worst.stalls_over_tolerance, false_losses_per_year=worst.false_losses_per_year,
                false_losses_per_year_low=worst.false_losses_per_year_low,
                false_losses_per_year_high=worst.false_losses_per_year_high, extrapolated=worst.extrapolated,
            ))
    low = sum(m.false_losses_per_year_low for m in node_models)
    high = sum(m.false_losses_per_year_high for m in node_models)
    bottleneck = ordered[0].hostname if ordered else None

    # Every recommendation meets the target at the conservative end of the interval.
    def safe_at(eff_token: int, ring: int) -> bool:
        t = _timers_effective(params, ring, eff_token)
        return _ring_rate_upper(params, rates, ring, t) * SECONDS_PER_YEAR <= target_rate

    min_token = _min_effective_token(lambda t: safe_at(t, n))
    coeff_ms = float(_coefficient(params))
    setting = None if min_token is None else _token_setting(min_token, n, coeff_ms)

    ha = _ha_ceiling(params, timers, nodes)
    configured_token = float(params.token_ms if params.token_ms is not None else corosync.TOKEN_MS_DEFAULT)

    def ring_ok(ring: int) -> bool:
        t = _timers(params, ring)
        if not _ha_ceiling(params, t, nodes).ok:
            return False
        return _ring_rate_upper(params, rates, ring, t) * SECONDS_PER_YEAR <= target_rate

    max_nodes = 1
    for ring in range(2, MAX_NODES_SEARCHED + 1):
        if not ring_ok(ring):
            break
        max_nodes = ring

    if any(nm.extrapolated for nm in node_models if not nm.assumed):
        warnings.append(f"no measured stall reached the stall tolerance ({tol_ms:.0f} ms): the rate is extrapolated "
                        "from the fitted tail")
    for r in rates:
        for part in r.parts:
            if part.fitted and part.xi_estimate > max(HEAVY_TAIL_WARN, params.tail_shape_max):
                xi = part.xi_estimate
                heavy = tr.mean(functools.partial(_rate_with_shape, part, xi)) * SECONDS_PER_YEAR
                if heavy <= target_rate or per_year > target_rate:
                    continue  # the heavier tail changes no finding: within the target, or already over it
                warnings.append(
                    f"{r.hostname}: the largest {part.source} suggest a heavier tail than assumed (shape "
                    f"{part.xi_estimate:.2f}); with it this node alone would cause {heavy:.3g} false membership "
                    f"changes per year (--tail-shape-max {part.xi_estimate:.2f})")
    if len(nodes) == 1 and n > 1:
        warnings.append(f"one node measured: all {n} ring members assumed like {nodes[0].hostname}, independent")
    elif len(nodes) > 1:
        warnings.append("nodes assumed independent: a shared storage or network event would stall several at once")
    if rot >= timers.token_ms:
        warnings.append(f"the token rotation ({rot:.0f} ms) is not shorter than T ({timers.token_ms} ms): the ring "
                        "cannot stay formed")
    elif rot > timers.token_retransmit_ms:
        warnings.append(f"the token rotation ({rot:.0f} ms) exceeds token_retransmit "
                        f"({timers.token_retransmit_ms} ms): the token is retransmitted every rotation "
                        "(totemsrp.c token_retransmit timer)")
    if not ha.ok:
        warnings.append(f"HA ceiling exceeded by {-ha.headroom_ms:.0f} ms: on a real failure HA nodes may self-fence")

    ev_kind = "/".join(sorted({nd.evidence for nd in nodes})) or "none"
    answers = _answers(params, rates, n, timers, tol_ms, bounds, bound_by, min_token, coeff_ms, ha, ring_ok, ev_kind)

    return ModelReport(
        nodes=n, token_ms=configured_token, token_coefficient_ms=coeff_ms,
        effective_token_ms=float(timers.token_ms), consensus_ms=float(timers.consensus_ms),
        token_retransmit_ms=float(timers.token_retransmit_ms), hold_ms=float(timers.hold_ms),
        token_warning_ms=float(timers.token_warning_ms),
        knet_ping_interval_ms=None if timers.knet_ping_interval_ms is None else float(timers.knet_ping_interval_ms),
        knet_ping_timeout_ms=None if timers.knet_ping_timeout_ms is None else float(timers.knet_ping_timeout_ms),
        stall_tolerance_ms=float(tol_ms), stall_tolerance_bound_by=bound_by, stall_bounds=bounds,
        rotation_ms=rot, reformation_ms=float(timers.token_ms + timers.consensus_ms + corosync.REFORM_EXTRA_MS),
        false_losses_per_year=per_year, false_losses_per_year_low=min(low, per_year),
        false_losses_per_year_high=max(high, per_year), confidence_level=CI_LEVEL,
        years_per_false_loss=(1 / per_year) if per_year > 0 else None,
        target_years_per_false_loss=params.target_years_per_false_loss,
        min_safe_token_ms=None if min_token is None else float(min_token), min_safe_token_setting_ms=setting,
        max_safe_nodes=max_nodes, ha_ceiling=ha, node_models=tuple(node_models), bottleneck_node=bottleneck,
        assumptions=_assumptions(params, timers, n, len(nodes), tr), warnings=tuple(warnings), answers=answers,
    )


def _token_setting(eff_token_ms: float, n: int, coeff_ms: float) -> float:
    """The `totem.token` that gives effective T with n nodes; corosync refuses a token under
    MINIMUM_TIMEOUT = 3 x 1000/HZ = 30 ms (totemconfig.c)."""
    return float(max(eff_token_ms - (n - 2) * coeff_ms if n > 2 else eff_token_ms, 3 * corosync.HZ_TICK_MS))


def _evidence(params: ModelParams, rates: Sequence[_NodeRates], n: int, kind: str) -> Evidence:
    observed = min((r.observed_s() for r in rates if r.parts), default=0.0)
    period = n * params.target_years_per_false_loss * SECONDS_PER_YEAR
    extrapolation = period / observed if observed > 0 else math.inf
    return Evidence(observed_s=observed, kind=kind, target_period_s=period, extrapolation=extrapolation,
                    max_extrapolation=params.max_extrapolation, covered=extrapolation <= params.max_extrapolation,
                    needed_s=period / params.max_extrapolation)


def _answers(
    params: ModelParams, rates: Sequence[_NodeRates], n: int, timers: corosync.TotemTimers,
    tol_ms: float, bounds: Sequence[TimerBound], bound_by: str, min_token: int | None, coeff_ms: float, ha: HaCeiling,
    ring_ok: Callable[[int], bool], kind: str,
) -> RingAnswers:
    """The headline answers: the model's conservative figures, held to what the evidence covers.

    A token below the configured one is recommended only when the evidence covers the target
    (docs/model.md, "Evidence-bounded answers"); otherwise the configured token is the window's
    lower end and the basis says how much observation would move it. The largest ring counts only
    rings whose target the evidence covers."""
    ev = _evidence(params, rates, n, kind)
    configured = float(timers.token_ms)
    given = dict(params.value_sources)  # command line and live ring labels (fsyncprobe.ring.live)
    timers_from = ("live ring (runtime.config.totem.*)" if given.get("effective token T", "").startswith("live ring")
                   else given.get("token")
                   or (f"corosync.conf ({params.conf_source})" if params.conf_source else "corosync's defaults"))
    tol = bounds[0] if bound_by != "given" else None
    tol_basis = ("given on the command line" if tol is None else
                 f"{tol.name} timer, from the effective token {configured:,.0f} ms ({timers_from})")
    observed = format_seconds(ev.observed_s)
    if min_token is None and not any(p.fitted for r in rates for p in r.parts):
        token_min = None
        basis = (f"not determined: {observed} of {kind} stalls are too few to fit their tail (fewer than "
                 f"{TAIL_MIN_EXCEEDANCES} samples above the 99th percentile), and so few samples cannot rule "
                 "out a stall at any token; measure longer (a verdict's default run, or fsyncprobe watch)")
    elif min_token is None:
        token_min = None
        basis = (f"no effective token up to {MAX_EFFECTIVE_TOKEN_MS / 1000:,.0f} s meets the target at the "
                 f"conservative end of the {int(CI_LEVEL * 100)} % interval: take I/O load off the node")
    elif min_token > configured:
        token_min = float(min_token)
        basis = (f"raise T to at least {min_token:,} ms: at the configured {configured:,.0f} ms the conservative "
                 f"end of the {int(CI_LEVEL * 100)} % interval misses the target ({observed} of {kind} stalls)")
    elif ev.covered:
        token_min = float(min_token)
        basis = (f"{observed} of {kind} stalls cover the target ({ev.extrapolation:.1f} x beyond the data, at "
                 f"most {params.max_extrapolation:g} x allowed): T down to {min_token:,} ms meets it at the "
                 "conservative end")
    else:
        token_min = configured
        basis = (f"kept at the configured {configured:,.0f} ms: {observed} of {kind} stalls cannot support a "
                 f"lower one (the target, 1 false loss per {params.target_years_per_false_loss:g} years for {n} "
                 f"nodes, lies {ev.extrapolation:,.0f} x beyond the data; at most {params.max_extrapolation:g} x "
                 f"is trusted); a lower token needs each node observed for {format_seconds(ev.needed_s)} "
                 "(fsyncprobe watch)")
    covered_nodes = [ring for ring in range(2, MAX_NODES_SEARCHED + 1)
                     if ring * params.target_years_per_false_loss * SECONDS_PER_YEAR
                     <= params.max_extrapolation * ev.observed_s]
    max_nodes: int | None = None
    for ring in covered_nodes:
        if not ring_ok(ring):
            break
        max_nodes = ring
    if max_nodes is not None:
        nodes_basis = (f"{max_nodes} nodes meet the target at the conservative end with the configured token "
                       f"and the HA ceiling, within what {observed} of {kind} stalls cover")
    elif covered_nodes:
        nodes_basis = "not even 2 nodes meet the target at the conservative end with the configured token"
    else:
        nodes_basis = (f"{observed} of {kind} stalls do not reach the target even for 2 nodes, which needs each "
                       f"node observed for {format_seconds(ev.needed_s * 2 / n)} (fsyncprobe watch)")
    net_given = given.get("network_latency", "")
    net = ("live ring (knet latency_ave / 2)" if net_given.startswith("live ring") else "command line"
           if net_given or params.network_latency_ms != ModelParams.network_latency_ms else "assumed (a LAN)")
    sources = (
        ("stalls", f"{kind}: {observed}" + ("" if len(rates) == n else f", {n - len(rates)} more nodes assumed alike")),
        ("timers", timers_from),
        ("network latency", f"{params.network_latency_ms:g} ms one way + {params.jitter_ms:g} ms jitter, {net}"),
    )
    return RingAnswers(
        stall_tolerance_ms=float(tol_ms), stall_tolerance_basis=tol_basis,
        token_min_ms=token_min,
        token_min_setting_ms=None if token_min is None else _token_setting(token_min, n, coeff_ms),
        token_max_ms=ha.max_token_ms, token_basis=basis, max_nodes=max_nodes, max_nodes_basis=nodes_basis,
        evidence=ev, sources=sources,
    )


def _timers_effective(params: ModelParams, nodes: int, effective_token_ms: int) -> corosync.TotemTimers:
    """Timers for a given effective T (the knet and derived timers follow T)."""
    coeff = _coefficient(params)
    base = effective_token_ms - (nodes - 2) * coeff if nodes > 2 else effective_token_ms
    if base >= 1:
        t = _timers(params, nodes, base)
        if t.token_ms == effective_token_ms:
            return t
    # A coefficient larger than T: model T directly as a 2-node token (same derived timers).
    return _timers(params, 2, effective_token_ms)


def _min_effective_token(safe: Callable[[int], bool]) -> int | None:
    """Smallest integer T in [MIN, MAX] with safe(T) (safe is monotone in T)."""
    lo, hi = MIN_EFFECTIVE_TOKEN_MS, MAX_EFFECTIVE_TOKEN_MS
    if safe(lo):
        return lo
    if not safe(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if safe(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _ha_ceiling(params: ModelParams, timers: corosync.TotemTimers, nodes: Sequence[NodeDistribution]) -> HaCeiling:
    commits = [nd.commit_p999_ns for nd in nodes if nd.commit_p999_ns is not None]
    commit_ms = max(commits) / 1e6 if commits else 0.0
    fixed = params.sync_phase_ms + params.lrm_loop_s * 1000 + params.lock_retry_s * 1000 + commit_ms
    total = timers.token_ms + timers.consensus_ms + fixed
    budget = params.watchdog_s * 1000 - params.ha_margin_s * 1000
    headroom = budget - total
    # consensus = 1.2 T unless set: T + 1.2 T + fixed <= budget.
    if params.consensus_ms is None:
        max_token = (budget - fixed) / (1 + corosync.CONSENSUS_FACTOR)
    else:
        max_token = budget - fixed - params.consensus_ms
    max_token = max(max_token, 0.0)
    base = params.token_ms if params.token_ms is not None else corosync.TOKEN_MS_DEFAULT
    coeff = _coefficient(params)
    if base > max_token:
        max_n = 0
    elif coeff <= 0:
        max_n = MAX_NODES_SEARCHED
    else:
        max_n = min(MAX_NODES_SEARCHED, 2 + int((max_token - base) // coeff))
    return HaCeiling(
        token_ms=float(timers.token_ms), consensus_ms=float(timers.consensus_ms), sync_ms=params.sync_phase_ms,
        lrm_loop_ms=params.lrm_loop_s * 1000, lock_retry_ms=params.lock_retry_s * 1000, commit_p999_ms=commit_ms,
        total_ms=total, watchdog_ms=params.watchdog_s * 1000, margin_ms=params.ha_margin_s * 1000,
        headroom_ms=headroom, ok=headroom >= 0, max_token_ms=max_token, max_nodes=max_n,
    )


def _assumptions(params: ModelParams, t: corosync.TotemTimers, n: int, measured: int,
                 tr: Transition) -> tuple[Assumption, ...]:
    conf = f" ({params.conf_source})" if params.conf_source else ""
    cfg = "totemconfig.c"

    def src(value: object, default: str) -> str:
        return f"given{conf}" if value is not None else default

    token = params.token_ms if params.token_ms is not None else corosync.TOKEN_MS_DEFAULT
    coeff = _coefficient(params)
    rest = ", the rest assumed alike" if n > measured else ""
    stalls = ("the real-time probe's lateness (corosync issue 520)" if params.coupling is None
              else "given: stall = coupling x sync latency, the worse of that and the measured stalls")
    a = [
        Assumption("nodes", str(n), "nodes", f"{measured} measured{rest}"),
        Assumption("token", f"{token:g}", "ms", src(params.token_ms, "corosync 3.1 default (corosync.conf(5) token)")),
        Assumption("token_coefficient", f"{coeff:g}", "ms",
                   src(params.token_coefficient_ms, "corosync default (corosync.conf(5) token_coefficient)")),
        Assumption("effective token T", str(t.token_ms), "ms", f"token + (N - 2) x token_coefficient ({cfg})"),
        Assumption("consensus", str(t.consensus_ms), "ms", src(params.consensus_ms, f"1.2 x T ({cfg})")),
        Assumption("token_retransmit", str(t.token_retransmit_ms), "ms",
                   f"T / (token_retransmits_before_loss_const + 0.2) ({cfg})"),
        Assumption("hold", str(t.hold_ms), "ms", src(params.hold_ms, f"token_retransmit x 0.8 - 1000/HZ ({cfg})")),
        Assumption("transport", t.transport, "",
                   src(None if params.transport == "knet" else params.transport, "knet, the corosync 3 default")),
    ]
    if t.knet_ping_timeout_ms is not None:
        a += [
            Assumption("knet_ping_interval", str(t.knet_ping_interval_ms), "ms",
                       src(params.knet_ping_interval_ms, f"T / (knet_pong_count x 2) ({cfg}, corosync.conf(5))")),
            Assumption("knet_ping_timeout", str(t.knet_ping_timeout_ms), "ms",
                       src(params.knet_ping_timeout_ms, f"T / knet_pong_count ({cfg}, corosync.conf(5))")),
            Assumption("knet_pong_count", str(t.knet_pong_count), "",
                       src(params.knet_pong_count, f"2 ({cfg} KNET_PONG_COUNT)")),
            Assumption("knet heartbeat tick", f"{params.knet_heartbeat_tick_ms:g}", "ms",
                       "libknet threads_timer_res (libknet.h KNET_THREADS_TIMER_RES; corosync keeps it): pings "
                       "leave and pong timeouts are checked only on it (--knet-heartbeat-tick-ms)"),
        ]
    a.append(Assumption(
        "re-formation transition", tr.describe(), "",
        "the tolerance as a step (given)" if params.reform_step else
        "chance that a stall of s re-forms the ring: the last pong's age (uniform over the ping period on the "
        "tick) convolved with where the timeout is noticed (uniform over one tick), libknet threads_heartbeat.c "
        "send_ping; the rate is the stall rate averaged over it (docs/model.md)"
        if tr.upper_ms > tr.lower_ms else "a step: the token timer, not the knet link, is the clock that bites"))
    a += [
        Assumption("network_latency", f"{params.network_latency_ms:g}", "ms",
                   "one-way per hop (a LAN unless --network-latency-ms)"),
        Assumption("jitter", f"{params.jitter_ms:g}", "ms", "extra per hop (--jitter-ms)"),
        Assumption("idle ring (hold once per rotation)", "yes" if params.idle_ring else "no", "",
                   "corosync.conf(5) hold, seqno_unchanged_const"),
        Assumption("coupling", "measured scheduling stalls" if params.coupling is None else f"{params.coupling:g}",
                   "", stalls),
        Assumption("node independence", "yes", "", "stalls of different nodes assumed independent"),
        Assumption("tail model", f"generalised Pareto over the samples above the {100 - TAIL_FRACTION * 100:g}th "
                   "percentile" + (" (exponential)" if params.tail_shape_max == 0 else ""), "",
                   "probability-weighted moments (Hosking & Wallis 1987), "
                   f"shape clamped to [0, {params.tail_shape_max:g}]; analytic interval (Poisson count, "
                   "chi-square scale)"),
        Assumption("target", f"{params.target_years_per_false_loss:g}", "years per false loss", "per cluster"),
        Assumption("max extrapolation", f"{params.max_extrapolation:g}", "x the observed time",
                   "furthest the fitted tail may carry a token below the configured one (--max-extrapolation)"),
        Assumption("sync phase", f"{params.sync_phase_ms:g}", "ms",
                   "assumed service synchronisation after a new membership"),
        Assumption("watchdog", f"{params.watchdog_s:g}", "s", "HA watchdog (watchdog-mux)"),
        Assumption("LRM loop", f"{params.lrm_loop_s:g}", "s", "pve-ha-manager LRM loop"),
        Assumption("lock retry", f"{params.lock_retry_s:g}", "s", "pve-ha-manager LRM lock retry"),
        Assumption("HA margin", f"{params.ha_margin_s:g}", "s", "headroom kept under the watchdog"),
    ]
    if params.stall_tolerance_ms is not None:
        a.append(Assumption("stall tolerance", f"{params.stall_tolerance_ms:g}", "ms", "given"))
    if params.live_rotation_ms is not None and t == params.live_timers:
        a.append(Assumption("live token interval", f"{params.live_rotation_ms:g}", "ms",
                            "live ring (stats.srp.mtt_rx_token): the rotation is never taken shorter"))
    given = dict(params.value_sources)
    # "nodes" keeps how many were measured after where the count came from.
    return tuple(replace(x, source=given[x.name] + (f"; {x.source}" if x.name == "nodes" else ""))
                 if x.name in given else x for x in a)


def _coefficient(params: ModelParams) -> float:
    if params.token_coefficient_ms is not None:
        return params.token_coefficient_ms
    return corosync.TOKEN_COEFFICIENT_MS_DEFAULT


def params_from_settings(settings: corosync.CorosyncSettings, nodes: int, **overrides: object) -> ModelParams:
    """ModelParams for `nodes` nodes and the totem settings of a corosync.conf
    (`fsyncprobe.ring.conf.load_settings`; the node count from `conf.node_count`); keyword
    arguments (any other ModelParams field) that are not None win over the file."""

    def f(v: int | None) -> float | None:
        return None if v is None else float(v)

    base: dict[str, object] = {
        "token_ms": f(settings.token_ms), "token_coefficient_ms": f(settings.token_coefficient_ms),
        "consensus_ms": f(settings.consensus_ms), "hold_ms": f(settings.hold_ms),
        "token_retransmits_before_loss_const": settings.token_retransmits_before_loss_const,
        "transport": (settings.transport or "knet").lower(),
        "knet_ping_interval_ms": f(settings.knet_ping_interval_ms),
        "knet_ping_timeout_ms": f(settings.knet_ping_timeout_ms), "knet_pong_count": settings.knet_pong_count,
        "conf_source": settings.source, "nodes": nodes,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    return ModelParams(**base)  # type: ignore[arg-type]
