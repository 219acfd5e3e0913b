"""`--format markdown`: for forum posts and PR comments (GitHub-flavoured tables via tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from fsyncprobe.render import text
from fsyncprobe.report import Report


def render(report: Report) -> str:
    """The report as Markdown sections."""
    out: list[str] = [f"## fsyncprobe {report.command} on `{report.hostname}`", ""]
    for b in report.benches:
        out.append(f"### {text.bench_title(b)}")
        out.append("")
        out.append(tabulate(text.bench_rows(b), headers=["", ""], tablefmt="github"))
        out.append("")
        for note in b.notes:
            out.append(f"> note: {note}")
        if b.notes:
            out.append("")
    for w in report.warnings:
        out.append(f"- warning: {w}")
    return "\n".join(out).rstrip() + "\n"
