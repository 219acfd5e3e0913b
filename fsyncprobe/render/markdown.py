"""`--format markdown`: for forum posts and PR comments (GitHub-flavoured tables via tabulate).

Every text goes through `_md` (`literal.markdown`: control characters visible, Markdown's markup
characters escaped), and tabulate is told not to read numbers in cells, so a host name `1e3` stays
`1e3` (issue 14)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tabulate import tabulate as _tabulate

from fsyncprobe.render import rows
from fsyncprobe.render.literal import markdown as _md
from fsyncprobe.report.types import Report


def tabulate(body: Iterable[Sequence[str]], headers: Sequence[str], tablefmt: str = "github") -> str:
    """A GitHub table of literal cells."""
    return _tabulate([[_md(c) for c in row] for row in body], headers=list(headers), tablefmt=tablefmt,
                     disable_numparse=True)


def render(report: Report) -> str:
    """The report as Markdown sections."""
    out: list[str] = [f"## fsyncprobe {_md(report.command)} on {_md(report.hostname)}", ""]
    if report.model is not None and report.model.answers is not None:
        out += ["### Answers", "", tabulate(rows.answer_rows(report.model), headers=["", ""], tablefmt="github"), ""]
    if report.verdict is not None:

        v = report.verdict
        out += [f"**Verdict: {_md(rows.headline(v))}**", ""]
        if v.nodes:
            out += [tabulate(rows.node_rows(v), headers=["node", "level", "report"], tablefmt="github"), ""]
        out += [tabulate(rows.finding_rows(v), headers=["level", "finding", "measured (limit)",
                                                                "why → what to do"], tablefmt="github"), ""]
    for b in report.benches:
        out.append(f"### {_md(rows.bench_title(b))}")
        out.append("")
        out.append(tabulate(rows.bench_rows(b), headers=["", ""], tablefmt="github"))
        out.append("")
        for note in b.notes:
            out.append(f"> note: {_md(note)}")
        if b.notes:
            out.append("")
    if report.device is not None:
        out += [f"### {_md(rows.device_title(report.device))}", "",
                tabulate(rows.device_rows(report.device, report.benches if report.verdict is None else ()),
                         headers=["", ""], tablefmt="github"), ""]
    if report.live_ring is not None:
        out += ["### Live ring (corosync-cmapctl)", "",
                tabulate(rows.live_ring_rows(report.live_ring), headers=["", ""], tablefmt="github"), ""]
    if report.watch is not None:
        out += [f"### {_md(rows.watch_title(report.watch))}", "",
                tabulate(rows.watch_rows(report.watch), headers=rows.WATCH_HEADERS), ""]
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
        out += [f"- model: {_md(w)}" for w in m.warnings]
        if m.warnings:
            out.append("")
    for w in report.warnings:
        out.append(f"- warning: {_md(w)}")
    return "\n".join(out).rstrip() + "\n"
