"""The pipelines: one function per command, parameters in, a `Report` out.

Data flows one way (shared/DESIGN.md, "Architecture"): the path is checked, its device stack is
resolved once and handed both to the engine (whose block counters read the devices it found) and
to the report; the engine measures; the model turns the distributions into ring consequences;
the rules turn everything into a verdict. Nothing here parses options, prints or exits: what a
person should see while it runs goes through `Feedback`, and what is wrong is an exception from
`fsyncprobe.errors` that the command line turns into one line and an exit code.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from fsyncprobe import __version__
from fsyncprobe.device import classify, snapshot, snapshot_json
from fsyncprobe.device import from_snapshot_file as device_from_snapshot_file
from fsyncprobe.device.facts import Snapshot
from fsyncprobe.device.types import DeviceReport
from fsyncprobe.errors import FsyncprobeError, InputError, Interrupted, UsageError
from fsyncprobe.measure import engine, nodelock, safety
from fsyncprobe.measure.loop import ProgressCallback
from fsyncprobe.measure.ringid import RingIdTarget
from fsyncprobe.measure.types import BenchParams, BenchResult
from fsyncprobe.measure.workloads import default_block_size
from fsyncprobe.report.codec import load_report
from fsyncprobe.report.hostnames import is_valid_hostname
from fsyncprobe.report.types import Report
from fsyncprobe.ring import conf, live
from fsyncprobe.ring import model as ring_model
from fsyncprobe.ring.inputs import NodeDistribution, node_from_benches, node_from_latencies, node_from_watch
from fsyncprobe.ring.ringid import ring_id_model
from fsyncprobe.ring.types import LiveRing, ModelReport
from fsyncprobe.units import format_seconds
from fsyncprobe.verdict import profiles, rules
from fsyncprobe.verdict.profiles import Profile
from fsyncprobe.watch import runner as watch_runner
from fsyncprobe.watch.runner import WatchParams

CLUSTER_STATE = safety.CLUSTER_STATE_DIR
"""Where pmxcfs keeps config.db (pve-cluster src/pmxcfs/database.c)."""
DEFAULT_BENCH_PATH = "/var/lib"
"""What `bench` and `device` look at when no path is given."""
COROSYNC_STATE_DIR = "/var/lib/corosync"
"""corosync's state dir when corosync.conf sets no `system.state_dir` (exec/util.c `get_state_dir`:
LOCALSTATEDIR/lib/corosync; Debian's corosync.service sets no $STATE_DIRECTORY)."""
DEFAULT_RING_NODES = 3
"""Nodes assumed when neither `--nodes`, corosync.conf nor several reports say (the smallest ring
with a quorum that survives a node's loss)."""


@dataclass(frozen=True)
class Feedback:
    """How a pipeline tells its caller what is happening; every callback is optional."""

    progress: ProgressCallback | None = None
    """Ticks of the running measurement, ten a second (a progress bar)."""
    stage: Callable[[str], None] | None = None
    """One line as each measurement starts (`measuring sqlite on /var/lib (3.5 s + 0.5 s warm-up)`)."""
    warn: Callable[[str], None] | None = None
    """An actionable warning about this run, for stderr (the report keeps its own notes)."""

    def warning(self, message: str) -> None:
        """Pass `message` to `warn`, if set."""
        if self.warn is not None:
            self.warn(message)


@dataclass(frozen=True)
class RingOptions:
    """The token-ring settings the user gave; None means "from the live sources, else the default"
    (corosync.conf when read, else corosync's own defaults: `fsyncprobe.ring.corosync`)."""

    nodes: int | None = None
    """`--nodes`: nodes in the ring."""
    token_ms: float | None = None
    """`--token`: totem.token."""
    token_coefficient_ms: float | None = None
    """`--token-coefficient`: totem.token_coefficient."""
    conf_path: str | None = None
    """`--corosync-conf`: the corosync.conf to read (None: the usual places)."""
    read_conf: bool = True
    """False with `--no-corosync-conf`: read no corosync.conf at all."""
    coupling: float | None = None
    """`--coupling`: model stalls as this x sync latency too."""
    network_latency_ms: float | None = None
    """`--network-latency-ms`: one-way latency per hop."""
    jitter_ms: float | None = None
    """`--jitter-ms`: extra delay per hop."""
    target_years: float | None = None
    """`--target-years`: one false membership change per this many years is acceptable."""
    max_extrapolation: float | None = None
    """`--max-extrapolation`: how far beyond the observed time the tail may carry a lower token."""
    tail_shape_max: float | None = None
    """`--tail-shape-max`: the largest generalised Pareto shape the stall tail may take."""
    live_ring: bool = True
    """False with `--no-live-ring`: do not ask a running corosync (`fsyncprobe.ring.live`)."""
    knet_heartbeat_tick_ms: float | None = None
    """`--knet-heartbeat-tick-ms`: libknet's heartbeat tick, which spreads the stall that re-forms
    the ring (`fsyncprobe.ring.transition`; None: 200 ms, libknet's default)."""


@dataclass(frozen=True)
class RingIdOptions:
    """Whether and where corosync's ring-id write is measured beside the workloads."""

    enabled: bool = True
    """False with `--no-ring-id`."""
    state_dir: str | None = None
    """`--state-dir`: corosync's state dir (None: corosync.conf's `system.state_dir`, else
    /var/lib/corosync when it exists, else the measured path)."""


def ring_id_target(opts: RingIdOptions, measured_path: str, conf_path: str | None = None,
                   read_conf: bool = True) -> RingIdTarget | None:
    """The directory whose filesystem the ring-id write is measured on, labelled with where it
    came from: `--state-dir`, else corosync.conf's `system.state_dir`, else corosync's default
    when it exists, else the measured path itself (no corosync here). An unreadable corosync.conf
    is passed over here: the model reports it."""
    if not opts.enabled:
        return None
    if opts.state_dir:
        return RingIdTarget(opts.state_dir, "given (--state-dir)")
    try:
        settings = conf.load_settings(conf_path, read_conf)
    except FsyncprobeError:
        settings = None
    if settings is not None and settings.state_dir:
        return RingIdTarget(settings.state_dir, f"system.state_dir in {settings.source}")
    if os.path.isdir(COROSYNC_STATE_DIR):
        return RingIdTarget(COROSYNC_STATE_DIR, "corosync's default state dir (exec/util.c get_state_dir)")
    return RingIdTarget(measured_path, "no corosync state dir on this node: the measured path's filesystem")


def _check_ring(ring: RingOptions) -> None:
    """Refuse contradictory ring options before anything is measured or read."""
    if ring.conf_path and not ring.read_conf:
        raise UsageError("--corosync-conf conflicts with --no-corosync-conf")


class PartialRun(FsyncprobeError):
    """A measurement was cut short: `report` holds what was measured (each run marked partial),
    `cause` says why, and the exit code is the cause's."""

    def __init__(self, report: Report, cause: FsyncprobeError) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause
        self.exit_code = cause.exit_code


def new_report(command: str, path: str | None, benches: tuple[BenchResult, ...] = (), **fields: object) -> Report:
    """A report stamped with this host, the time and this version."""
    return Report(
        command=command,
        tool_version=__version__,
        created_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        hostname=socket.gethostname(),
        path=path,
        benches=benches,
        **fields,  # type: ignore[arg-type]
    )


# --- Measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Measured:
    """What measuring on one path found: the device (None: not identified) and every run."""

    device: DeviceReport | None
    benches: tuple[BenchResult, ...]
    warnings: tuple[str, ...] = ()
    """What the report must say about the run itself (shared storage)."""


def _device_of(path: str, feedback: Feedback) -> tuple[Snapshot | None, DeviceReport | None]:
    """The path's device facts and class, resolved once for the whole run; the measurement
    stands without them (a warning says why)."""
    try:
        snap = snapshot(path)
    except FsyncprobeError as exc:
        feedback.warning(f"device not identified: {exc}")
        return None, None
    return snap, classify(snap)


def _measure(command: str, path: str, plan: Sequence[BenchParams], sched_probe: bool, feedback: Feedback,
             allow_concurrent: bool = False, ring_id: RingIdTarget | None = None) -> _Measured:
    """Check `path`, resolve its device once, then run every planned workload on it in turn,
    holding the node's measurement lock (`nodelock`) unless `allow_concurrent`. A run cut short
    raises `PartialRun` with a report of everything measured until then (its cause alone when
    nothing was). corosync's ring-id write is measured beside each workload on `ring_id`'s
    filesystem, resolved once here (`engine.ring_id_site`)."""
    real = engine.check_target(path)  # a bad PATH is one error line, before any other output
    snap, device = _device_of(path, feedback)
    where = engine.target(path, real, snap)  # refuses pmxcfs and kernel interfaces
    shared = safety.shared_storage_warning(path, where.fstype, device)
    if shared is not None:
        feedback.warning(shared)
    warnings = (shared,) if shared is not None else ()
    site = engine.ring_id_site(ring_id, where) if ring_id is not None else None
    benches: list[BenchResult] = []
    with nodelock.hold(allow_concurrent):
        for params in plan:
            if feedback.stage is not None:
                paced = f", paced at {params.rate_per_s:g}/s" if params.rate_per_s is not None else ""
                feedback.stage(f"measuring {params.run_name} on {path}{paced} "
                               f"({(params.duration_ns or 0) / 1e9:g} s + {params.warmup_ns / 1e9:g} s warm-up)")
            try:
                benches.append(engine.run_bench(params, where, progress=feedback.progress, sched_probe=sched_probe,
                                                ring_id=site))
            except engine.PartialRunError as exc:
                if exc.result is not None:
                    benches.append(exc.result)
                if not benches:  # failed before measuring anything: there is no report to give
                    raise exc.cause from None
                partial = new_report(command, path, tuple(benches), device=device,
                                     warnings=(*warnings, f"partial run: {exc.cause}"))
                raise PartialRun(partial, exc.cause) from None
    for b in benches:
        for note in b.notes:
            feedback.warning(note)
    return _Measured(device=device, benches=tuple(benches), warnings=warnings)


def bench(params: BenchParams, sched_probe: bool = True, feedback: Feedback = Feedback(),
          allow_concurrent: bool = False, ring_id: RingIdOptions = RingIdOptions()) -> Report:
    """`fsyncprobe bench`: one workload on the filesystem holding `params.path`, and its device
    (and corosync's ring-id write beside it, `ring_id_target`)."""
    measured = _measure("bench", params.path, (params,), sched_probe, feedback, allow_concurrent,
                        ring_id_target(ring_id, params.path))
    return new_report("bench", params.path, measured.benches, device=measured.device, warnings=measured.warnings)


def default_verdict_path() -> str:
    """The cluster-state path on a Proxmox VE node, else /var/lib (shared/DESIGN.md, "Commands")."""
    return CLUSTER_STATE if os.path.isdir(CLUSTER_STATE) else DEFAULT_BENCH_PATH


def verdict_plan(profile: Profile, path: str, duration_ns: int | None, warmup_ns: int | None) -> list[BenchParams]:
    """The measurements a profile asks for, with `--duration`/`--warmup` overriding each workload's."""
    return [
        BenchParams(
            path=path, workload=w.workload, sync=w.sync,
            block_size_bytes=w.block_size_bytes or default_block_size(w.workload),
            file_size_bytes=w.file_size_bytes, duration_ns=duration_ns or w.duration_ns, ops_limit=None,
            warmup_ns=w.warmup_ns if warmup_ns is None else warmup_ns, stall_threshold_ns=w.stall_threshold_ns,
            label=w.name, rate_per_s=w.rate_per_s, background_write=w.background_write,
        )
        for w in profile.workloads
    ]


def verdict(
    path: str | None, profile_name: str | None = None, duration_ns: int | None = None,
    warmup_ns: int | None = None, sched_probe: bool = True, gates: rules.Gates | None = None,
    ring: RingOptions = RingOptions(), feedback: Feedback = Feedback(), allow_concurrent: bool = False,
    from_watch: str | None = None, ring_id: RingIdOptions = RingIdOptions(),
) -> Report:
    """`fsyncprobe verdict`: the profile's workloads (with corosync's ring-id write beside
    them), the device, the ring model and the rules.
    With `from_watch`, the model takes its distributions from that watch report (hours of the
    real processes beat seconds of load: shared/DESIGN.md, "Evidence, not extrapolation").

    The model needs only the measurement: when it cannot run (an unreadable corosync.conf, a
    distribution it cannot use), the verdict stands with a WARN finding saying why."""
    _check_ring(ring)
    watched = _load_watch(from_watch) if from_watch is not None else None
    profile = profiles.load(profile_name)
    where = path or default_verdict_path()
    measured = _measure("verdict", where, verdict_plan(profile, where, duration_ns, warmup_ns), sched_probe,
                        feedback, allow_concurrent, ring_id_target(ring_id, where, ring.conf_path, ring.read_conf))
    report = new_report("verdict", where, measured.benches, device=measured.device)
    model: ModelReport | None = None
    why_no_model: str | None = None
    warnings: list[str] = []
    live_ring = _live_ring(ring, None, warnings) if profile.model else None
    if profile.model:
        try:
            node = node_of_report(report)
            if watched is not None:
                node = _watched_node(watched, node.commit_p999_ns, warnings)
            model = _ring_model([node], ring, DEFAULT_RING_NODES, warnings, live_ring)
        except (FsyncprobeError, ValueError, ArithmeticError) as exc:
            why_no_model = str(exc)
            feedback.warning(f"model not run: {exc}")
        else:
            for w in model.warnings:
                feedback.warning(f"model: {w}")
    for w in warnings:
        feedback.warning(w)
    result = rules.evaluate(profile, measured.benches, measured.device, model, gates or rules.Gates(), why_no_model)
    return replace(report, model=model, live_ring=live_ring, verdict=result,
                   warnings=(*measured.warnings, *warnings), watch=watched.watch if watched is not None else None)


# --- The ring model ----------------------------------------------------------------------------


def node_of_report(report: Report) -> NodeDistribution:
    """The ring model's inputs from a bench/verdict report (a run's own, or a saved one), or
    from a watch report (the distributions observed over the watched time)."""
    if report.watch is not None and not report.benches:
        return node_from_watch(report.hostname, report.watch)
    if not report.benches:
        raise InputError(f"report from {report.hostname} has no measurements (command {report.command!r})")
    return node_from_benches(report.hostname, report.benches)


def _live_ring(ring: RingOptions, hostnames: Sequence[str] | None, warnings: list[str],
               reports: Sequence[Report] = ()) -> LiveRing | None:
    """The running ring being modelled. This node's (`corosync-cmapctl`): always for `verdict`
    (`hostnames` None); for `model` and `cluster` only when this host is among the reports' hosts
    or the running nodelist names every one of them (on an admin box a corosync of another ring
    says nothing about these nodes). Else the live ring a node recorded in its own report (the one
    with the slowest links), said in a warning. Never fatal: without one the model runs as before."""
    if not ring.live_ring:
        return None
    found = live.read_live_ring()
    if found.note:
        warnings.append(found.note)
    lr = found.ring
    if lr is not None and hostnames is None:
        return lr
    hosts = list(hostnames or ())
    if lr is not None and (socket.gethostname() in hosts
                           or (lr.nodelist_names and set(hosts) <= set(lr.nodelist_names))):
        return lr
    saved = [(r.live_ring, r) for r in reports if r.live_ring is not None]
    if not saved:
        return None
    best, by = max(saved, key=lambda p: p[0].one_way_latency_ms or 0.0)
    warnings.append(f"live ring as {by.hostname}'s report recorded it ({by.created_utc})")
    return best


def _given_sources(ring: RingOptions) -> tuple[tuple[str, str], ...]:
    """Labels for the values given on the command line (they win over every other source)."""
    given = [("nodes", ring.nodes, "--nodes"), ("token", ring.token_ms, "--token"),
             ("token_coefficient", ring.token_coefficient_ms, "--token-coefficient"),
             ("network_latency", ring.network_latency_ms, "--network-latency-ms"),
             ("jitter", ring.jitter_ms, "--jitter-ms"),
             ("knet heartbeat tick", ring.knet_heartbeat_tick_ms, "--knet-heartbeat-tick-ms")]
    return tuple((name, f"command line ({opt})") for name, v, opt in given if v is not None)


def _ring_model(nodes: Sequence[NodeDistribution], ring: RingOptions, default_nodes: int,
                warnings: list[str], live_ring: LiveRing | None = None) -> ModelReport:
    """The token-ring model for these nodes. Precedence, value by value: the command line, then
    the live ring (`live_ring`: the running corosync's settings, timers and knet latency; its
    settings yield to a corosync.conf named with `--corosync-conf`), then corosync.conf, then
    corosync's defaults; every value's source is in the model's assumptions. A nodelist the node
    count cannot come from, and what the live ring says the operator should know, add to `warnings`."""
    settings = conf.load_settings(ring.conf_path, ring.read_conf)
    lin = None
    if live_ring is not None:
        lin = live.model_inputs(live_ring, settings, ring.conf_path is not None, ring.nodes,
                                ring.token_ms is not None or ring.token_coefficient_ms is not None)
        settings = lin.settings
        warnings.extend(lin.notes)
    n, why = conf.node_count(settings, ring.nodes, default_nodes)
    if why:
        warnings.append(why)
    timers = lin.timers if lin is not None and lin.timers is not None and lin.timers.nodes == n else None
    params = ring_model.params_from_settings(
        settings, n, token_ms=ring.token_ms, token_coefficient_ms=ring.token_coefficient_ms,
        network_latency_ms=ring.network_latency_ms if ring.network_latency_ms is not None
        else lin and lin.network_latency_ms,
        jitter_ms=ring.jitter_ms if ring.jitter_ms is not None else lin and lin.jitter_ms,
        coupling=ring.coupling, target_years_per_false_loss=ring.target_years,
        max_extrapolation=ring.max_extrapolation, tail_shape_max=ring.tail_shape_max, live_timers=timers,
        knet_heartbeat_tick_ms=ring.knet_heartbeat_tick_ms,
        live_rotation_ms=lin.rotation_ms if lin is not None and timers is not None else None,
        value_sources=(lin.sources if lin is not None else ()) + _given_sources(ring),
    )
    result = ring_model.run_model(nodes, params)
    # What corosync's own ring-id write does to a membership change (ring/ringid.py).
    return replace(result, ring_id_store=ring_id_model(nodes, result))


def model(
    report_paths: Sequence[str] = (), latencies_ms: Sequence[float] = (), ring: RingOptions = RingOptions(),
    feedback: Feedback = Feedback(),
) -> Report:
    """`fsyncprobe model`: ring consequences of saved reports (one per node) or given latencies."""
    if bool(report_paths) == bool(latencies_ms):
        raise UsageError("give either --from-report R.json or --latency-ms MS[,MS...]")
    _check_ring(ring)
    if report_paths:
        reports = [load_report(p) for p in report_paths]
        nodes = [node_of_report(r) for r in reports]
        hostname = reports[0].hostname if len(reports) == 1 else socket.gethostname()
        hosts = [r.hostname for r in reports]
        saved = reports
        observed: list[str] = [observed_note(r) for r in reports if r.watch is not None and not r.benches]
    else:
        nodes = [node_from_latencies("given latencies", latencies_ms)]
        hostname = socket.gethostname()
        hosts = [hostname]  # given latencies: a question about this node's ring
        saved = []
        observed = []
    warnings: list[str] = [*observed]
    live_ring = _live_ring(ring, hosts, warnings, saved)
    result = _ring_model(nodes, ring, len(nodes) if len(nodes) > 1 else DEFAULT_RING_NODES, warnings, live_ring)
    for w in (*warnings, *result.warnings):
        feedback.warning(w)
    return replace(new_report("model", None, model=result, live_ring=live_ring, warnings=tuple(warnings)),
                   hostname=hostname)


def report_files(paths: Sequence[str]) -> list[str]:
    """The report files named: files as given, directories searched for `*.json` (recursively, so
    the per-host tree `ansible.builtin.fetch` makes works as it is)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(root, f) for root, _, files in os.walk(p) for f in files if f.endswith(".json"))
            if not found:
                raise InputError(f"{p}: no *.json reports in this directory")
            out += found
        elif os.path.exists(p):
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    return out


def cluster(
    report_paths: Sequence[str], profile_name: str | None = None, gates: rules.Gates | None = None,
    ring: RingOptions = RingOptions(), feedback: Feedback = Feedback(),
) -> Report:
    """`fsyncprobe cluster`: one verdict for a ring from every node's report; the slowest node
    bounds the ring, and the verdict names the node that holds it back."""
    _check_ring(ring)
    profile = profiles.load(profile_name)
    files = report_files(report_paths)
    loaded = [(f, load_report(f)) for f in files]
    seen: dict[str, str] = {}
    for f, r in loaded:
        if not is_valid_hostname(r.hostname):
            raise InputError(f"{f}: the report's host name '{r.hostname}' is not a valid host name (hostname(7)); "
                             "give each node's own `fsyncprobe verdict --json` report")
        if not r.benches:
            raise InputError(f"{f}: report from {r.hostname} has no measurements (command {r.command!r}); "
                             "give `fsyncprobe verdict --json` reports")
        if r.hostname in seen:
            raise UsageError(f"two reports from host {r.hostname!r}: {seen[r.hostname]} and {f} "
                             "(give one report per node)")
        seen[r.hostname] = f
    model_report = None
    live_ring = None
    warnings: list[str] = []
    if profile.model:
        nodes = []
        for f, r in loaded:
            try:
                nodes.append(node_of_report(r))
            except (OverflowError, ValueError) as exc:  # a histogram no real run could make
                raise InputError(f"{f}: report from {r.hostname} has an impossible histogram: {exc}") from None
        live_ring = _live_ring(ring, [r.hostname for _, r in loaded], warnings, [r for _, r in loaded])
        model_report = _ring_model(nodes, ring, max(2, len(nodes)), warnings, live_ring)
        for w in model_report.warnings:
            feedback.warning(f"model: {w}")
    for w in warnings:
        feedback.warning(w)
    result = rules.evaluate_cluster(
        profile, [(r.hostname, f, r.benches, r.device) for f, r in loaded], model_report, gates or rules.Gates())
    return new_report("cluster", None, model=model_report, live_ring=live_ring, verdict=result,
                      warnings=tuple(warnings))


# --- Watching the real processes ------------------------------------------------------------


def observed_note(report: Report) -> str:
    """What the model says when its distributions come from a watch report."""
    w = report.watch
    assert w is not None
    span = format_seconds(w.observed_ns / 1e9)
    sched = "/".join(p.name for p in w.processes if p.scheduling)
    sync = "/".join(p.name for p in w.processes if not p.scheduling)
    what = " and ".join(x for x in (sched and f"the run delay of {sched}", sync and f"the sync calls of {sync}") if x)
    return (f"{report.hostname}: stall data from observation: {what or 'nothing'} as `fsyncprobe watch` saw "
            f"them over {span} (report of {report.created_utc}), not a synthetic load")


def _load_watch(path: str) -> Report:
    """A saved watch report, refused when it holds no watch."""
    r = load_report(path)
    if r.watch is None:
        raise InputError(f"{path}: not a watch report (command {r.command!r}); give `fsyncprobe watch --json` output")
    return r


def _watched_node(watched: Report, bench_commit_ns: int | None, warnings: list[str]) -> NodeDistribution:
    """The model's node from a watch report, keeping the worse commit p99.9 of watch and bench."""
    assert watched.watch is not None
    node = node_from_watch(watched.hostname, watched.watch)
    if watched.hostname != socket.gethostname():
        warnings.append(f"the watch report is from {watched.hostname}, not this host ({socket.gethostname()})")
    warnings.append(observed_note(watched))
    commits = [c for c in (node.commit_p999_ns, bench_commit_ns) if c is not None]
    return replace(node, commit_p999_ns=max(commits) if commits else None)


def watch(params: WatchParams, feedback: Feedback = Feedback()) -> Report:
    """`fsyncprobe watch`: observe the real processes with bpftrace until `params.duration_ns`
    (or, without one, until SIGINT/SIGTERM, which then end it normally). A watch cut short
    otherwise (a signal before the duration, every process of a name exited, bpftrace died)
    raises `PartialRun` with the report of everything seen until then."""
    try:
        seen = watch_runner.run(params, stage=feedback.stage)
    except watch_runner.WatchCut as cut:
        report = new_report("watch", None, watch=cut.report, warnings=cut.report.notes)
        if isinstance(cut.cause, Interrupted) and params.duration_ns is None:
            return report
        partial = replace(report, warnings=(*cut.report.notes, f"partial watch: {cut.cause}"))
        raise PartialRun(partial, cut.cause) from None
    for note in seen.notes:
        feedback.warning(note)
    return new_report("watch", None, watch=seen, warnings=seen.notes)


# --- The device alone --------------------------------------------------------------------------


def device(
    path: str | None = None, from_snapshot: str | None = None,
    save_snapshot: Callable[[str], None] | None = None, feedback: Feedback = Feedback(),
) -> Report:
    """`fsyncprobe device`: what holds `path` (default /var/lib), or what a saved snapshot says;
    `save_snapshot` receives the raw facts as the documented JSON text before classifying."""
    if from_snapshot is not None:
        if path is not None or save_snapshot is not None:
            raise UsageError("--from-snapshot classifies saved facts: give no PATH and no --snapshot with it")
        found = device_from_snapshot_file(from_snapshot)
    else:
        snap = snapshot(path or DEFAULT_BENCH_PATH)
        if save_snapshot is not None:
            save_snapshot(snapshot_json(snap))
        found = classify(snap)
    for w in found.warnings:
        feedback.warning(w)
    return new_report("device", found.path, device=found)
