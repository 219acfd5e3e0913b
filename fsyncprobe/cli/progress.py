"""The progress bar on stderr (rich), fed by the engine's progress callback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from fsyncprobe.measure.loop import Progress as EngineProgress
from fsyncprobe.measure.loop import ProgressCallback


@contextlib.contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """Yield a callback that drives a progress bar on stderr, or None when stderr is not a
    terminal or progress is off (so piping the report to `jq` stays clean)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    console = Console(file=sys.stderr)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(p: EngineProgress) -> None:
        if p.phase not in tasks:
            total = p.total_ns / 1e9 if p.total_ns else (p.total_ops or 1)
            tasks[p.phase] = bar.add_task(p.phase, total=total, rate="")
        done = p.elapsed_ns / 1e9 if p.total_ns else p.ops
        bar.update(tasks[p.phase], completed=done, rate=f"{p.ops_per_s:,.0f} ops/s")

    with bar:
        yield update
