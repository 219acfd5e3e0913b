"""`fsyncprobe verdict [PATH]`: bench + device + model + profile rules -> PASS/WARN/FAIL."""

from __future__ import annotations

import click

from fsyncprobe import pipeline
from fsyncprobe.cli.errors import handle_errors
from fsyncprobe.cli.options import (
    allow_concurrent_option,
    duration_option,
    gate_options,
    output_options,
    resolve_format,
    ring_id_options,
    ring_id_settings,
    ring_options,
    ring_settings,
)
from fsyncprobe.cli.output import emit, emit_verdict, feedback
from fsyncprobe.verdict import profiles
from fsyncprobe.verdict.rules import Gates


@click.command("verdict")
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
@click.option("--from-watch", "from_watch", default=None, metavar="R.json",
              help="Model with the distributions a `fsyncprobe watch --json` report observed (hours of the "
                   "real corosync and pmxcfs) instead of this run's seconds of load.")
@ring_id_options
@gate_options
@ring_options
@allow_concurrent_option
@output_options()
@handle_errors
def verdict(
    path: str | None, profile_name: str, duration: int | None, warmup: int | None, sched_probe: bool,
    from_watch: str | None, ring_id: bool, state_dir: str | None,
    min_ops: float | None, max_p99: int | None, strict: bool, nodes: int | None,
    token_ms: float | None, conf_path: str | None, no_corosync_conf: bool, no_live_ring: bool, coupling: float | None,
    allow_concurrent: bool,
    fmt: str | None, as_json: bool, output: str, quiet: bool, no_progress: bool,
) -> None:
    """Is the disk holding PATH fit to hold cluster state? PASS, WARN or FAIL, with the reasons.

    PATH defaults to /var/lib/pve-cluster when it exists, else /var/lib. Runs the profile's
    workloads (pmxcfs: sqlite, pveperf-durable, then paced syncs at 5/s; about 13 s in all), identifies the device, runs
    the token-ring model and applies the profile's thresholds.

    Exit codes: 0 PASS or WARN, 1 FAIL (or WARN with --strict), 2 usage error, 3 could not measure.
    """
    out_format = resolve_format(fmt, as_json)
    rid = ring_id_settings(ring_id, state_dir)
    with feedback(quiet, no_progress, stages=True) as fb:
        try:
            report = pipeline.verdict(
                path, profile_name, duration, warmup, sched_probe,
                Gates(min_ops_per_s=min_ops, max_p99_ns=max_p99, strict=strict),
                ring_settings(nodes, token_ms, conf_path, no_corosync_conf, coupling, no_live_ring), fb,
                allow_concurrent, from_watch, rid,
            )
        except pipeline.PartialRun as exc:
            emit(exc.report, out_format, output)
            raise exc.cause from None
    emit_verdict(report, out_format, output, quiet)
