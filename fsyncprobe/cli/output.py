"""How a report and the run's messages reach the user: the report on stdout or written atomically
to a file, progress and warnings on stderr (so `fsyncprobe verdict --json | jq` always works).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator

import click

from fsyncprobe.cli.progress import progress_reporter
from fsyncprobe.errors import FsyncprobeError
from fsyncprobe.pipeline import Feedback
from fsyncprobe.render import Format, render
from fsyncprobe.render.literal import shown
from fsyncprobe.report.types import Report
from fsyncprobe.verdict.rules import exit_code


def write_output(text: str, output: str) -> None:
    """Write the report to stdout or atomically to a file (temp file + rename, so a full disk
    or a crash never leaves a half-written report where an old one was)."""
    if not text.endswith("\n"):
        text += "\n"
    if output == "-":
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise FsyncprobeOutputError("standard output is closed; the report was not written (use --output FILE)")
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise  # the reader left: handle_errors ends quietly
        except OSError as exc:  # stdout on a full disk or a failing device
            # Drop what is buffered, or the interpreter's exit flush fails again and says so.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise FsyncprobeOutputError(
                f"standard output: {exc.strerror or exc}; the report was not written"
            ) from None
        return
    try:
        existing: os.stat_result | None = os.stat(output)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise FsyncprobeOutputError(f"--output {output}: {exc.strerror or exc}; nothing was written") from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise FsyncprobeOutputError(f"--output {output}: is a directory")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        # A device, FIFO or socket (`-o /dev/stdout`, a named pipe): write into it. Renaming a
        # temp file over it would replace the node itself -- run as root, `-o /dev/full` turned
        # /dev/full into a regular file (tests/test_faults_inputs.py).
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise FsyncprobeOutputError(
                f"--output {output}: {exc.strerror or exc}; the report was not written"
            ) from None
        return
    # Through symlinks: replace the file a link points to, not the link.
    target = os.path.realpath(output) if existing is not None else os.path.abspath(output)
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fsyncprobe-out-", dir=directory)
    except OSError as exc:
        raise FsyncprobeOutputError(f"--output {output}: {exc.strerror or exc}; nothing was written") from None
    try:
        if existing is not None:  # mkstemp makes 0600: keep the mode the user gave the report
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            # The old file (if any) is untouched: only the temp file was being written.
            kept = " (the existing file is unchanged)" if os.path.exists(target) else ""
            raise FsyncprobeOutputError(
                f"--output {output}: {exc.strerror or exc}; the report was not written{kept}"
            ) from None
        raise


class FsyncprobeOutputError(FsyncprobeError):
    """The report could not be written where the user asked."""


def say(line: str) -> None:
    """One line of the tool's own on stderr, `fsyncprobe: ...`, with what came from outside in it
    (paths, host names) shown literally: a name cannot forge a line or drive the terminal."""
    click.echo(f"fsyncprobe: {shown(line)}", err=True)


def warn(message: str, quiet: bool = False) -> None:
    """A warning line on stderr (never on stdout, which carries the report)."""
    if not quiet:
        say(f"warning: {message}")




@contextlib.contextmanager
def feedback(quiet: bool, no_progress: bool, stages: bool = False) -> Iterator[Feedback]:
    """What a pipeline shows while it runs: a progress bar (on a terminal), with `stages` a line
    as each measurement starts, and warnings; `--quiet` silences all three, `--no-progress`
    the first two."""
    show = not (quiet or no_progress)

    def stage(line: str) -> None:
        say(line)

    said: set[str] = set()

    def warn_once(message: str) -> None:
        # A profile that runs one workload twice (paced, under a background writer) has the same
        # notes on both runs: each is said once on stderr (the report keeps every run's notes).
        if message not in said:
            said.add(message)
            warn(message)

    with progress_reporter(enabled=show) as progress:
        yield Feedback(progress=progress, stage=stage if show and stages else None,
                       warn=None if quiet else warn_once)


def emit(report: Report, fmt: Format, output: str) -> None:
    """Render the report and write it where the user asked."""
    write_output(render(report, fmt), output)


def emit_verdict(report: Report, fmt: Format, output: str, quiet: bool) -> None:
    """Write a verdict report, say the verdict on stderr, and exit with its code."""
    emit(report, fmt, output)
    assert report.verdict is not None
    if not quiet:
        v = report.verdict
        if v.bottleneck_node:
            say(f"{len(v.nodes)} nodes; the ring is held back by {v.bottleneck_node}")
        say(f"verdict {v.level.value.upper()} ({len(v.findings)} findings, profile {v.profile})")
    sys.exit(exit_code(report.verdict))
