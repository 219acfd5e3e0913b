"""What every command shares: output options, writing the report, mapping errors to exit codes.

This is the only place that decides how a report reaches the user; commands call `emit`.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import sys
import tempfile
import tomllib
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

import click

from fsyncprobe.errors import ExitCode, FsyncprobeError
from fsyncprobe.units import parse_duration_ns, parse_size

F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(str, Enum):
    """Report formats (shared/DESIGN.md, "Commands")."""

    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    PROMETHEUS = "prometheus"


def output_options(formats: tuple[OutputFormat, ...] = tuple(OutputFormat)) -> Callable[[F], F]:
    """`--format/--json/--output/--quiet/--no-progress`, the options every command takes."""

    def deco(fn: F) -> F:
        fn = click.option(
            "--no-progress", is_flag=True, help="No progress bar on stderr (off anyway when stderr is not a terminal)."
        )(fn)
        fn = click.option("--quiet", "-q", is_flag=True, help="No progress and no warnings on stderr.")(fn)
        fn = click.option(
            "--output", "-o", "output", default="-", metavar="FILE",
            help="Write the report to FILE (`-` = stdout, the default). Written atomically.",
        )(fn)
        fn = click.option(
            "--json", "as_json", is_flag=True, help="Same as --format json."
        )(fn)
        fn = click.option(
            "--format", "-f", "fmt", type=click.Choice([f.value for f in formats]), default=None,
            help="Report format (default: table).",
        )(fn)
        return fn

    return deco


def resolve_format(fmt: str | None, as_json: bool) -> OutputFormat:
    """Combine --format and --json; both at once must agree."""
    if as_json and fmt not in (None, OutputFormat.JSON.value):
        raise click.UsageError(f"--json conflicts with --format {fmt}")
    if as_json:
        return OutputFormat.JSON
    return OutputFormat(fmt) if fmt else OutputFormat.TABLE


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


Callback = Callable[[click.Context, click.Parameter, str | None], int | None]


def size_option(name: str, minimum: int, maximum: int) -> Callback:
    """A click callback that parses a size and checks it against [minimum, maximum]."""
    from fsyncprobe.units import format_size

    def cb(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            n = parse_size(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if not minimum <= n <= maximum:
            raise click.BadParameter(
                f"{value} is out of range: accepted {format_size(minimum)} to {format_size(maximum)}"
            )
        return n

    return cb


def duration_option(minimum_ns: int, maximum_ns: int) -> Callback:
    """A click callback that parses a duration and checks it against [minimum, maximum]."""
    from fsyncprobe.units import format_duration_ns

    def cb(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        accepted = f"accepted {format_duration_ns(minimum_ns)} to {format_duration_ns(maximum_ns)}"
        if value.strip().startswith("-"):
            raise click.BadParameter(f"{value} is negative: {accepted}")
        try:
            n = parse_duration_ns(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if not minimum_ns <= n <= maximum_ns:
            raise click.BadParameter(f"{value} is out of range: {accepted}")
        return n

    return cb


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
        click.echo(f"fsyncprobe: error: {self.format_message()}{hint}", err=True)


class OneLineErrorGroup(click.Group):
    """The top-level group: every usage error, of the group or a command, is one line on stderr."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            raise  # bare `fsyncprobe`: the help text, as click shows it
        except click.UsageError as exc:
            raise _OneLineUsageError(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # bare `fsyncprobe`: the help text, as click shows it
        except click.UsageError as exc:
            raise _OneLineUsageError(exc) from None


def warn(message: str, quiet: bool = False) -> None:
    """A warning line on stderr (never on stdout, which carries the report)."""
    if not quiet:
        click.echo(f"fsyncprobe: warning: {message}", err=True)


def handle_errors(fn: F) -> F:
    """Turn core errors into one line on stderr and the design's exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FsyncprobeError as exc:
            click.echo(f"fsyncprobe: error: {exc}", err=True)
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
            click.echo(f"fsyncprobe: error:{where} {exc.strerror or exc}", err=True)
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
            click.echo(
                f"fsyncprobe: error: an input file{which} is not a readable report, snapshot or profile: {what}",
                err=True,
            )
            sys.exit(int(ExitCode.USAGE))

    return wrapper  # type: ignore[return-value]


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
