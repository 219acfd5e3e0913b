"""The token-ring model's results: frozen dataclasses a `Report` carries (`Report.model`).

Kept apart from `fsyncprobe.ring.model` (which computes them from reports) so that
`fsyncprobe.report.types` can import these without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsyncprobe.ring.corosync import CorosyncSettings


@dataclass(frozen=True)
class Assumption:
    """One input of the model that was not measured: its value and where it comes from."""

    name: str
    """Parameter name (as in `ModelParams` or corosync.conf)."""
    value: str
    """Its value, as used."""
    unit: str
    """Unit of `value` (`ms`, `nodes`, `years`, `` for plain numbers)."""
    source: str
    """Why this value: a default and its source, a user option, a file."""


@dataclass(frozen=True)
class TimerBound:
    """One clock that declares a silent node gone, and after how long."""

    name: str
    """Which timer (`knet link`, `token`, `fail_recv_const`)."""
    stall_ms: float
    """The stall of one node that this clock turns into a new membership."""
    explanation: str
    """How it follows from the settings, with its source."""


@dataclass(frozen=True)
class TailFit:
    """The rate of stalls longer than x for one node: empirical, then a fitted tail."""

    source: str
    """What the samples are (`scheduling stalls`, `sync latency x 1`)."""
    samples: int
    """Number of samples."""
    measured_s: float
    """Time the samples were collected over."""
    max_ms: float
    """Largest sample."""
    p999_ms: float
    """99.9th percentile."""
    mean_ms: float
    """Mean sample."""
    threshold_ms: float
    """Tail threshold: the fit describes samples above it."""
    exceedances: int
    """Samples above the threshold."""
    shape_xi: float
    """Generalised Pareto shape used (0 = exponential tail; clamped to [0, tail_shape_max])."""
    scale_ms: float
    """Generalised Pareto scale."""
    fitted: bool
    """False when too few samples for a fit (empirical rate only)."""
    shape_xi_estimate: float = 0.0
    """The data's own shape estimate (clamped to [0, 0.9]); used only when `tail_shape_max` allows."""


@dataclass(frozen=True)
class NodeModel:
    """The model's view of one node."""

    hostname: str
    """Node name."""
    assumed: bool
    """True when the node was not measured and is assumed like the slowest measured one."""
    tail: TailFit | None
    """The stall distribution used (None when nothing can stall this node's corosync)."""
    stalls_over_tolerance: int
    """Measured stalls longer than the stall tolerance."""
    false_losses_per_year: float
    """Expected false membership changes per year caused by this node."""
    false_losses_per_year_low: float
    """Lower end of the confidence interval."""
    false_losses_per_year_high: float
    """Upper end of the confidence interval."""
    extrapolated: bool
    """True when the rate comes from the fitted tail beyond the data, not from observed stalls."""


@dataclass(frozen=True)
class HaCeiling:
    """Can HA recover before the watchdog fires? The parts of the budget, in ms."""

    token_ms: float
    """Effective token T (detecting the failure)."""
    consensus_ms: float
    """Consensus (forming the new membership)."""
    sync_ms: float
    """Service synchronisation after the membership change (assumed)."""
    lrm_loop_ms: float
    """The HA LRM loop."""
    lock_retry_ms: float
    """The LRM's lock retry."""
    commit_p999_ms: float
    """p99.9 pmxcfs-shaped commit latency (0 when not measured)."""
    total_ms: float
    """Sum of the parts."""
    watchdog_ms: float
    """The watchdog timeout."""
    margin_ms: float
    """Headroom required under the watchdog."""
    headroom_ms: float
    """watchdog - margin - total (negative: the node may self-fence on a real failure)."""
    ok: bool
    """headroom >= 0."""
    max_token_ms: float
    """Largest effective token that keeps headroom >= 0."""
    max_nodes: int
    """Largest N whose effective token stays under `max_token_ms` with this token and coefficient."""


@dataclass(frozen=True)
class Evidence:
    """How far the data reach against what the target asks (docs/model.md, "Evidence-bounded answers")."""

    observed_s: float
    """Stall data of the least-observed measured node, in seconds."""
    kind: str
    """Where that data came from: `measured` (a benchmark's scheduling probe), `watched`
    (`fsyncprobe watch`), or `given` (latencies on the command line)."""
    target_period_s: float
    """The return period the target asks of each node: N x the target's years, in seconds (one
    false loss per cluster per target period, N nodes alike)."""
    extrapolation: float
    """target_period_s / observed_s: how far beyond the data the fitted tail is asked to reach."""
    max_extrapolation: float
    """The furthest the tail may be trusted beyond the data (`ModelParams.max_extrapolation`)."""
    covered: bool
    """extrapolation <= max_extrapolation: the data can support a token below the configured one."""
    needed_s: float
    """Observation of each node that would cover the target: target_period_s / max_extrapolation."""


@dataclass(frozen=True)
class RingAnswers:
    """The answers the tool exists for, each bounded by the evidence and saying what it rests on."""

    stall_tolerance_ms: float
    """The shortest silence of one node's corosync that re-forms the ring."""
    stall_tolerance_basis: str
    """Which clock bounds it and where its timers came from."""
    token_min_ms: float | None
    """Smallest effective token T this node supports: meets the target at the conservative end of
    the interval, and not below the configured T unless the evidence covers it (None: no T up to
    600 s meets the target at the conservative end)."""
    token_min_setting_ms: float | None
    """The `totem.token` that gives `token_min_ms` with this N and token_coefficient."""
    token_max_ms: float
    """Largest effective T the HA ceiling allows (recovery before the watchdog)."""
    token_basis: str
    """Why the window's lower end is where it is, and what measurement would move it."""
    max_nodes: int | None
    """Largest ring this node can join with the configured token, at the conservative end and
    within the evidence (None: the evidence does not reach even 2 nodes)."""
    max_nodes_basis: str
    """Why, and what measurement would settle it."""
    evidence: Evidence
    """How far the data reach."""
    sources: tuple[tuple[str, str], ...]
    """(what, where it came from) for each input the answers rest on: stalls, timers, network."""


@dataclass(frozen=True)
class RingIdModel:
    """What corosync's ring-id write does to a membership change (`fsyncprobe.ring.ringid`).

    Every node stores the new ring id at every new membership (exec/totemsrp.c
    `memb_state_commit_enter` -> exec/main.c `corosync_ring_id_store`), in corosync's main thread,
    while it holds the commit token. A write that blocks longer than the token bound lets the
    other nodes' token timers run out: the new ring is abandoned and formed again, and that
    membership writes the ring id once more."""

    state_dirs: tuple[str, ...]
    """The state dirs measured (one per node that measured it)."""
    samples: int
    """Ring-id writes measured on the node with the highest probability."""
    over_tolerance: int
    """Of them, writes longer than `tolerance_ms`."""
    max_ms: float
    """The slowest measured write."""
    p99_ms: float
    """Its 99th percentile."""
    tolerance_ms: float
    """The freeze of one node's main thread that makes the ring form again: the token bound
    (knet's heartbeat runs in libknet's own thread and keeps answering, so the knet-link bound
    does not apply to a main thread blocked in a write)."""
    tolerance_bound_by: str
    """Which timer gives `tolerance_ms` (`token`, or `given`)."""
    node_probability: float
    """P(one node's ring-id write outlasts the tolerance): measured fraction (the worst node)."""
    node_probability_low: float
    """Lower end of its exact binomial (Clopper-Pearson) interval."""
    node_probability_high: float
    """Upper end of that interval: what the sample count cannot rule out."""
    change_probability: float
    """P(a membership change is followed by some node freezing past the tolerance): 1 - prod(1 - p)
    over the ring's nodes (unmeasured nodes like the worst measured one, nodes independent)."""
    change_probability_low: float
    """From every node's lower end."""
    change_probability_high: float
    """From every node's upper end (conservative: not an exact joint interval)."""
    extra_reformations_per_change: float | None
    """Expected further re-formations after one membership change, q / (1 - q): each re-formation
    writes the ring id again (None when q = 1: the ring may not settle)."""
    extra_reformations_per_change_high: float | None
    """The same from `change_probability_high` (None when it is 1)."""
    extra_reformations_per_year: float | None
    """`extra_reformations_per_change` x the model's false membership changes per year (real
    failures, reboots and upgrades add more changes, and each may cascade the same way; None when
    q = 1)."""
    confidence_level: float
    """Two-sided level of the intervals."""


@dataclass(frozen=True)
class ModelReport:
    """What the token-ring model concluded, with every assumption."""

    nodes: int
    """Nodes in the ring."""
    token_ms: float
    """`totem.token` as configured or assumed."""
    token_coefficient_ms: float
    """`totem.token_coefficient` as configured or assumed."""
    effective_token_ms: float
    """T = token + (N - 2) x token_coefficient for N >= 3."""
    consensus_ms: float
    """Consensus timeout."""
    token_retransmit_ms: float
    """Token retransmit interval."""
    hold_ms: float
    """Token hold when idle."""
    token_warning_ms: float
    """When corosync logs "Token has not been received" (75 % of T)."""
    knet_ping_interval_ms: float | None
    """knet link ping interval (None unless knet)."""
    knet_ping_timeout_ms: float | None
    """knet link timeout (None unless knet)."""
    stall_tolerance_ms: float
    """The shortest stall of one node's corosync that forms a new membership (the smallest bound)."""
    stall_tolerance_bound_by: str
    """Which timer gives it."""
    stall_bounds: tuple[TimerBound, ...]
    """Every timer considered, smallest first."""
    rotation_ms: float
    """Token rotation time R(N)."""
    reformation_ms: float
    """Time to re-form after a real failure: T + consensus + 50 ms (conf(5) `token`)."""
    false_losses_per_year: float
    """Expected false membership changes per year for the whole ring."""
    false_losses_per_year_low: float
    """Lower end of the confidence interval."""
    false_losses_per_year_high: float
    """Upper end of the confidence interval."""
    confidence_level: float
    """Two-sided level of the intervals."""
    years_per_false_loss: float | None
    """1 / false_losses_per_year (None when the rate is 0)."""
    target_years_per_false_loss: float
    """The target."""
    min_safe_token_ms: float | None
    """Smallest effective token T whose rate meets the target at the conservative (upper) end of
    its interval, before the evidence floor (None: none up to 600 s); the recommendation is
    `answers.token_min_ms`."""
    min_safe_token_setting_ms: float | None
    """The `totem.token` value that gives `min_safe_token_ms` with this N and coefficient."""
    max_safe_nodes: int
    """Largest N such that every ring of 2..N nodes meets the target at the conservative end and
    the HA ceiling (1: none), before the evidence bound; the recommendation is `answers.max_nodes`."""
    ha_ceiling: HaCeiling
    """The HA budget under the watchdog."""
    node_models: tuple[NodeModel, ...]
    """Per-node stall rates."""
    bottleneck_node: str | None
    """The node that contributes most false losses (holds the ring back)."""
    assumptions: tuple[Assumption, ...]
    """Every unmeasured input and its value."""
    warnings: tuple[str, ...]
    """What the reader must know to trust the figures."""
    answers: RingAnswers | None = None
    """The headline answers, bounded by the evidence (what every verdict shows first)."""
    ring_id_store: RingIdModel | None = None
    """The ring-id write's consequence for membership changes (None when it was not measured)."""


@dataclass(frozen=True)
class LiveLink:
    """One knet link to one peer as this node's corosync reports it (`stats.knet.node<N>.link<M>.*`,
    corosync exec/stats.c; libknet threads_rx.c computes the latency)."""

    nodeid: int
    """The peer's node id."""
    link: int
    """knet link number."""
    connected: bool
    """`connected`: the link is up."""
    latency_ave_us: int
    """`latency_ave`: knet's running mean of the ping round trip (ping sent to pong received), us."""
    latency_max_us: int
    """`latency_max`: the largest value that running mean took, us."""
    latency_min_us: int | None
    """`latency_min`: the smallest value that running mean took, us (None: not yet set)."""
    latency_samples: int
    """`latency_samples`: pongs in the mean (at most knet_ping_precision, 2048)."""
    down_count: int
    """`down_count`: times the link went down since corosync started (the first connect counts one)."""


@dataclass(frozen=True)
class SchedMiss:
    """One pause of corosync's main loop it recorded itself (`stats.schedmiss.<i>.*`, corosync >= 3.1,
    exec/main.c `timer_function_scheduler_timeout`: not scheduled for more than 0.8 x T)."""

    timestamp_ms: int
    """`timestamp`: when, in ms since the epoch."""
    delay_ms: float
    """`delay`: how long the main loop was not scheduled, ms."""


@dataclass(frozen=True)
class LiveRing:
    """What this node's running corosync reported through `corosync-cmapctl` (`fsyncprobe.ring.live`).
    Every timer is as corosync runs it (`runtime.config.totem.*`, ms); None where the key is absent."""

    source: str
    """How it was read (the tool and the keys)."""
    local_nodeid: int | None
    """This node's id (`runtime.votequorum.this_node_id`)."""
    nodelist_nodes: int
    """Nodes in the nodelist corosync loaded (`nodelist.node.*`): the N of token_coefficient."""
    nodelist_names: tuple[str, ...]
    """Their names (`nodelist.node.<i>.name`)."""
    members: tuple[int, ...]
    """Node ids of the current members (`runtime.members.<id>.status` = joined)."""
    token_ms: int
    """`runtime.config.totem.token`: the effective token T corosync runs."""
    consensus_ms: int | None
    """`runtime.config.totem.consensus`."""
    token_retransmit_ms: int | None
    """`runtime.config.totem.token_retransmit`."""
    hold_ms: int | None
    """`runtime.config.totem.hold`."""
    join_ms: int | None
    """`runtime.config.totem.join`."""
    merge_ms: int | None
    """`runtime.config.totem.merge`."""
    fail_recv_const: int | None
    """`runtime.config.totem.fail_recv_const` (token rotations)."""
    token_warning_percent: int | None
    """`runtime.config.totem.token_warning` (percent of T)."""
    token_retransmits_before_loss_const: int | None
    """`runtime.config.totem.token_retransmits_before_loss_const`."""
    knet_ping_interval_ms: int | None
    """`runtime.config.totem.interface.0.knet_ping_interval`."""
    knet_ping_timeout_ms: int | None
    """`runtime.config.totem.interface.0.knet_ping_timeout`."""
    settings: CorosyncSettings
    """The totem settings as corosync loaded them from its corosync.conf, wherever that is
    (`totem.*`, `totem.interface.0.*`; None: not set, corosync's default), and the nodelist's size."""
    links: tuple[LiveLink, ...]
    """knet links to the peers that have latency samples."""
    mtt_rx_token_ms: int | None
    """`stats.srp.mtt_rx_token`: mean time between the last (up to 100) token receipts, ms."""
    schedmiss: tuple[SchedMiss, ...]
    """`stats.schedmiss.*`: the last (up to 10) pauses corosync recorded, newest first."""
    one_way_latency_ms: float | None
    """Per-hop one-way latency the model uses: mean over the peers of latency_ave / 2 (None: no link)."""
    jitter_ms: float | None
    """Per-hop extra delay the model uses: (worst latency_max - latency_ave + spread of the peers'
    means) / 2 (None: no link)."""
