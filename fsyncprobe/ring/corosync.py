"""Corosync facts, with their sources: defaults, the settings that bound a stall, and the timers
corosync derives from them (the reader for corosync.conf is `fsyncprobe.ring.conf`).

Every default and formula here is Corosync 3.1.x (Debian 12 ships 3.1.7) and cites where it comes
from. "conf(5)" is corosync.conf(5) as shipped with 3.1.7; "totemconfig.c" is
`exec/totemconfig.c` (`totem_volatile_config_read` and the knet link defaults in the same file).
The values were checked against a running 3.1.7 ring: `corosync-cmapctl runtime.config.totem.`
shows exactly what `derive_timers` computes (tests/test_corosync_conf.py keeps the numbers).

Note the man page's own "default" figures for token_retransmit (238 ms), hold (180 ms) and
consensus (3600 ms) are left over from the 1000 ms token era (token_retransmit 238 = 1000 / 4.2)
or assume the 3000 ms token with two nodes; the formulas below are what the code does.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Defaults (totemconfig.c #defines; conf(5) "totem" section) ---------------------------------

TOKEN_MS_DEFAULT = 3000
"""`token`: 3000 ms since corosync 3.1.0 (conf(5): "The default is 3000 milliseconds"); it was
1000 ms before 3.1.0 (totemconfig.c `#define TOKEN_TIMEOUT`)."""
TOKEN_MS_DEFAULT_BEFORE_3_1 = 1000
"""`token` default of corosync 2.x and 3.0.x."""
TOKEN_COEFFICIENT_MS_DEFAULT = 650
"""`token_coefficient` (totemconfig.c `TOKEN_COEFFICIENT`; conf(5): "The default is 650
milliseconds"). Proxmox VE writes 125 into new clusters' corosync.conf since pve-cluster 9.1."""
TOKEN_COEFFICIENT_MS_PROXMOX = 125
"""What pve-cluster 9.1+ writes for new clusters (shared/DESIGN.md)."""
TOKEN_RETRANSMITS_BEFORE_LOSS_CONST_DEFAULT = 4
"""`token_retransmits_before_loss_const` (totemconfig.c; conf(5): "default is 4")."""
TOKEN_WARNING_PERCENT_DEFAULT = 75
"""`token_warning`: corosync logs "Token has not been received in X ms" at this percentage of
the token timeout (totemconfig.c `TOKEN_WARNING`; totemsrp.c `timer_function_orf_token_warning`)."""
CONSENSUS_FACTOR = 1.2
"""`consensus` = 1.2 x effective token unless set (totemconfig.c: `(int)(float)(1.2 * token_timeout)`;
conf(5): "automatically calculated at 1.2 * token")."""
JOIN_MS_DEFAULT = 50
"""`join` (totemconfig.c `JOIN_TIMEOUT`)."""
MERGE_MS_DEFAULT = 200
"""`merge` (totemconfig.c `MERGE_TIMEOUT`)."""
DOWNCHECK_MS_DEFAULT = 1000
"""`downcheck` (totemconfig.c `DOWNCHECK_TIMEOUT`)."""
FAIL_RECV_CONST_DEFAULT = 2500
"""`fail_recv_const`: token rotations without receiving expected messages before a new
configuration is formed (totemconfig.c `FAIL_TO_RECV_CONST`). At sub-second rotations this is
minutes, so it never bounds a stall of seconds."""
SEQNO_UNCHANGED_CONST_DEFAULT = 30
"""`seqno_unchanged_const`: idle rotations before the representative starts holding the token
(totemconfig.c `SEQNO_UNCHANGED_CONST`; conf(5))."""
MAX_NETWORK_DELAY_MS_DEFAULT = 50
"""`max_network_delay` (totemconfig.c `MAX_NETWORK_DELAY`)."""
HZ_TICK_MS = 10
"""`1000/HZ` in the hold formula: corosync's `exec/tlist.h` fixes HZ at 100."""
KNET_PONG_COUNT_DEFAULT = 2
"""`knet_pong_count`: pongs needed before a knet link is marked up again (totemconfig.c
`KNET_PONG_COUNT`, "Currently all but PONG_COUNT match the defaults in libknet.h"; conf(5))."""
KNET_PING_PRECISION_DEFAULT = 2048
"""`knet_ping_precision` (totemconfig.c `KNET_PING_PRECISION`)."""

# pve-cluster HA (pve-ha-manager src/PVE/HA/LRM.pm and Env/PVE2.pm; shared/DESIGN.md)
WATCHDOG_S = 60
"""The HA watchdog: a node whose LRM has not renewed it for 60 s is reset (watchdog-mux)."""
LRM_LOOP_S = 10
"""The HA LRM work loop period."""
LOCK_RETRY_S = 5
"""How long the LRM waits before retrying its lock write to pmxcfs."""
SYNC_PHASE_MS_DEFAULT = 1000
"""Assumed time for corosync's service synchronisation (CPG, votequorum, pmxcfs state sync) after
a new membership: our ring shows tens of ms with no data; pmxcfs's DFSM state exchange with a
real config.db takes longer, so the model assumes 1 s and reports it as an assumption."""
REFORM_EXTRA_MS = 50
"""conf(5) on `token`: "Reforming a new configuration takes about 50 milliseconds in addition to
this timeout"."""


def effective_token_ms(token_ms: int, nodes: int, token_coefficient_ms: int) -> int:
    """The token timeout totem really uses: `token + (nodes - 2) * token_coefficient` when the
    nodelist has at least 3 nodes, else `token` (conf(5) `token_coefficient`; totemconfig.c
    `if (member_count > 2) token_timeout += (member_count - 2) * u32`)."""
    if nodes > 2:
        return token_ms + (nodes - 2) * token_coefficient_ms
    return token_ms


@dataclass(frozen=True)
class CorosyncSettings:
    """The totem settings that bound a stall; None means "not set, use corosync's default"."""

    nodes: int | None = None
    """Nodes in the nodelist (None: not known)."""
    token_ms: int | None = None
    """`totem.token`."""
    token_coefficient_ms: int | None = None
    """`totem.token_coefficient`."""
    consensus_ms: int | None = None
    """`totem.consensus`."""
    token_retransmit_ms: int | None = None
    """`totem.token_retransmit`."""
    hold_ms: int | None = None
    """`totem.hold`."""
    token_retransmits_before_loss_const: int | None = None
    """`totem.token_retransmits_before_loss_const`."""
    token_warning_percent: int | None = None
    """`totem.token_warning`."""
    join_ms: int | None = None
    """`totem.join`."""
    merge_ms: int | None = None
    """`totem.merge`."""
    fail_recv_const: int | None = None
    """`totem.fail_recv_const`."""
    transport: str | None = None
    """`totem.transport` (knet is the 3.x default)."""
    knet_ping_interval_ms: int | None = None
    """`totem.interface.knet_ping_interval` (link 0)."""
    knet_ping_timeout_ms: int | None = None
    """`totem.interface.knet_ping_timeout` (link 0)."""
    knet_pong_count: int | None = None
    """`totem.interface.knet_pong_count` (link 0)."""
    source: str | None = None
    """The file these came from."""
    state_dir: str | None = None
    """`system.state_dir`: where corosync keeps its ring-id file (None: not set; exec/util.c
    `get_state_dir` then takes $STATE_DIRECTORY, else /var/lib/corosync)."""


@dataclass(frozen=True)
class TotemTimers:
    """The timers corosync derives from the settings, as totemconfig.c computes them (ms, ints)."""

    nodes: int
    """Nodes in the ring."""
    token_ms: int
    """Effective token timeout T."""
    consensus_ms: int
    """Consensus timeout."""
    token_retransmit_ms: int
    """Token retransmit interval."""
    hold_ms: int
    """Token hold at the representative when idle."""
    token_warning_ms: int
    """When "Token has not been received in X ms" is logged."""
    join_ms: int
    """Join timeout."""
    merge_ms: int
    """Merge-detect interval."""
    fail_recv_const: int
    """Rotations without expected messages before a new configuration."""
    transport: str
    """Transport (`knet`, `udp`, `udpu`)."""
    knet_ping_interval_ms: int | None
    """knet link ping interval (None unless knet)."""
    knet_ping_timeout_ms: int | None
    """knet link declared down after this long without a pong (None unless knet)."""
    knet_pong_count: int | None
    """Pongs needed to bring a knet link back up (None unless knet)."""


def derive_timers(s: CorosyncSettings, nodes: int | None = None) -> TotemTimers:
    """Compute what corosync 3.1.x would run with (totemconfig.c `totem_volatile_config_read`,
    then the knet link defaults; integer truncation as the C code does it)."""
    n = nodes if nodes is not None else (s.nodes if s.nodes is not None else 3)
    token = s.token_ms if s.token_ms is not None else TOKEN_MS_DEFAULT
    coeff = s.token_coefficient_ms if s.token_coefficient_ms is not None else TOKEN_COEFFICIENT_MS_DEFAULT
    t = effective_token_ms(token, n, coeff)
    trbl = s.token_retransmits_before_loss_const or TOKEN_RETRANSMITS_BEFORE_LOSS_CONST_DEFAULT
    retransmit = s.token_retransmit_ms or int(t / (trbl + 0.2))
    hold = s.hold_ms or int(retransmit * 0.8 - HZ_TICK_MS)
    consensus = s.consensus_ms or int(CONSENSUS_FACTOR * t)
    warning_pct = s.token_warning_percent if s.token_warning_percent is not None else TOKEN_WARNING_PERCENT_DEFAULT
    transport = (s.transport or "knet").lower()
    ping_interval = ping_timeout = pong = None
    if transport == "knet":
        pong = s.knet_pong_count or KNET_PONG_COUNT_DEFAULT
        # totemconfig.c: knet_ping_timeout = token_timeout / knet_pong_count;
        # knet_ping_interval = token_timeout / (knet_pong_count * 2) -- integer division of the
        # effective token (runtime.config.totem.interface.0.knet_ping_timeout = 825 for T = 1650).
        ping_timeout = s.knet_ping_timeout_ms or t // pong
        ping_interval = s.knet_ping_interval_ms or t // (pong * 2)
    return TotemTimers(
        nodes=n, token_ms=t, consensus_ms=consensus, token_retransmit_ms=retransmit, hold_ms=hold,
        token_warning_ms=int(t * warning_pct / 100), join_ms=s.join_ms or JOIN_MS_DEFAULT,
        merge_ms=s.merge_ms or MERGE_MS_DEFAULT, fail_recv_const=s.fail_recv_const or FAIL_RECV_CONST_DEFAULT,
        transport=transport, knet_ping_interval_ms=ping_interval, knet_ping_timeout_ms=ping_timeout,
        knet_pong_count=pong,
    )
