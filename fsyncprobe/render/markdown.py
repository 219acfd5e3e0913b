"""`--format markdown`: for forum posts and PR comments (GitHub-flavoured tables via tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from fsyncprobe.render import text
from fsyncprobe.report import Report


def render(report: Report) -> str:
    """The report as Markdown sections."""
    out: list[str] = [f"## fsyncprobe {report.command} on `{report.hostname}`", ""]
    if report.verdict is not None:
        from fsyncprobe.render import verdict_text

        v = report.verdict
        out += [f"**Verdict: {verdict_text.headline(v)}**", ""]
        if v.nodes:
            out += [tabulate(verdict_text.node_rows(v), headers=["node", "level", "report"], tablefmt="github"), ""]
        out += [tabulate(verdict_text.finding_rows(v), headers=["level", "finding", "measured (limit)",
                                                                "why → what to do"], tablefmt="github"), ""]
    for b in report.benches:
        out.append(f"### {text.bench_title(b)}")
        out.append("")
        out.append(tabulate(text.bench_rows(b), headers=["", ""], tablefmt="github"))
        out.append("")
        for note in b.notes:
            out.append(f"> note: {note}")
        if b.notes:
            out.append("")
    if report.device is not None:
        out += [f"### {text.device_title(report.device)}", "",
                tabulate(text.device_rows(report.device), headers=["", ""], tablefmt="github"), ""]
    if report.model is not None:
        m = report.model
        out += ["### Token-ring model", "", tabulate(text.model_rows(m), headers=["", ""], tablefmt="github"), ""]
        out += ["#### Clocks that end a stall", "",
                tabulate(text.model_bound_rows(m), headers=["timer", "stall", "why"], tablefmt="github"), ""]
        out += ["#### Stalls per node", "",
                tabulate(text.model_node_rows(m), headers=["node", "stalls from", "measured / fitted tail",
                                                           "false losses"], tablefmt="github"), ""]
        out += ["#### Assumptions", "",
                tabulate(text.assumption_rows(m), headers=["name", "value", "source"], tablefmt="github"), ""]
        out += [f"- model: {w}" for w in m.warnings]
        if m.warnings:
            out.append("")
    for w in report.warnings:
        out.append(f"- warning: {w}")
    return "\n".join(out).rstrip() + "\n"
