"""Errors to exit codes: every problem is one line on stderr and the design's exit code, never a
traceback (shared/DESIGN.md, "Commands": 0 PASS/WARN, 1 FAIL, 2 usage error, 3 could not measure)."""

from __future__ import annotations

import functools
import json
import os
import sys
import tomllib
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fsyncprobe.errors import ExitCode, FsyncprobeError
from fsyncprobe.render.literal import shown

F = TypeVar("F", bound=Callable[..., Any])

# A bare `fsyncprobe` shows the help. click 8.2 does it by raising NoArgsIsHelpError, a UsageError
# that must pass through unchanged; click 8.1 (Debian 12 ships 8.1.3, Debian 13 8.1.8) has no such
# class and prints the help and exits itself (click/core.py, `MultiCommand.parse_args`). An empty
# tuple in `except` matches nothing, so the same code serves both (issue 15).
_NO_ARGS_IS_HELP: tuple[type[Exception], ...] = tuple(
    c for c in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if c is not None
)


class _OneLineUsageError(click.ClickException):
    """A click usage error shown as one line (`fsyncprobe: error: ...`), exit 2.

    Click's default shows three lines (usage, a hint, the error); a script that captures
    stderr, and a user who reads it, should get one line naming the option and its range.
    """

    exit_code = int(ExitCode.USAGE)

    def __init__(self, exc: click.UsageError) -> None:
        super().__init__(exc.format_message())
        self.command_path = exc.ctx.command_path if exc.ctx is not None else None

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.command_path} --help')" if self.command_path else ""
        click.echo(shown(f"fsyncprobe: error: {self.format_message()}{hint}"), err=True)


class OneLineErrorGroup(click.Group):
    """The top-level group: every usage error, of the group or a command, is one line on stderr."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except _NO_ARGS_IS_HELP:
            raise  # bare `fsyncprobe`: the help text, as click shows it
        except click.UsageError as exc:
            raise _OneLineUsageError(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise  # bare `fsyncprobe`: the help text, as click shows it
        except click.UsageError as exc:
            raise _OneLineUsageError(exc) from None


def handle_errors(fn: F) -> F:
    """Turn core errors into one line on stderr and the design's exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FsyncprobeError as exc:
            _error(str(exc))
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("fsyncprobe: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))
        except BrokenPipeError:
            # `fsyncprobe ... | head`: the reader left; say nothing more (Python docs, "SIGPIPE").
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(int(ExitCode.OK))
        except OSError as exc:
            where = f" {exc.filename}:" if exc.filename else ""
            _error(f"{where.lstrip()} {exc.strerror or exc}".lstrip())
            sys.exit(int(ExitCode.CANNOT_MEASURE))
        except (RecursionError, ValueError) as exc:
            # A backstop for input files: a loader that lets through what the JSON or TOML
            # parser itself raises on a pathological file (nesting deeper than the recursion
            # limit, an integer over 4,300 digits: sys.set_int_max_str_digits) is still a bad
            # input file, exit 2; anything else of these types is a bug and keeps its traceback.
            if not _raised_by_parser(exc):
                raise
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            files = _input_files(kwargs)
            which = f" ({files[0]})" if len(files) == 1 else ""
            _error(f"an input file{which} is not a readable report, snapshot or profile: {what}")
            sys.exit(int(ExitCode.USAGE))

    return wrapper  # type: ignore[return-value]


def _error(message: str) -> None:
    """The one error line, with outside text in it shown literally (`literal.shown`)."""
    click.echo(f"fsyncprobe: error: {shown(message)}", err=True)


def _input_files(kwargs: dict[str, Any]) -> list[str]:
    """The command's arguments that name existing regular files (the candidates for a bad input)."""
    out: list[str] = []
    for key, value in kwargs.items():
        if key == "output":
            continue
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, str) and v and os.path.isfile(v):
                out.append(v)
    return out


_PARSER_DIRS = tuple(os.path.dirname(m.__file__ or "") + os.sep for m in (json, tomllib))


def _raised_by_parser(exc: BaseException) -> bool:
    """Whether the innermost Python frame of `exc` is in the json or tomllib package."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and last.startswith(_PARSER_DIRS)
