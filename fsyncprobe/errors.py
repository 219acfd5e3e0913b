"""The error types the core raises, and the exit code each one means.

The core raises these; only `cli` turns them into a one-line message and an exit code
(shared/DESIGN.md, "Commands": 0 PASS/WARN, 1 FAIL, 2 usage error, 3 could not measure).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, as the design fixes them."""

    OK = 0
    FAIL = 1
    USAGE = 2
    CANNOT_MEASURE = 3
    # Conventional shell codes for death by signal (128 + signo): a run cut short by the
    # user is neither a verdict nor a measurement failure.
    INTERRUPTED = 130
    TERMINATED = 143


class FsyncprobeError(Exception):
    """Base class: a problem to report in one line, never with a traceback."""

    exit_code: ExitCode = ExitCode.CANNOT_MEASURE


class UsageError(FsyncprobeError):
    """The user asked for something that does not make sense (bad option, bad file)."""

    exit_code = ExitCode.USAGE


class InputError(UsageError):
    """A file the user gave (snapshot, report, profile, corosync.conf) could not be read or parsed."""


class MeasureError(FsyncprobeError):
    """The measurement could not be made: permission, no space, I/O error, unsupported path."""

    exit_code = ExitCode.CANNOT_MEASURE


class Interrupted(FsyncprobeError):
    """The run was stopped by SIGINT or SIGTERM; `signum` tells which."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}")
        self.exit_code = (
            ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
        )
