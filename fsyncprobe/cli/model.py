"""`fsyncprobe model`: token-ring consequences from a saved report or given latencies."""

from __future__ import annotations

import click

from fsyncprobe import pipeline
from fsyncprobe.cli.errors import handle_errors
from fsyncprobe.cli.options import output_options, resolve_format
from fsyncprobe.cli.output import emit, feedback
from fsyncprobe.errors import UsageError
from fsyncprobe.render import Format
from fsyncprobe.ring.model import MAX_NODES_SEARCHED


def parse_latencies(values: tuple[str, ...]) -> list[float]:
    """`--latency-ms 2.1,3.5 --latency-ms 40` -> [2.1, 3.5, 40.0] (non-negative numbers)."""
    out: list[float] = []
    for chunk in values:
        for part in chunk.replace(" ", ",").split(","):
            if not part:
                continue
            try:
                v = float(part)
            except ValueError:
                raise UsageError(f"--latency-ms: {part!r} is not a number") from None
            if not v >= 0 or v == float("inf"):
                raise UsageError(f"--latency-ms: {part} is not a non-negative finite number")
            out.append(v)
    if not out:
        raise UsageError("--latency-ms: no latencies given")
    return out


@click.command("model")
@click.option("--from-report", "from_reports", multiple=True, metavar="R.json",
              help="A saved `bench`/`verdict`/`watch` JSON report (repeat for several nodes).")
@click.option("--latency-ms", "latency_ms", multiple=True, metavar="MS[,MS...]",
              help="Sync latencies in ms instead of a report (comma-separated, repeatable).")
@click.option("--nodes", "-n", type=click.IntRange(1, MAX_NODES_SEARCHED), default=None,
              help="Nodes in the ring (default: from corosync.conf, else the number of reports, else 3).")
@click.option("--token", "token_ms", type=click.FloatRange(min=1, max=600_000), default=None, metavar="MS",
              help="totem.token in ms (default: corosync.conf, else 3000).")
@click.option("--token-coefficient", "token_coefficient_ms", type=click.FloatRange(min=0, max=600_000),
              default=None, metavar="MS", help="totem.token_coefficient in ms (default: corosync.conf, else 650).")
@click.option("--corosync-conf", "conf_path", default=None, metavar="FILE",
              help="Read totem settings and the node count from FILE "
                   "(default: /etc/pve/corosync.conf or /etc/corosync/corosync.conf when present).")
@click.option("--no-corosync-conf", is_flag=True, help="Do not read any corosync.conf.")
@click.option("--no-live-ring", is_flag=True,
              help="Do not ask a running corosync for its timers and link latency (default: asked when it runs "
                   "and the reports are this node's or its ring's, or with --latency-ms).")
@click.option("--network-latency-ms", type=click.FloatRange(min=0, max=10_000), default=None, metavar="X",
              help="One-way network latency per hop (default 0.2, a LAN).")
@click.option("--jitter-ms", type=click.FloatRange(min=0, max=10_000), default=None, metavar="Y",
              help="Extra delay per hop (default 0.1).")
@click.option("--coupling", type=click.FloatRange(min=0, max=1000), default=None, metavar="K",
              help="Stall = K x sync latency (0 = the source code's view, 1 = the folk worst case); "
                   "default: the measured scheduling stalls.")
@click.option("--target-years", type=click.FloatRange(min=0.001, max=1e9, min_open=False), default=10.0,
              show_default=True, help="Acceptable: one false membership change per this many years per cluster.")
@click.option("--max-extrapolation", type=click.FloatRange(min=1, max=1e6), default=None, metavar="F",
              help="How far beyond the observed time (x) the fitted tail may carry a token below the configured "
                   "one (default 10).")
@click.option("--tail-shape-max", type=click.FloatRange(min=0, max=0.9), default=None, metavar="XI",
              help="Largest generalised Pareto shape the stall tail may take (default 0: an exponential tail).")
@click.option("--knet-heartbeat-tick-ms", type=click.FloatRange(min=0, max=10_000), default=None, metavar="MS",
              help="libknet's heartbeat tick: pings and pong timeouts happen only on it, which spreads the stall "
                   "length that re-forms the ring (default 200, libknet's threads_timer_res).")
@output_options((Format.TABLE, Format.JSON, Format.MARKDOWN))
@handle_errors
def model(
    from_reports: tuple[str, ...], latency_ms: tuple[str, ...], nodes: int | None, token_ms: float | None,
    token_coefficient_ms: float | None, conf_path: str | None, no_corosync_conf: bool, no_live_ring: bool,
    network_latency_ms: float | None, jitter_ms: float | None, coupling: float | None, target_years: float,
    max_extrapolation: float | None, tail_shape_max: float | None, knet_heartbeat_tick_ms: float | None,
    fmt: str | None, as_json: bool, output: str,
    quiet: bool, no_progress: bool,
) -> None:
    """Token-ring model: stall tolerance, false-loss rate, safe token, max cluster size, HA ceiling.

    Every assumption is listed with its value and source. Exit 0 (the model gives no verdict),
    2 for bad options or an unreadable report or corosync.conf.
    """
    out_format = resolve_format(fmt, as_json)
    if from_reports and latency_ms:  # before parsing the latencies, so this is the error shown
        raise UsageError("give either --from-report R.json or --latency-ms MS[,MS...]")
    ring = pipeline.RingOptions(
        nodes=nodes, token_ms=token_ms, token_coefficient_ms=token_coefficient_ms, conf_path=conf_path,
        read_conf=not no_corosync_conf, coupling=coupling, network_latency_ms=network_latency_ms,
        jitter_ms=jitter_ms, target_years=target_years, max_extrapolation=max_extrapolation,
        tail_shape_max=tail_shape_max, live_ring=not no_live_ring, knet_heartbeat_tick_ms=knet_heartbeat_tick_ms,
    )
    with feedback(quiet, no_progress) as fb:
        report = pipeline.model(from_reports, parse_latencies(latency_ms) if latency_ms else (), ring, fb)
    emit(report, out_format, output)
