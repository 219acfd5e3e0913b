"""The live ring: what this node's running corosync says about itself, read with `corosync-cmapctl`.

When corosync runs, its cmap holds the timers as corosync computed them, the nodelist, the
members, knet's per-peer link latency, the live token interval and the pauses corosync itself
recorded; those beat any formula or assumption (shared/DESIGN.md, "Evidence, not extrapolation";
precedence: command line > live ring > corosync.conf > defaults). Reading it is never fatal: no
corosync, a corosync that does not run, no `corosync-cmapctl`, no permission or no answer in time
all give no live ring (and a note where the reason is worth telling).

The keys, checked against corosync 3.1.7 (Debian 12) and libknet 1.25 and against a real 4-node
ring (tests/data/cmap/, recorded by tests/record_cmap.py):

icmap (the default map; cmap_keys(7)):
- `runtime.config.totem.<timer>`: the timers in use, in ms, after corosync's derivation
  (exec/totemconfig.c `totem_volatile_config_read`: `totem_volatile_config_set_uint32_value`
  stores each of `token`, `consensus`, `token_retransmit`, `hold`, `join`, `merge`,
  `fail_recv_const`, `token_warning` (percent), ... as `runtime.config.totem.<name>`, and
  `runtime.config.totem.token` is rewritten with `token_coefficient` applied, so it is the
  effective T), and `runtime.config.totem.interface.<link>.knet_ping_interval` / `knet_ping_timeout`
  (totemconfig.c `calc_knet_ping_timers`).
- `totem.<key>`: the settings as corosync loaded them from its corosync.conf, wherever that file
  is (`corosync -c`): `totem.token`, `totem.token_coefficient`, `totem.transport`,
  `totem.interface.<link>.knet_pong_count`.
- `nodelist.node.<i>.nodeid` / `.name` (the nodelist corosync counts for `token_coefficient`:
  totemconfig.c `put_nodelist_members_to_config` fills `interfaces[0].member_count` from it),
  `nodelist.local_node_pos`,
  `runtime.votequorum.this_node_id` (exec/votequorum.c).
- `runtime.members.<nodeid>.status` = `joined` / `left` (exec/main.c `member_object_joined`).

stats map (`corosync-cmapctl -m stats`; exec/stats.c `cs_srp_stats`, `cs_knet_stats`, `cs_schedmiss_stats`):
- `stats.knet.node<N>.link<M>.latency_ave` / `latency_max` / `latency_min` / `latency_samples`:
  microseconds. libknet threads_rx.c (`KNET_HEADER_TYPE_PONG`) takes `pong receipt time - the
  ping's send time` on the sending node's monotonic clock, a ROUND TRIP, and keeps a running mean
  over up to `knet_ping_precision` (2048) samples; `latency_ave` is that mean and `latency_max` /
  `latency_min` are the extremes THE MEAN took, not those of single pings. The node's own entry
  (`node<local>`) has no samples. `down_count` counts the link's downs, `connected` is 1 when up.
  `-C knet` clears these statistics but not the running mean (libknet links.c `_link_clear_stats`).
- `stats.srp.mtt_rx_token`: ms, the mean time between the last (up to 100) token receipts
  (exec/main.c `corosync_totem_stats_updater` over totemsrp.c `token_event_stats_collector`):
  the live token rotation.
- `stats.schedmiss.<i>.timestamp` (ms since the epoch) and `.delay` (ms, float): the last 10
  times corosync's main loop was not scheduled for more than 0.8 x T, newest first (exec/main.c
  `timer_function_scheduler_timeout` -> stats.c `stats_add_schedmiss_event`, corosync >= 3.1;
  the same event is logged as "Corosync main process was not scheduled for ... ms").

`corosync-cmapctl` prints `key (type) = value`, one a line (tools/corosync-cmapctl.c
`print_key`: `%f` for `flt`, the string as it is for `str`); given key prefixes it prints
every key under each (`print_iter`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from fsyncprobe.errors import InputError
from fsyncprobe.ring import conf
from fsyncprobe.ring.corosync import TOKEN_WARNING_PERCENT_DEFAULT, CorosyncSettings, TotemTimers, derive_timers
from fsyncprobe.ring.types import LiveLink, LiveRing, SchedMiss

CMAPCTL = "corosync-cmapctl"
"""Debian's corosync package's cmap client (tools/corosync-cmapctl.c)."""
CMAPCTL_TIMEOUT_S = 3.0
"""cmapctl retries a busy corosync once a second (`CS_ERR_TRY_AGAIN`, MAX_TRY_AGAIN) and blocks on
a stopped one: the reader gives up after this long and goes on without the live ring."""
ICMAP_PREFIXES = ("runtime.config.totem.", "runtime.members.", "runtime.votequorum.", "nodelist.", "totem.")
"""What is read from the default map (icmap)."""
STATS_PREFIXES = ("stats.knet.node", "stats.srp.mtt_rx_token", "stats.schedmiss.")
"""What is read from the stats map."""
SOURCE = "live ring"
"""How a value taken from the running corosync is labelled in the model's assumptions."""

_LINE = re.compile(r"^(?P<key>\S+) \((?P<type>[a-z0-9]+)\)(?: = (?P<value>.*))?$")
_KNET = re.compile(r"^stats\.knet\.node(?P<node>\d+)\.link(?P<link>\d+)\.(?P<field>\w+)$")
_SCHEDMISS = re.compile(r"^stats\.schedmiss\.(?P<i>\d+)\.(?P<field>timestamp|delay)$")
_U32_UNSET = 4294967295
"""`latency_min` before the first sample (libknet host.c sets it to UINT32_MAX)."""


def parse_cmap(text: str) -> dict[str, str]:
    """`corosync-cmapctl` output as {key: value}; lines that are not `key (type) = value` are
    skipped (a `bin` value without `-b` prints no value)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line.rstrip("\n"))
        if m and m.group("value") is not None:
            # A cmap string is anything a config or a peer set: no control characters get through.
            out[m.group("key")] = "".join(c if c.isprintable() else "?" for c in m.group("value").strip())
    return out


def _int(keys: Mapping[str, str], key: str) -> int | None:
    v = keys.get(key)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return None


def _links(stats: Mapping[str, str], local: int | None) -> tuple[LiveLink, ...]:
    fields: dict[tuple[int, int], dict[str, str]] = {}
    for key, value in stats.items():
        m = _KNET.match(key)
        if m:
            fields.setdefault((int(m.group("node")), int(m.group("link"))), {})[m.group("field")] = value
    out = []
    for (node, link), f in sorted(fields.items()):
        samples = _int(f, "latency_samples") or 0
        if node == local or samples == 0:  # our own entry, or a link never measured: no latency
            continue
        lmin = _int(f, "latency_min")
        out.append(LiveLink(
            nodeid=node, link=link, connected=_int(f, "connected") == 1,
            latency_ave_us=_int(f, "latency_ave") or 0, latency_max_us=_int(f, "latency_max") or 0,
            latency_min_us=None if lmin is None or lmin == _U32_UNSET else lmin, latency_samples=samples,
            down_count=_int(f, "down_count") or 0,
        ))
    return tuple(out)


def _schedmiss(stats: Mapping[str, str]) -> tuple[SchedMiss, ...]:
    events: dict[int, dict[str, str]] = {}
    for key, value in stats.items():
        m = _SCHEDMISS.match(key)
        if m:
            events.setdefault(int(m.group("i")), {})[m.group("field")] = value
    out = []
    for _, e in sorted(events.items()):
        try:
            ts, delay = int(e["timestamp"]), float(e["delay"])
        except (KeyError, ValueError):
            continue
        if ts > 0:  # a cleared slot (stats.c schedmiss_clear_stats) reads 0
            out.append(SchedMiss(timestamp_ms=ts, delay_ms=delay))
    return tuple(out)


def live_ring_from_cmap(icmap_text: str, stats_text: str = "") -> LiveRing | None:
    """The live ring from `corosync-cmapctl` output of `ICMAP_PREFIXES` (icmap) and
    `STATS_PREFIXES` (`-m stats`); None when the output has no running totem in it."""
    icmap, stats = parse_cmap(icmap_text), parse_cmap(stats_text)
    rt = "runtime.config.totem."
    token = _int(icmap, rt + "token")
    if token is None:
        return None
    nodeids = sorted({n for k, v in icmap.items() if k.startswith("nodelist.node.") and k.endswith(".nodeid")
                      if (n := _int(icmap, k)) is not None})
    names = tuple(v for k, v in sorted(icmap.items()) if re.fullmatch(r"nodelist\.node\.\d+\.name", k))
    members = tuple(sorted(int(m.group(1)) for k, v in icmap.items()
                           if (m := re.fullmatch(r"runtime\.members\.(\d+)\.status", k)) and v == "joined"))
    local = _int(icmap, "runtime.votequorum.this_node_id")
    if local is None:
        pos = _int(icmap, "nodelist.local_node_pos")
        local = _int(icmap, f"nodelist.node.{pos}.nodeid") if pos is not None else None
    links = _links(stats, local)
    return LiveRing(
        source=f"{CMAPCTL} (runtime.config.totem.*, nodelist.*, runtime.members.*, stats.knet.*, "
               "stats.srp.mtt_rx_token, stats.schedmiss.*)",
        local_nodeid=local, nodelist_nodes=len(nodeids), nodelist_names=names, members=members,
        token_ms=token, consensus_ms=_int(icmap, rt + "consensus"),
        token_retransmit_ms=_int(icmap, rt + "token_retransmit"), hold_ms=_int(icmap, rt + "hold"),
        join_ms=_int(icmap, rt + "join"), merge_ms=_int(icmap, rt + "merge"),
        fail_recv_const=_int(icmap, rt + "fail_recv_const"),
        token_warning_percent=_int(icmap, rt + "token_warning"),
        token_retransmits_before_loss_const=_int(icmap, rt + "token_retransmits_before_loss_const"),
        knet_ping_interval_ms=_int(icmap, rt + "interface.0.knet_ping_interval"),
        knet_ping_timeout_ms=_int(icmap, rt + "interface.0.knet_ping_timeout"),
        settings=settings_from_icmap(icmap),
        links=links, mtt_rx_token_ms=_int(stats, "stats.srp.mtt_rx_token"), schedmiss=_schedmiss(stats),
        one_way_latency_ms=one_way_latency_ms(links), jitter_ms=jitter_ms(links),
    )


def _peer_links(links: Sequence[LiveLink]) -> list[LiveLink]:
    """Per peer, its slowest connected link (knet sends on one of them; which one depends on the
    link mode and priorities: the slowest is the conservative choice)."""
    best: dict[int, LiveLink] = {}
    for ln in links:
        if ln.connected and (ln.nodeid not in best or ln.latency_ave_us > best[ln.nodeid].latency_ave_us):
            best[ln.nodeid] = ln
    return list(best.values())


def one_way_latency_ms(links: Sequence[LiveLink]) -> float | None:
    """Per-hop one-way latency: half of knet's round trip (`latency_ave`), averaged over the peers
    (None without a measured, connected link)."""
    peers = _peer_links(links)
    if not peers:
        return None
    return sum(ln.latency_ave_us for ln in peers) / len(peers) / 2 / 1000


def jitter_ms(links: Sequence[LiveLink]) -> float | None:
    """Per-hop extra delay: half of how far knet's mean round trip has been above its current
    value on the worst peer (`latency_max - latency_ave`), plus half the spread of the peers'
    means. knet keeps extremes of its running mean only, so a single slow ping is not in it."""
    peers = _peer_links(links)
    if not peers:
        return None
    above = max(ln.latency_max_us - ln.latency_ave_us for ln in peers)
    spread = max(ln.latency_ave_us for ln in peers) - min(ln.latency_ave_us for ln in peers)
    return (max(above, 0) + spread) / 2 / 1000


def settings_from_icmap(icmap: Mapping[str, str]) -> CorosyncSettings:
    """The totem settings corosync loaded, read back from icmap: `totem.<key>` and
    `totem.interface.<link>.<key>` rebuilt into the corosync.conf sections they came from
    (exec/coroparse.c turns `totem { interface { linknumber: 0 ... } }` into these keys) and read
    by the same code as a corosync.conf on disk (`conf.settings_from_conf`), so both mean the same."""
    totem_items: list[tuple[str, str]] = []
    interfaces: dict[str, list[tuple[str, str]]] = {}
    for key, value in sorted(icmap.items()):
        parts = key.split(".")
        if parts[0] != "totem":
            continue
        if len(parts) == 2:
            totem_items.append((parts[1], value))
        elif len(parts) == 4 and parts[1] == "interface":
            interfaces.setdefault(parts[2], [("linknumber", parts[2])]).append((parts[3], value))
    ifaces = tuple(conf.ConfSection("interface", tuple(items)) for _, items in sorted(interfaces.items()))
    nodes = tuple(conf.ConfSection("node", ((k.rsplit(".", 1)[1], v),)) for k, v in sorted(icmap.items())
                  if re.fullmatch(r"nodelist\.node\.\d+\.nodeid", k))
    root = conf.ConfSection("", (), (conf.ConfSection("totem", tuple(totem_items), ifaces),
                                     conf.ConfSection("nodelist", (), nodes)))
    try:
        return replace(conf.settings_from_conf(root, SOURCE), source=SOURCE)
    except InputError:  # a value corosync accepted but we cannot read: keep what is readable
        return CorosyncSettings(nodes=len(nodes) or None, transport=icmap.get("totem.transport"), source=SOURCE)


def live_timers(live: LiveRing) -> TotemTimers:
    """The timers the ring runs, as corosync computed them (`runtime.config.totem.*`); a key corosync
    did not publish (none in 3.1.7) falls back to the derivation from its loaded settings."""
    d = derive_timers(live.settings, live.nodelist_nodes or None)
    pct = live.token_warning_percent if live.token_warning_percent is not None else TOKEN_WARNING_PERCENT_DEFAULT

    def pick(v: int | None, fallback: int) -> int:
        return fallback if v is None else v

    knet = d.transport == "knet"
    return TotemTimers(
        nodes=live.nodelist_nodes or d.nodes, token_ms=live.token_ms,
        consensus_ms=pick(live.consensus_ms, d.consensus_ms),
        token_retransmit_ms=pick(live.token_retransmit_ms, d.token_retransmit_ms),
        hold_ms=pick(live.hold_ms, d.hold_ms), token_warning_ms=int(live.token_ms * pct / 100),
        join_ms=pick(live.join_ms, d.join_ms), merge_ms=pick(live.merge_ms, d.merge_ms),
        fail_recv_const=pick(live.fail_recv_const, d.fail_recv_const), transport=d.transport,
        knet_ping_interval_ms=live.knet_ping_interval_ms or d.knet_ping_interval_ms if knet else None,
        knet_ping_timeout_ms=live.knet_ping_timeout_ms or d.knet_ping_timeout_ms if knet else None,
        knet_pong_count=d.knet_pong_count,
    )


def conf_disagreements(conf_settings: CorosyncSettings, live: LiveRing) -> list[str]:
    """Where a corosync.conf on disk says something else than the ring runs (an edit not yet
    reloaded, or the file of another ring): one note each."""
    if conf_settings.source is None:
        return []
    out = []
    for name in CorosyncSettings.__dataclass_fields__:
        c, v = getattr(conf_settings, name), getattr(live.settings, name)
        if name != "source" and c != v and not (name == "transport" and (c or "knet") == (v or "knet")):
            shown = name.removesuffix("_ms") if name != "nodes" else "nodes in the nodelist"
            out.append(f"{conf_settings.source} says {shown} {'unset' if c is None else c}, the running corosync "
                       f"{'unset' if v is None else v}")
    return out


@dataclass(frozen=True)
class ModelInputs:
    """What the live ring gives the model, after the precedence command line > live ring >
    corosync.conf > defaults (`model_inputs`)."""

    settings: CorosyncSettings
    """The totem settings to model with (the live ring's, or the corosync.conf's when one was named)."""
    timers: TotemTimers | None
    """The running ring's timers, when the modelled ring is the running one (None: derive them)."""
    rotation_ms: float | None
    """The live token interval (`stats.srp.mtt_rx_token`), with `timers` only."""
    network_latency_ms: float | None
    """Per-hop one-way latency from knet (None: no measured link)."""
    jitter_ms: float | None
    """Per-hop extra delay from knet (None: no measured link)."""
    sources: tuple[tuple[str, str], ...]
    """(assumption name, source label) for each value taken from the live ring."""
    notes: tuple[str, ...]
    """What the operator should know (a corosync.conf that disagrees, corosync's own pauses...)."""


def _unset(v: int | None) -> str:
    return "" if v is not None else " unset: corosync's default"


def model_inputs(live: LiveRing, conf_settings: CorosyncSettings, conf_named: bool, nodes_given: int | None,
                 token_given: bool) -> ModelInputs:
    """The live ring's part of the model's inputs. The running ring's settings and timers are used
    unless the command line asks about another ring: a corosync.conf named with `--corosync-conf`
    (`conf_named`), `--token`/`--token-coefficient` (`token_given`), or `--nodes` other than the
    nodelist's. knet's link latency and the pauses are facts of this node either way."""
    notes = conf_disagreements(conf_settings, live)
    settings = conf_settings if conf_named else live.settings
    if conf_named and notes:
        notes = [f"{n} (--corosync-conf: the file is modelled)" for n in notes]
    elif notes:
        notes = [f"{n} (the running ring is modelled)" for n in notes]
    same_ring = not conf_named and not token_given and nodes_given in (None, live.nodelist_nodes)
    timers = live_timers(live) if same_ring and live.nodelist_nodes >= 1 else None
    cfg = "runtime.config.totem"
    sources: list[tuple[str, str]] = []
    if not conf_named:
        sources += [
            ("nodes", f"live ring (nodelist.node.*: {live.nodelist_nodes} in the nodelist, {len(live.members)} "
                      "members joined)"),
            ("token", f"live ring (totem.token{_unset(live.settings.token_ms)})"),
            ("token_coefficient", f"live ring (totem.token_coefficient{_unset(live.settings.token_coefficient_ms)})"),
            ("transport", "live ring (totem.transport)"),
        ]
    if timers is not None:
        sources += [
            ("effective token T", f"live ring ({cfg}.token, token_coefficient applied by corosync)"),
            ("consensus", f"live ring ({cfg}.consensus)"),
            ("token_retransmit", f"live ring ({cfg}.token_retransmit)"),
            ("hold", f"live ring ({cfg}.hold)"),
            ("knet_ping_interval", f"live ring ({cfg}.interface.0.knet_ping_interval)"),
            ("knet_ping_timeout", f"live ring ({cfg}.interface.0.knet_ping_timeout)"),
        ]
    peers = len(_peer_links(live.links))
    if live.one_way_latency_ms is not None:
        sources += [
            ("network_latency", f"live ring: knet latency_ave / 2, mean over {peers} peer(s) "
                                "(stats.knet.node<N>.link<M>.latency_ave, a ping round trip: libknet threads_rx.c)"),
            ("jitter", "live ring: (latency_max - latency_ave of the worst peer + spread of the peers' means) / 2 "
                       "(stats.knet; knet keeps the extremes of its running mean, not of single pings)"),
        ]
    return ModelInputs(
        settings=settings, timers=timers, rotation_ms=float(live.mtt_rx_token_ms) if timers and live.mtt_rx_token_ms
        else None, network_latency_ms=live.one_way_latency_ms, jitter_ms=live.jitter_ms,
        sources=tuple(sources), notes=tuple(notes + live_notes(live)),
    )


@dataclass(frozen=True)
class LiveRead:
    """The outcome of reading the live ring."""

    ring: LiveRing | None
    """What corosync reported (None: not read)."""
    note: str | None
    """Why not, when that is worth telling (None: read, or simply no corosync here)."""


Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


def _run(cmd: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout_s, check=False,
                          stdin=subprocess.DEVNULL)


_NOT_RUNNING = ("CS_ERR_LIBRARY", "CS_ERR_NOT_EXIST")
"""cmapctl's errors when no corosync answers on this node (cmap_initialize_map fails to connect)."""


def read_live_ring(run: Runner = _run, cmapctl: str | None = None) -> LiveRead:
    """Ask this node's corosync (`corosync-cmapctl`, `CMAPCTL_TIMEOUT_S` per call). cmapctl reaches
    corosync through libqb IPC on an abstract unix socket, so "this node" is this network namespace."""
    exe = cmapctl or shutil.which(CMAPCTL)
    if exe is None:
        return LiveRead(None, None)
    outputs = []
    for args in ((*ICMAP_PREFIXES,), ("-m", "stats", *STATS_PREFIXES)):
        try:
            proc = run([exe, *args], CMAPCTL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return LiveRead(None, f"live ring not read: {CMAPCTL} did not answer in {CMAPCTL_TIMEOUT_S:g} s "
                                  "(corosync busy or stopped)")
        except OSError as exc:
            return LiveRead(None, f"live ring not read: {CMAPCTL}: {exc.strerror or exc}")
        if proc.returncode != 0 and not proc.stdout:
            err = (proc.stderr or "").strip().splitlines()
            if any(code in (proc.stderr or "") for code in _NOT_RUNNING):
                return LiveRead(None, None)  # no corosync here: behave as without one
            why = err[-1] if err else f"exit status {proc.returncode}"
            if "CS_ERR_ACCESS" in why:  # corosync admits root and the users of uidgid (corosync.conf(5))
                why += " (run as root, or allow this user in corosync.conf uidgid / /etc/corosync/uidgid.d)"
            return LiveRead(None, f"live ring not read: {CMAPCTL}: {why}")
        outputs.append(proc.stdout)
    ring = live_ring_from_cmap(outputs[0], outputs[1])
    if ring is None:
        return LiveRead(None, f"live ring not read: {CMAPCTL} shows no runtime.config.totem.token")
    return LiveRead(ring, None)


def live_notes(live: LiveRing) -> list[str]:
    """What the operator must know from the live ring itself: corosync's own recorded pauses,
    links that went down, members missing from the nodelist."""
    out = []
    if live.schedmiss:
        worst = max(live.schedmiss, key=lambda e: e.delay_ms)
        out.append(f"corosync recorded {len(live.schedmiss)} pause(s) of its main loop over 0.8 x T "
                   f"(stats.schedmiss; largest {worst.delay_ms:.0f} ms, T = {live.token_ms} ms): "
                   "this node's corosync has been kept from running (corosync issue 520)")
    downs = [ln for ln in live.links if ln.down_count > 1]
    if downs:
        out.append("knet links that went down since corosync started: " + ", ".join(
            f"node {ln.nodeid} link {ln.link} ({ln.down_count - 1} time(s) after the first connect)" for ln in downs))
    if live.nodelist_nodes and len(live.members) < live.nodelist_nodes:
        out.append(f"{len(live.members)} of {live.nodelist_nodes} nodelist nodes are members now")
    return out
