"""`fsyncprobe verdict [PATH]`: bench + device + model + profile rules -> PASS/WARN/FAIL."""

from __future__ import annotations

import os
import sys

import click

from fsyncprobe import corosync, profiles, ring, rules
from fsyncprobe.cli import main
from fsyncprobe.cli.bench import describe_device, new_report
from fsyncprobe.cli.common import duration_option, handle_errors, output_options, resolve_format, warn, write_output
from fsyncprobe.cli.progress import progress_reporter
from fsyncprobe.errors import ExitCode, FsyncprobeError
from fsyncprobe.probe import PartialRunError, check_target, run_bench
from fsyncprobe.render import render
from fsyncprobe.report import BenchParams, BenchResult, Report
from fsyncprobe.ring_model import ModelReport
from fsyncprobe.workloads import PVEPERF_WRITE_BYTES

STALL_THRESHOLD_NS = 100_000_000
"""An operation slower than this counts as a stall (bench's default)."""
CLUSTER_STATE = "/var/lib/pve-cluster"
"""Where pmxcfs keeps config.db (pve-cluster src/pmxcfs/database.c)."""


def default_path() -> str:
    """The cluster-state path when this is a Proxmox VE node, else /var/lib (DESIGN.md, "Commands")."""
    return CLUSTER_STATE if os.path.isdir(CLUSTER_STATE) else "/var/lib"


def plan(profile: profiles.Profile, path: str, duration_ns: int | None, warmup_ns: int | None) -> list[BenchParams]:
    """The measurements a profile asks for, with `--duration`/`--warmup` overriding each workload's."""
    out = []
    for w in profile.workloads:
        block = w.block_size_bytes or (PVEPERF_WRITE_BYTES if w.workload.value == "pveperf" else 4096)
        out.append(BenchParams(
            path=path, workload=w.workload, sync=w.sync, block_size_bytes=block, file_size_bytes=w.file_size_bytes,
            duration_ns=duration_ns or w.duration_ns, ops_limit=None,
            warmup_ns=w.warmup_ns if warmup_ns is None else warmup_ns,
            stall_threshold_ns=getattr(w, "stall_threshold_ns", STALL_THRESHOLD_NS),
        ))
    return out


def model_options(fn: click.decorators.FC) -> click.decorators.FC:
    """Token-ring settings shared by `verdict` and `cluster` (see `fsyncprobe model --help`)."""
    opts = [
        click.option("--nodes", type=click.IntRange(2, ring.MAX_NODES_SEARCHED), default=None,
                     help="Nodes in the ring (default: corosync.conf, else 3 for verdict, the reports for cluster)."),
        click.option("--token", "token_ms", type=click.FloatRange(min=1, max=600_000), default=None, metavar="MS",
                     help="totem.token in ms (default: corosync.conf, else 3000)."),
        click.option("--corosync-conf", "conf_path", default=None, metavar="FILE",
                     help="Read totem settings from FILE (default: /etc/pve/corosync.conf or "
                          "/etc/corosync/corosync.conf when present)."),
        click.option("--no-corosync-conf", is_flag=True, help="Do not read any corosync.conf."),
        click.option("--coupling", type=click.FloatRange(min=0, max=1000), default=None, metavar="K",
                     help="Model stalls as K x sync latency too (0 = source view, 1 = folk worst case)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def run_model(
    nodes_data: list[ring.NodeDistribution], nodes: int | None, token_ms: float | None, conf_path: str | None,
    no_corosync_conf: bool, coupling: float | None, default_nodes: int,
) -> ModelReport:
    """The token-ring model for these nodes with the settings the user and corosync.conf give."""
    if conf_path and no_corosync_conf:
        raise click.UsageError("--corosync-conf conflicts with --no-corosync-conf")
    settings = corosync.CorosyncSettings()
    if not no_corosync_conf:
        path = conf_path or corosync.find_conf()
        if path:
            settings = corosync.read_conf(path)
    conf_nodes = settings.nodes if settings.nodes is not None and settings.nodes >= 2 else None
    params = ring.params_from_settings(settings, nodes=nodes or conf_nodes or default_nodes, token_ms=token_ms,
                                       coupling=coupling)
    return ring.run_model(nodes_data, params)


def gate_options(fn: click.decorators.FC) -> click.decorators.FC:
    """`--min-ops`, `--max-p99`, `--strict`."""
    opts = [
        click.option("--min-ops", type=click.FloatRange(min=0), default=None, metavar="N",
                     help="FAIL when any measured workload gives fewer than N ops/s."),
        click.option("--max-p99", callback=duration_option(1_000, 3_600_000_000_000), default=None, metavar="TIME",
                     help="FAIL when any measured workload's p99 is TIME or more, e.g. 10ms."),
        click.option("--strict", is_flag=True, help="A WARN fails too (exit 1)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def finish(report: Report, out_format: str, output: str, quiet: bool) -> None:
    """Write the report, then exit with the verdict's code."""
    write_output(render(report, out_format), output)
    assert report.verdict is not None
    if not quiet:
        click.echo(f"fsyncprobe: verdict {report.verdict.level.value.upper()} "
                   f"({len(report.verdict.findings)} findings, profile {report.verdict.profile})", err=True)
    sys.exit(rules.exit_code(report.verdict))


@main.command("verdict")
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True), required=False)
@click.option("--profile", "-p", "profile_name", default=profiles.DEFAULT_PROFILE, show_default=True,
              metavar="NAME|FILE", help=f"Workloads and thresholds ({', '.join(profiles.available())}, "
                                         "or a .toml file).")
@click.option("--duration", "-d", callback=duration_option(1_000_000, 86_400 * 10**9), default=None, metavar="TIME",
              help="Measured time of each workload (default: the profile's, 3.5 s each for pmxcfs).")
@click.option("--warmup", callback=duration_option(0, 3_600 * 10**9), default=None, metavar="TIME",
              help="Uncounted warm-up of each workload (default: the profile's).")
@click.option("--sched-probe/--no-sched-probe", default=True, show_default=True,
              help="Measure how late a real-time sleeper process wakes beside the workloads (the model's input).")
@gate_options
@model_options
@output_options()
@handle_errors
def verdict(
    path: str | None, profile_name: str, duration: int | None, warmup: int | None, sched_probe: bool,
    min_ops: float | None, max_p99: int | None, strict: bool, nodes: int | None, token_ms: float | None,
    conf_path: str | None, no_corosync_conf: bool, coupling: float | None,
    fmt: str | None, as_json: bool, output: str, quiet: bool, no_progress: bool,
) -> None:
    """Is the disk holding PATH fit to hold cluster state? PASS, WARN or FAIL, with the reasons.

    PATH defaults to /var/lib/pve-cluster when it exists, else /var/lib. Runs the profile's
    workloads (pmxcfs: sqlite then pveperf, about 10 s in all), identifies the device, runs
    the token-ring model and applies the profile's thresholds.

    Exit codes: 0 PASS or WARN, 1 FAIL (or WARN with --strict), 2 usage error, 3 could not measure.
    """
    out_format = resolve_format(fmt, as_json).value
    profile = profiles.load(profile_name)
    path = path or default_path()
    check_target(path)  # a bad PATH is one error line, before any "measuring ..." line
    gates = rules.Gates(min_ops_per_s=min_ops, max_p99_ns=max_p99, strict=strict)
    benches: list[BenchResult] = []
    show = not (quiet or no_progress)
    with progress_reporter(enabled=show) as progress:
        for params in plan(profile, path, duration, warmup):
            if show:
                click.echo(f"fsyncprobe: measuring {params.workload.value} on {path} "
                           f"({(params.duration_ns or 0) / 1e9:g} s + {params.warmup_ns / 1e9:g} s warm-up)", err=True)
            try:
                benches.append(run_bench(params, progress=progress, sched_probe=sched_probe))
            except PartialRunError as exc:
                if exc.result is not None:
                    benches.append(exc.result)
                report = new_report("verdict", path, tuple(benches), warnings=(f"partial run: {exc.cause}",))
                write_output(render(report, out_format), output)
                raise exc.cause from None
    device = describe_device(path, quiet)
    report = new_report("verdict", path, tuple(benches), device=device)
    for b in benches:
        for note in b.notes:
            warn(note, quiet)
    model: ModelReport | None = None
    why_no_model: str | None = None
    if profile.model:
        try:
            model = run_model([ring.node_from_report(report)], nodes, token_ms, conf_path, no_corosync_conf,
                              coupling, default_nodes=3)
            for w in model.warnings:
                warn(f"model: {w}", quiet)
        except (FsyncprobeError, ValueError, ArithmeticError) as exc:
            # The measurement and the other rules stand without the model: say why it is missing
            # (a `model` WARN finding) rather than lose the verdict.
            why_no_model = str(exc)
            warn(f"model not run: {exc}", quiet)
    result = rules.evaluate(profile, tuple(benches), device, model, gates, why_no_model)
    report = Report(**{**report.__dict__, "model": model, "verdict": result})
    if any(b.partial for b in benches):
        write_output(render(report, out_format), output)
        sys.exit(int(ExitCode.CANNOT_MEASURE))
    finish(report, out_format, output, quiet)
