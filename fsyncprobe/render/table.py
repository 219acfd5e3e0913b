"""`--format table`: rich tables for a person at a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from fsyncprobe.render import text
from fsyncprobe.report import Report


def render(report: Report, width: int = 100) -> str:
    """The report as rich tables, rendered to plain text (colour only when writing to a TTY
    is decided by the caller through `color`)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False)
    for b in report.benches:
        t = Table(title=text.bench_title(b), show_header=False, title_justify="left", box=None, padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for label, value in text.bench_rows(b):
            t.add_row(label, value)
        spark = text.timeline_line(b)
        if spark:
            t.add_row("per second", spark)
        console.print(t)
        for note in b.notes:
            console.print(f"note: {note}")
        console.print()
    for w in report.warnings:
        console.print(f"warning: {w}")
    return buf.getvalue().rstrip() + "\n"
