"""`--format markdown`: for forum posts and PR comments (GitHub-flavoured tables via tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from fsyncprobe.render import rows
from fsyncprobe.report.types import Report


def render(report: Report) -> str:
    """The report as Markdown sections."""
    out: list[str] = [f"## fsyncprobe {report.command} on `{report.hostname}`", ""]
    if report.model is not None and report.model.answers is not None:
        out += ["### Answers", "", tabulate(rows.answer_rows(report.model), headers=["", ""], tablefmt="github"), ""]
    if report.verdict is not None:

        v = report.verdict
        out += [f"**Verdict: {rows.headline(v)}**", ""]
        if v.nodes:
            out += [tabulate(rows.node_rows(v), headers=["node", "level", "report"], tablefmt="github"), ""]
        out += [tabulate(rows.finding_rows(v), headers=["level", "finding", "measured (limit)",
                                                                "why → what to do"], tablefmt="github"), ""]
    for b in report.benches:
        out.append(f"### {rows.bench_title(b)}")
        out.append("")
        out.append(tabulate(rows.bench_rows(b), headers=["", ""], tablefmt="github"))
        out.append("")
        for note in b.notes:
            out.append(f"> note: {note}")
        if b.notes:
            out.append("")
    if report.device is not None:
        out += [f"### {rows.device_title(report.device)}", "",
                tabulate(rows.device_rows(report.device, report.benches if report.verdict is None else ()),
                         headers=["", ""], tablefmt="github"), ""]
    if report.live_ring is not None:
        out += ["### Live ring (corosync-cmapctl)", "",
                tabulate(rows.live_ring_rows(report.live_ring), headers=["", ""], tablefmt="github"), ""]
    if report.model is not None:
        m = report.model
        out += ["### Token-ring model", "", tabulate(rows.model_rows(m), headers=["", ""], tablefmt="github"), ""]
        out += ["#### Clocks that end a stall", "",
                tabulate(rows.model_bound_rows(m), headers=["timer", "stall", "why"], tablefmt="github"), ""]
        out += ["#### Stalls per node", "",
                tabulate(rows.model_node_rows(m), headers=["node", "stalls from", "measured / fitted tail",
                                                           "false losses"], tablefmt="github"), ""]
        out += ["#### Assumptions", "",
                tabulate(rows.assumption_rows(m), headers=["name", "value", "source"], tablefmt="github"), ""]
        out += [f"- model: {w}" for w in m.warnings]
        if m.warnings:
            out.append("")
    for w in report.warnings:
        out.append(f"- warning: {w}")
    return "\n".join(out).rstrip() + "\n"
