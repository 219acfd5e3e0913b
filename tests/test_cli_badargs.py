"""Bad arguments: one line naming the option and what it accepts, exit 2, nothing written.

Every case runs the real CLI in a subprocess against a directory holding a user's file, which
must come out byte for byte the same, with no temp dir left behind.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import faultkit
from tests.cli_helpers import fsyncprobe

# (arguments, words the one error line must contain: the option and the accepted range or values)
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "block-size-zero": (("--block-size", "0"), ("--block-size", "accepted 1 B to 64.0 MiB")),
    "block-size-fraction": (("--block-size", "4.5"), ("--block-size", "not a whole number of bytes")),
    "block-size-absurd": (("--block-size", "9" * 60 + "P"), ("--block-size", "too large")),
    "file-size-petabyte": (("--file-size", "1P"), ("--file-size", "accepted 4.0 KiB to 1.0 TiB")),
    "file-size-garbage": (("--file-size", "lots"), ("--file-size", "not a size", "examples")),
    "duration-negative": (("--duration", "-1"), ("--duration", "negative", "accepted 1.00 ms to 86400 s")),
    "duration-zero": (("--duration", "0"), ("--duration", "accepted 1.00 ms to 86400 s")),
    "duration-absurd": (("--duration", "400d"), ("--duration", "not a duration", "examples")),
    "duration-two-days": (("--duration", "48h"), ("--duration", "accepted 1.00 ms to 86400 s")),
    "warmup-negative": (("--warmup", "-1s"), ("--warmup", "negative", "accepted 0 ns to 86400 s")),
    "stall-threshold-zero": (("--stall-threshold", "0"), ("--stall-threshold", "accepted 1.00 µs")),
    "ops-zero": (("--ops", "0"), ("--ops", "1<=x<=1000000000000")),
    "ops-negative": (("--ops", "-5"), ("--ops", "1<=x<=1000000000000")),
    "block-larger-than-file": (
        ("-w", "overwrite", "--block-size", "1M", "--file-size", "64k"),
        ("--block-size 1.0 MiB is larger than --file-size 64.0 KiB", "accepted 1 B up to the file size"),
    ),
    "block-larger-than-file-append": (
        ("-w", "append", "--block-size", "128k", "--file-size", "64k"),
        ("--block-size", "larger than --file-size"),
    ),
    "unknown-workload": (("-w", "fio"), ("--workload", "pveperf", "pveperf-durable", "overwrite", "append", "sqlite")),
    "unknown-sync": (("--sync", "msync"), ("--sync", "fsync", "fdatasync", "dsync")),
    "unknown-format": (("--format", "prometheus"), ("--format", "table", "json", "markdown")),
    "duration-with-ops": (("--duration", "1s", "--ops", "5"), ("--duration", "--ops", "exclude each other")),
    "json-with-markdown": (("--json", "--format", "markdown"), ("--json", "--format markdown")),
    "unknown-option": (("--blocksize", "4k"), ("--blocksize",)),
    "rate-zero": (("--rate", "0"), ("--rate", "accepted 0.001 to 100000 operations per second")),
    "rate-garbage": (("--rate", "often"), ("--rate", "not a number")),
    "rate-nan": (("--rate", "nan"), ("--rate", "out of range")),
    "interval-zero": (("--interval", "0"), ("--interval", "accepted 10.0 µs to 1000 s")),
    "rate-with-interval": (("--rate", "5", "--interval", "200ms"), ("--rate and --interval exclude each other",)),
}


@dataclass
class Ran:
    """One case, run: where, what was there before, and how the CLI ended."""

    directory: Path
    before: dict[str, str]
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """Every case at once, each in its own directory with a user's files in it: the processes
    overlap, so the whole table costs about one interpreter start per core."""
    started = {}
    for case in sorted(CASES):
        d = tmp_path_factory.mktemp(case)
        faultkit.plant(d)
        before = faultkit.tree_digest(d)
        args = [sys.executable, "-m", "fsyncprobe", "bench", str(d), "--no-sched-probe", "--warmup", "0",
                *CASES[case][0]]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[case] = (d, before, p)
    out = {}
    for case, (d, before, p) in started.items():
        stdout, stderr = p.communicate(timeout=60)
        out[case] = Ran(d, before, subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_argument_is_one_line_exit_2_and_touches_nothing(ran: dict[str, Ran], case: str) -> None:
    r = ran[case]
    faultkit.one_line_error(r.proc, 2, *CASES[case][1])
    assert r.proc.stdout == ""  # no report: nothing was measured
    faultkit.assert_untouched(r.directory, r.before)


def test_bare_command_still_shows_help() -> None:
    proc = fsyncprobe(timeout=30)
    assert "Usage:" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_command_is_one_line() -> None:
    faultkit.one_line_error(fsyncprobe("benchmark", timeout=30), 2, "No such command", "benchmark")


def test_conflicting_ring_options_are_refused_before_measuring(tmp_path: Path) -> None:
    # The conflict was found after the measurement before the redesign: seconds of sync writes on
    # the node for a usage error. Now nothing is measured: no progress line, no temp dir.
    faultkit.plant(tmp_path)
    before = faultkit.tree_digest(tmp_path)
    conf = tmp_path / faultkit.PREEXISTING
    proc = fsyncprobe("verdict", str(tmp_path), "--corosync-conf", str(conf), "--no-corosync-conf",
                      "--duration", "5s", "--warmup", "0s", timeout=30)
    faultkit.one_line_error(proc, 2, "--corosync-conf conflicts with --no-corosync-conf")
    assert proc.stdout == "" and "measuring" not in proc.stderr
    faultkit.assert_untouched(tmp_path, before)
