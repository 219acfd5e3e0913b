"""`fsyncprobe cluster REPORT.json... | DIR`: one verdict for a whole ring from every node's report."""

from __future__ import annotations

import os
import socket

import click

from fsyncprobe import profiles, ring, rules
from fsyncprobe.cli import main
from fsyncprobe.cli.bench import new_report
from fsyncprobe.cli.common import handle_errors, output_options, resolve_format, warn
from fsyncprobe.cli.model import load_report
from fsyncprobe.cli.verdict import finish, gate_options, model_options, run_model
from fsyncprobe.errors import InputError, UsageError
from fsyncprobe.report import Report


def report_files(paths: tuple[str, ...]) -> list[str]:
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


@main.command("cluster")
@click.argument("reports", nargs=-1, required=True, metavar="REPORT.json... | DIR")
@click.option("--profile", "-p", "profile_name", default=profiles.DEFAULT_PROFILE, show_default=True,
              metavar="NAME|FILE", help="Thresholds to apply to every node (shipped profile name or .toml file).")
@gate_options
@model_options
@output_options()
@handle_errors
def cluster(
    reports: tuple[str, ...], profile_name: str, min_ops: float | None, max_p99: int | None, strict: bool,
    nodes: int | None, token_ms: float | None, conf_path: str | None, no_corosync_conf: bool,
    coupling: float | None, fmt: str | None, as_json: bool, output: str, quiet: bool, no_progress: bool,
) -> None:
    """One verdict for a ring from every node's `verdict --json` (or `bench --json`) report.

    Every node is held to the profile on its own; the token-ring model runs with every node's
    measured distribution; the slowest node bounds the ring, and the report names the node that
    holds the cluster back. Give report files, or a directory searched for *.json.

    Exit codes: 0 PASS or WARN, 1 FAIL (or WARN with --strict), 2 unreadable report or usage error.
    """
    out_format = resolve_format(fmt, as_json).value
    profile = profiles.load(profile_name)
    files = report_files(reports)
    loaded: list[tuple[str, Report]] = [(f, load_report(f)) for f in files]
    seen: dict[str, str] = {}
    for f, r in loaded:
        if not r.benches:
            raise InputError(f"{f}: report from {r.hostname} has no measurements (command {r.command!r}); "
                             "give `fsyncprobe verdict --json` reports")
        if r.hostname in seen:
            raise UsageError(f"two reports from host {r.hostname!r}: {seen[r.hostname]} and {f} "
                             "(give one report per node)")
        seen[r.hostname] = f
    model = None
    if profile.model:
        dists = []
        for f, r in loaded:
            try:
                dists.append(ring.node_from_report(r))
            except (OverflowError, ValueError) as exc:  # a histogram no real run could make
                raise InputError(f"{f}: report from {r.hostname} has an impossible histogram: {exc}") from None
        model = run_model(dists, nodes, token_ms, conf_path, no_corosync_conf, coupling,
                          default_nodes=max(2, len(dists)))
        for w in model.warnings:
            warn(f"model: {w}", quiet)
    verdict = rules.evaluate_cluster(
        profile, [(r.hostname, f, r.benches, r.device) for f, r in loaded], model,
        rules.Gates(min_ops_per_s=min_ops, max_p99_ns=max_p99, strict=strict),
    )
    report = new_report("cluster", None, model=model, verdict=verdict)
    report = Report(**{**report.__dict__, "hostname": socket.gethostname()})
    if verdict.bottleneck_node and not quiet:
        click.echo(f"fsyncprobe: {len(loaded)} nodes; the ring is held back by {verdict.bottleneck_node}", err=True)
    finish(report, out_format, output, quiet)
