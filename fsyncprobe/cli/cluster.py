"""`fsyncprobe cluster REPORT.json... | DIR`: one verdict for a whole ring from every node's report."""

from __future__ import annotations

import click

from fsyncprobe import pipeline
from fsyncprobe.cli.errors import handle_errors
from fsyncprobe.cli.options import gate_options, output_options, resolve_format, ring_options, ring_settings
from fsyncprobe.cli.output import emit_verdict, feedback
from fsyncprobe.verdict import profiles
from fsyncprobe.verdict.rules import Gates


@click.command("cluster")
@click.argument("reports", nargs=-1, required=True, metavar="REPORT.json... | DIR")
@click.option("--profile", "-p", "profile_name", default=profiles.DEFAULT_PROFILE, show_default=True,
              metavar="NAME|FILE", help="Thresholds to apply to every node (shipped profile name or .toml file).")
@gate_options
@ring_options
@output_options()
@handle_errors
def cluster(
    reports: tuple[str, ...], profile_name: str, min_ops: float | None, max_p99: int | None, strict: bool,
    nodes: int | None, token_ms: float | None, conf_path: str | None, no_corosync_conf: bool, no_live_ring: bool,
    coupling: float | None, fmt: str | None, as_json: bool, output: str, quiet: bool, no_progress: bool,
) -> None:
    """One verdict for a ring from every node's `verdict --json` (or `bench --json`) report.

    Every node is held to the profile on its own; the token-ring model runs with every node's
    measured distribution; the slowest node bounds the ring, and the report names the node that
    holds the cluster back. Give report files, or a directory searched for *.json.

    Exit codes: 0 PASS or WARN, 1 FAIL (or WARN with --strict), 2 unreadable report or usage error.
    """
    out_format = resolve_format(fmt, as_json)
    with feedback(quiet, no_progress) as fb:
        report = pipeline.cluster(
            reports, profile_name, Gates(min_ops_per_s=min_ops, max_p99_ns=max_p99, strict=strict),
            ring_settings(nodes, token_ms, conf_path, no_corosync_conf, coupling, no_live_ring), fb,
        )
    emit_verdict(report, out_format, output, quiet)
