"""Plain facts shared by the human-readable renderers (table and markdown), as rows of text:
the verdict, each measured workload, the device and the token-ring model.

One place decides which numbers a person sees and in what units; `table` and `markdown` only
lay them out.
"""

from __future__ import annotations

from fsyncprobe.device.types import DeviceReport
from fsyncprobe.measure import background
from fsyncprobe.measure.types import PVEPERF_WORKLOADS, BackgroundWriteResult, BenchResult, SyncMethod, Workload
from fsyncprobe.ring.types import LiveRing, ModelReport
from fsyncprobe.stats.summary import LatencySummary
from fsyncprobe.units import format_duration_ns, format_rate_per_year, format_seconds, format_size
from fsyncprobe.verdict import plp
from fsyncprobe.verdict.rules import SYNC_PER_OP_WORKLOADS
from fsyncprobe.verdict.types import Finding, Verdict
from fsyncprobe.watch.types import WatchReport


def bench_title(b: BenchResult) -> str:
    """`pveperf on /var/lib (ext4 at /)`."""
    p = b.params
    pveperf = p.workload in PVEPERF_WORKLOADS
    sync = "" if (pveperf or p.workload is Workload.SQLITE) and p.sync is SyncMethod.FSYNC else f" + {p.sync.value}"
    size = "" if pveperf else f" {format_size(p.block_size_bytes)}"
    partial = " — PARTIAL" if b.partial else ""
    label = f"{p.label}: " if p.label and p.label != p.workload.value else ""
    bg = "" if p.background_write is None else f" under background write {background.describe(p.background_write)}"
    paced = f", paced at {p.rate_per_s:g}/s" if p.rate_per_s is not None else ""
    return f"{label}{p.workload.value}{size}{sync}{paced} on {p.path} ({b.fstype} at {b.mountpoint}){bg}{partial}"


def latency_rows(lat: LatencySummary) -> list[tuple[str, str]]:
    """(label, value) rows of a latency summary."""
    f = format_duration_ns
    return [
        ("mean ± σ", f"{f(lat.mean_ns)} ± {f(lat.stddev_ns)}"),
        ("min", f(lat.min_ns)),
        ("p50", f(lat.p50_ns)),
        ("p90", f(lat.p90_ns)),
        ("p99", f(lat.p99_ns)),
        ("p99.9", f(lat.p999_ns)),
        ("max", f(lat.max_ns)),
    ]


def bench_rows(b: BenchResult) -> list[tuple[str, str]]:
    """(label, value) rows for one measured workload."""
    pace = b.pacing
    w = b.probe_windows
    quiet = f" in the quiet windows of {w.run_ns / 1e9:.2f} s" if w is not None else ""
    rows = [
        ("rate", f"{b.ops_per_s:,.1f} ops/s" + (f" (paced at {pace.rate_per_s:g}/s)" if pace is not None else "")),
        ("operations", f"{b.ops:,} in {b.elapsed_ns / 1e9:.2f} s{quiet} (+{b.warmup_ops:,} warm-up)"),
    ]
    if pace is not None:
        missed = pace.scheduled_ops - b.device_ops  # the schedule covers the probe's windows too
        rows.append(("schedule", f"one every {format_duration_ns(pace.interval_ns)}, open loop: "
                                 f"{pace.late_ops:,} started late"
                                 + (f", {missed:,} never started" if missed > 0 else "")
                                 + f"; lag p50 {format_duration_ns(pace.lag.p50_ns)}, "
                                   f"max {format_duration_ns(pace.lag.max_ns)} (not in the latency)"))
    rows += latency_rows(b.latency)
    rows.append(
        (
            "stalls",
            f"{b.stalls.count:,} over {format_duration_ns(b.stalls.threshold_ns)}"
            + (f" (longest {format_duration_ns(b.stalls.longest_ns)})" if b.stalls.count else ""),
        )
    )
    for d in b.device_writes:
        cache = f", cache: {d.write_cache}" if d.write_cache else ""
        fua = ", FUA" if d.fua else ""
        what = f"wrote {format_size(d.write_bytes)} in {d.write_ops:,} requests ({d.role}{cache}{fua})"
        flushes = plp.flush_text(d, b.device_ops if b.params.workload in SYNC_PER_OP_WORKLOADS else None)
        rows.append((f"device {d.device}", what + (f"; {flushes}" if flushes else "")))
    if b.sched_probe is not None:
        sp = b.sched_probe
        rows.append(
            (
                "scheduling delay",
                f"p99 {format_duration_ns(sp.lateness.p99_ns)}, max {format_duration_ns(sp.lateness.max_ns)} "
                f"({sp.policy}, {sp.lateness.count:,} {format_duration_ns(sp.interval_ns)} sleeps in "
                f"{sp.duration_ns / 1e9:.2f} s)",
            )
        )
    if w is not None:
        rows += window_rows(b)
    if b.ring_id_store is not None:
        ri = b.ring_id_store
        fs = "" if ri.same_filesystem else f", {ri.fstype} at {ri.mountpoint}: not the measured filesystem"
        rows.append(("ring-id write", f"p99 {format_duration_ns(ri.latency.p99_ns)}, max "
                                      f"{format_duration_ns(ri.latency.max_ns)} ({ri.latency.count:,} in "
                                      f"{ri.state_dir}{fs})"))
    if b.background_write is not None:
        rows.append(("background write", background_text(b.background_write)))
    if b.partial:
        rows.append(("partial", b.partial_reason or "the run was cut short"))
    return rows


def background_text(bw: BackgroundWriteResult) -> str:
    """`wrote 1.2 GiB at 310.5 MiB/s (asked max) ...`: what the background writer did."""
    asked = "max" if bw.rate_asked_bytes_per_s is None else f"{format_size(bw.rate_asked_bytes_per_s)}/s"
    text = (f"wrote {format_size(bw.written_bytes)} at {format_size(bw.written_bytes_per_s)}/s (asked {asked}) "
            f"in {bw.duration_ns / 1e9:.1f} s, file capped at {format_size(bw.cap_bytes)}")
    if bw.restarts:
        text += f", restarted {bw.restarts:,}x"
    if bw.dirty_max_bytes is not None:
        text += f"; system Dirty up to {format_size(bw.dirty_max_bytes)}"
    if bw.writeback_max_bytes is not None:
        text += f", Writeback up to {format_size(bw.writeback_max_bytes)}"
    return text


def window_rows(b: BenchResult) -> list[tuple[str, str]]:
    """Which windows gave which figure, and what the workload did beside the probe."""
    w = b.probe_windows
    if w is None:
        return []
    measured = ", ".join(what for what, on in (("scheduling delay", b.sched_probe is not None),
                                               ("ring-id write", b.ring_id_store is not None)) if on)
    overruns = (f"; {w.overruns:,} quiet windows held open by a long operation, the probes resumed meanwhile"
                if w.overruns else "")
    rows = [("windows", f"{w.quiet_windows:,} quiet ({w.quiet_ns / 1e9:.2f} s, probes paused): rate, latency, "
                        f"timeline; {w.probe_windows:,} probe ({w.probe_ns / 1e9:.2f} s): {measured or 'nothing'}"
                        f"{overruns}")]
    if w.beside_probe_ops:
        ratio = f", {w.beside_probe_ops_per_s / b.ops_per_s:.2f}x the quiet rate" if b.ops_per_s > 0 else ""
        rows.append(("beside the probe", f"{w.beside_probe_ops_per_s:,.1f} ops/s{ratio}, p99 "
                                         f"{format_duration_ns(w.beside_probe_latency.p99_ns)} "
                                         f"({w.beside_probe_ops:,} operations, not in the figures above)"))
    return rows


def timeline_line(b: BenchResult, width: int = 60) -> str:
    """The per-second rate as a compact sparkline (one character a second, last `width`)."""
    marks = " ▁▂▃▄▅▆▇█"
    # The last second is usually cut short by the end of the run; drawing its low count would
    # show a dip that never happened, so only whole seconds are drawn.
    run_ns = b.probe_windows.run_ns if b.probe_windows is not None else b.elapsed_ns  # wall time, probe windows too
    whole = int(run_ns // 1_000_000_000)
    secs = (b.timeline[:whole] if whole else b.timeline)[-width:]
    if not secs:
        return ""
    # With the probe's windows a second's figures cover only its quiet part (`measured_ns`).
    rates = [float(s.ops) if s.measured_ns is None else s.ops / s.measured_ns if s.measured_ns else 0.0
             for s in secs]
    top = max(rates) or 1
    return "".join(marks[min(8, round(r * 8 / top))] for r in rates)


def device_title(d: DeviceReport) -> str:
    """`/var/lib is on virtual (confidence high)`."""
    return f"Device: {d.path} is on {d.device_class.value} (confidence {d.confidence.value})"


def device_rows(d: DeviceReport, benches: tuple[BenchResult, ...] = ()) -> list[tuple[str, str]]:
    """(label, value) rows: the mount, each leaf with its evidence, and what could not be resolved;
    with `benches` (a bench report, which has no findings) also each leaf's power-loss-protection hint."""
    m = d.mount
    rows = [("mount", f"{m.mountpoint} ({m.fstype} from {m.source})")]
    for leaf in d.leaves:
        facts = [leaf.device_class.value, f"confidence {leaf.confidence.value}"]
        if leaf.model:
            facts.append(f"model {leaf.model}")
        if leaf.write_cache:
            facts.append(f"cache: {leaf.write_cache}")
        if leaf.fua is not None:
            facts.append("FUA" if leaf.fua else "no FUA")
        rows.append((f"leaf {leaf.name}", ", ".join(facts)))
        if len(leaf.stack) > 1:
            rows.append(("  stack", " -> ".join(leaf.stack)))
        rows += [("  evidence", e) for e in leaf.evidence]
        b = next((b for b in benches if b.params.workload in SYNC_PER_OP_WORKLOADS), None)
        if b is not None:
            a = plp.assess(leaf, next((w for w in b.device_writes if w.device == leaf.name), None), b, b.device_ops)
            if a.hint is not plp.PlpHint.NOT_APPLICABLE:
                rows.append(("  power-loss protection", f"{a.summary} (a hint: {plp.PROOF})"))
    rows += [("evidence", e) for e in d.evidence]
    rows += [("unresolved", w) for w in d.warnings]
    return rows


def live_ring_rows(lr: LiveRing) -> list[tuple[str, str]]:
    """(label, value) rows: what the running corosync reported (`Report.live_ring`)."""
    out = [
        ("ring", f"{lr.nodelist_nodes} nodes in the nodelist, {len(lr.members)} members joined"
                 + (f", this node {lr.local_nodeid}" if lr.local_nodeid is not None else "")),
        ("timers", f"T {lr.token_ms:,} ms, consensus {_ms(lr.consensus_ms)}, hold {_ms(lr.hold_ms)}, "
                   f"knet ping {_ms(lr.knet_ping_interval_ms)} / down after {_ms(lr.knet_ping_timeout_ms)}"),
        ("token interval", f"{_ms(lr.mtt_rx_token_ms)} (stats.srp.mtt_rx_token)"),
    ]
    for ln in lr.links:
        out.append((f"link to node {ln.nodeid}/{ln.link}",
                    f"{'up' if ln.connected else 'DOWN'}, round trip {ln.latency_ave_us / 1000:.2f} ms "
                    f"(max {ln.latency_max_us / 1000:.2f} ms), down {ln.down_count} time(s)"))
    if lr.one_way_latency_ms is not None:
        out.append(("per hop (model)", f"{lr.one_way_latency_ms:.2f} ms one way + {lr.jitter_ms or 0:.2f} ms jitter"))
    out.append(("corosync pauses", "none recorded" if not lr.schedmiss else ", ".join(
        f"{e.delay_ms:,.0f} ms" for e in lr.schedmiss) + " (stats.schedmiss, newest first)"))
    return out


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} ms"


def answer_rows(m: ModelReport) -> list[tuple[str, str]]:
    """(label, value) rows of the answers the tool exists for, each with what it rests on; the
    first thing a verdict shows. Empty when the model has no answers (a report of an older
    version)."""
    a = m.answers
    if a is None:
        return []
    if a.token_min_ms is None:  # the basis says why: too few samples, or no token meets the target
        window = f"{a.token_basis}; at most T {_ms(a.token_max_ms)} (the HA ceiling)"
    else:
        window = (f"T {_ms(a.token_min_ms)} to {_ms(a.token_max_ms)} (totem.token from "
                  f"{_ms(a.token_min_setting_ms)} with {m.nodes} nodes): {a.token_basis}; the upper end is "
                  "the HA ceiling")
    ring = f"{a.max_nodes} nodes" if a.max_nodes is not None else "not determined"
    return [
        ("stall tolerance", f"{_ms(a.stall_tolerance_ms)}: {a.stall_tolerance_basis}"),
        ("token window", window),
        ("largest ring", f"{ring}: {a.max_nodes_basis}"),
        ("evidence", "; ".join(f"{what}: {source}" for what, source in a.sources)),
    ]


def _interval_meaningful(m: ModelReport) -> bool:
    """An interval means something where observed stalls give the rate, or where the evidence
    covers the tail's extrapolation; elsewhere it only restates the tail model's assumption."""
    extrapolated = any(nm.extrapolated for nm in m.node_models if not nm.assumed)
    return not extrapolated or (m.answers is not None and m.answers.evidence.covered)


def model_rows(m: ModelReport) -> list[tuple[str, str]]:
    """(label, value) rows of the token-ring model's conclusions."""
    ha = m.ha_ceiling
    pct = int(m.confidence_level * 100)
    rows: list[tuple[str, str]] = []
    if m.answers is None:  # a report of an older version: its figures, before the evidence bound
        rows += [
            ("minimum safe token", "none up to 600 s" if m.min_safe_token_ms is None else
             f"T = {_ms(m.min_safe_token_ms)} (totem.token {_ms(m.min_safe_token_setting_ms)} with {m.nodes} nodes)"),
            ("largest safe ring", f"{m.max_safe_nodes} nodes" if m.max_safe_nodes >= 2 else "none (not even 2 nodes)"),
        ]
    rows += [
        ("ring", f"{m.nodes} nodes, token {m.token_ms:g} ms, token_coefficient {m.token_coefficient_ms:g} ms"),
        ("effective token T", f"{_ms(m.effective_token_ms)} (consensus {_ms(m.consensus_ms)}, "
                              f"retransmit {_ms(m.token_retransmit_ms)}, hold {_ms(m.hold_ms)})"),
    ]
    if m.knet_ping_timeout_ms is not None:
        rows.append(("knet link timers", f"ping every {_ms(m.knet_ping_interval_ms)}, down after "
                                         f"{_ms(m.knet_ping_timeout_ms)}"))
    rows += [
        ("stall tolerance", f"{_ms(m.stall_tolerance_ms)} (bound by {m.stall_tolerance_bound_by})"),
        ("token rotation", f"{m.rotation_ms:,.1f} ms"),
        ("re-formation after a failure", _ms(m.reformation_ms)),
        ("false membership changes", format_rate_per_year(m.false_losses_per_year) + (
            f" ({pct} % interval {format_rate_per_year(m.false_losses_per_year_low)} to "
            f"{format_rate_per_year(m.false_losses_per_year_high)})" if _interval_meaningful(m) else
            " (the fitted tail's estimate, beyond what the data cover: no interval is given)")),
        ("target", f"at most 1 per {m.target_years_per_false_loss:g} years per cluster"),
        ("HA ceiling", f"{'OK' if ha.ok else 'EXCEEDED'}: T {_ms(ha.token_ms)} + consensus {_ms(ha.consensus_ms)} + "
                       f"sync {_ms(ha.sync_ms)} + LRM {_ms(ha.lrm_loop_ms)} + lock retry {_ms(ha.lock_retry_ms)} + "
                       f"commit p99.9 {_ms(ha.commit_p999_ms)} = {_ms(ha.total_ms)} of {_ms(ha.watchdog_ms)} "
                       f"(margin {_ms(ha.margin_ms)}, headroom {_ms(ha.headroom_ms)})"),
        ("HA maximum token", f"T up to {_ms(ha.max_token_ms)}: at most {ha.max_nodes} nodes with this token"),
    ]
    if m.ring_id_store is not None:
        r = m.ring_id_store
        # With no write over the bound the lower end is 0 and says nothing; the upper end is what
        # the sample count cannot rule out.
        p = (f"at most {r.change_probability_high:.2g} ({pct} % upper end: {r.samples} writes cannot rule out more)"
             if not r.over_tolerance else
             f"{r.change_probability:.2g} ({pct} %: {r.change_probability_low:.2g} to {r.change_probability_high:.2g})")
        rows.append(("ring-id write cascade", f"P(a membership change is followed by another) {p}; "
                                              f"{r.over_tolerance} of {r.samples} writes over {_ms(r.tolerance_ms)}"))
    if m.bottleneck_node:
        rows.append(("bottleneck node", m.bottleneck_node))
    return rows


def model_node_rows(m: ModelReport) -> list[tuple[str, str, str, str]]:
    """(node, stall source, largest measured stall / tail, false losses) per node."""
    out = []
    for nm in m.node_models:
        t = nm.tail
        if t is None:
            out.append((nm.hostname, "none", "—", format_rate_per_year(nm.false_losses_per_year)))
            continue
        span = format_duration_ns(t.measured_s * 1e9)
        tail = (f"max {t.max_ms:,.2f} ms in {span}; tail above {t.threshold_ms:,.3f} ms: "
                f"shape {t.shape_xi:.2f}, scale {t.scale_ms:,.3f} ms" if t.fitted else
                f"max {t.max_ms:,.2f} ms in {span} (too few samples for a tail fit)")
        extra = " (extrapolated)" if nm.extrapolated else ""
        out.append((nm.hostname + (" (assumed)" if nm.assumed else ""), t.source, tail,
                    format_rate_per_year(nm.false_losses_per_year) + extra))
    return out


def model_bound_rows(m: ModelReport) -> list[tuple[str, str, str]]:
    """(timer, stall it tolerates, why) for every clock that bounds a stall."""
    return [(b.name, _ms(b.stall_ms), b.explanation) for b in m.stall_bounds]


def assumption_rows(m: ModelReport) -> list[tuple[str, str, str]]:
    """(name, value with unit, source) for every assumption."""
    return [(a.name, f"{a.value} {a.unit}".strip(), a.source) for a in m.assumptions]


# --- The verdict -----------------------------------------------------------------------------


def headline(v: Verdict) -> str:
    """`FAIL (profile pmxcfs): 2 FAIL, 1 WARN, 5 PASS`."""
    counts = {lv: sum(1 for f in v.findings if f.level.value == lv) for lv in ("fail", "warn", "pass")}
    parts = ", ".join(f"{n} {lv.upper()}" for lv, n in counts.items() if n)
    strict = " --strict" if v.strict else ""
    held = f"; held back by {v.bottleneck_node}" if v.bottleneck_node else ""
    return f"{v.level.value.upper()} (profile {v.profile}{strict}): {parts or 'no findings'}{held}"


def finding_rows(v: Verdict) -> list[tuple[str, str, str, str]]:
    """(level, finding, measured / threshold, why / what to do) per finding, worst first."""
    return [_row(f) for f in v.findings]


def _row(f: Finding) -> tuple[str, str, str, str]:
    node = f"[{f.node}] " if f.node else ""
    measured = f.measured or "—"
    if f.threshold:
        measured += f" (limit: {f.threshold})"
    why = f.reason + (f" → {f.advice}" if f.advice else "")
    return (f.level.value.upper(), node + f.title, measured, why)


def node_rows(v: Verdict) -> list[tuple[str, str, str]]:
    """(node, level, report file) for a cluster verdict."""
    return [(n.hostname + (" ← holds the ring back" if n.hostname == v.bottleneck_node else ""),
             n.level.value.upper(), n.source) for n in v.nodes]


WATCH_HEADERS = ("process", "call", "count", "p50", "p99", "p99.9", "max")
"""Columns of `watch_rows`."""


def watch_title(w: WatchReport) -> str:
    """`Watch: 2.0 h observed (stopped by duration; bpftrace v0.17.0)`."""
    span = format_seconds(w.observed_ns / 1e9)
    restarts = f"; followed {len(w.restarts)} restart{'s' if len(w.restarts) != 1 else ''}" if w.restarts else ""
    return f"Watch: {span} observed (stopped by {w.stopped_by.value}{restarts}; {w.bpftrace_version})"


def watch_rows(w: WatchReport) -> list[tuple[str, str, str, str, str, str, str]]:
    """One row per watched process and kind of call (a process with no call seen gets one row)."""
    f = format_duration_ns
    out: list[tuple[str, str, str, str, str, str, str]] = []
    for p in w.processes:
        who = f"{p.name} ({', '.join(map(str, p.pids))})" + (" exited" if p.exited_pids else "")
        if not p.calls:
            out.append((who, "(none seen)", "0", "", "", "", ""))
        for c in p.calls:
            lat = c.latency
            out.append((who, c.kind.value, f"{lat.count:,}", f(lat.p50_ns), f(lat.p99_ns), f(lat.p999_ns),
                        f(lat.max_ns)))
            who = ""
    return out
