"""`--format table`: rich tables for a person at a terminal.

Every string reaches rich as a `Text` made by `_lit` (rich never reads markup or emoji codes in
a `Text`), after `literal.shown` has made its control characters visible: a path named
`[bold red]x[/]` is shown as that, not as a red `x` (issue 14)."""

from __future__ import annotations

import io
import textwrap

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fsyncprobe.render import rows
from fsyncprobe.render.literal import shown
from fsyncprobe.report.types import Report
from fsyncprobe.ring.types import ModelReport


def _lit(text: str) -> Text:
    """`text` as rich shows it literally: control characters visible, no markup read."""
    return Text(shown(text))


def render(report: Report, width: int = 100) -> str:
    """The report as rich tables, rendered to plain text `width` columns wide (no colour: the
    same text on a terminal, in a file and in a pipe)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False)
    if report.model is not None and report.model.answers is not None:
        _answers_table(console, report.model)
    if report.verdict is not None:
        _verdict_table(console, report)
    for b in report.benches:
        t = Table(title=_lit(rows.bench_title(b)), show_header=False, title_justify="left", box=None, padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for label, value in rows.bench_rows(b):
            t.add_row(_lit(label), _lit(value))
        spark = rows.timeline_line(b)
        if spark:
            t.add_row(_lit("per second"), _lit(spark))
        console.print(t)
        for note in b.notes:
            console.print(_lit(f"note: {note}"))
        console.print()
    if report.device is not None:
        t = Table(title=_lit(rows.device_title(report.device)), show_header=False, title_justify="left", box=None,
                  padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for label, value in rows.device_rows(report.device, report.benches if report.verdict is None else ()):
            t.add_row(_lit(label), _lit(value))
        console.print(t)
        console.print()
    if report.live_ring is not None:
        t = Table(title="Live ring (corosync-cmapctl)", show_header=False, title_justify="left", box=None,
                  padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for label, value in rows.live_ring_rows(report.live_ring):
            t.add_row(_lit(label), _lit(value))
        console.print(t)
        console.print()
    if report.watch is not None:
        tw = Table(title=_lit(rows.watch_title(report.watch)), title_justify="left", box=None, padding=(0, 2))
        for h in rows.WATCH_HEADERS:
            tw.add_column(h, style="bold" if h == "process" else None)
        for row in rows.watch_rows(report.watch):
            tw.add_row(*(_lit(cell) for cell in row))
        console.print(tw)
        console.print()
    if report.model is not None:
        _model_tables(console, report)
    for w in report.warnings:
        console.print(_lit(f"warning: {w}"))
    return buf.getvalue().rstrip() + "\n"


def _answers_table(console: Console, m: ModelReport) -> None:
    """What the tool exists for, first: tolerance, token window, largest ring, and their evidence."""
    t = Table(title="Answers", show_header=False, title_justify="left", box=None, padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for label, value in rows.answer_rows(m):
        t.add_row(_lit(label), _lit(value))
    console.print(t)
    console.print()


def _model_tables(console: Console, report: Report) -> None:
    """The token-ring model: conclusions, the clocks that bound a stall, nodes, assumptions."""
    m = report.model
    assert m is not None
    t = Table(title="Token-ring model", show_header=False, title_justify="left", box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for label, value in rows.model_rows(m):
        t.add_row(_lit(label), _lit(value))
    console.print(t)
    console.print()
    for title, headers, body in (
        ("Clocks that end a stall", ("timer", "stall", "why"), rows.model_bound_rows(m)),
        ("Stalls per node", ("node", "stalls from", "measured / fitted tail", "false losses"), rows.model_node_rows(m)),
        ("Assumptions", ("name", "value", "source"), rows.assumption_rows(m)),
    ):
        tt = Table(title=title, title_justify="left", box=None, padding=(0, 2))
        for h in headers:
            tt.add_column(h, style="bold" if h == headers[0] else None)
        for row in body:
            tt.add_row(*(_lit(cell) for cell in row))
        console.print(tt)
        console.print()
    for w in m.warnings:
        console.print(_lit(f"model: {w}"))


def _verdict_table(console: Console, report: Report) -> None:
    """The verdict first: headline, then every finding worst first (and the nodes of a ring)."""

    v = report.verdict
    assert v is not None
    console.print(_lit(f"VERDICT: {rows.headline(v)}"))
    if v.nodes:
        tn = Table(title="Nodes", title_justify="left", box=None, padding=(0, 2))
        for h in ("node", "level", "report"):
            tn.add_column(h)
        for node_row in rows.node_rows(v):
            tn.add_row(*(_lit(cell) for cell in node_row))
        console.print(tn)
    # One block per finding rather than a four-column table: the reasons are sentences, and a
    # narrow column would break them into a word per line.
    for f in v.findings:
        node = f"[{f.node}] " if f.node else ""
        console.print(_lit(f"{f.level.value.upper():<5} {node}{f.title}"))
        lines = []
        if f.measured or f.threshold:
            lines.append(f"measured: {f.measured or '—'}" + (f"; limit: {f.threshold}" if f.threshold else ""))
        lines.append(f"why: {f.reason}")
        if f.advice:
            lines.append(f"do: {f.advice}")
        for line in lines:
            # textwrap rather than rich.Padding: Padding pads every line with trailing spaces.
            wrapped = textwrap.fill(shown(line), width=max(40, console.width - 1), initial_indent=" " * 6,
                                    subsequent_indent=" " * 6, break_on_hyphens=False)
            console.print(Text(wrapped), soft_wrap=True)
    console.print()
