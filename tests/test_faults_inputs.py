"""Corrupt input files: a report fed to `model` and `cluster`, a device snapshot fed to
`device --from-snapshot`, a profile fed to `verdict --profile` (issue 6).

Each case runs the real CLI in a subprocess and expects what shared/DESIGN.md promises for a bad
input file: exit 2, one `fsyncprobe: error:` line naming the file, no traceback, no report on
stdout, nothing measured, and the input file and its directory unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import faultkit
from tests.cli_helpers import fsyncprobe

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's recursion limit
HUGE_INT = "9" * 5000  # over int's 4,300-digit string limit (sys.set_int_max_str_digits)


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real bench report and a real device snapshot, written by the real CLI."""
    d = tmp_path_factory.mktemp("valid")
    bench = subprocess.run(
        [sys.executable, "-m", "fsyncprobe", "bench", str(d), "-w", "overwrite", "--file-size", "64k", "--ops", "100",
         "--warmup", "0", "--no-sched-probe", "--no-progress", "--json"],
        capture_output=True, timeout=60,
    )
    assert bench.returncode == 0, bench.stderr
    snap = d / "snap.json"
    dev = subprocess.run([sys.executable, "-m", "fsyncprobe", "device", str(d), "--snapshot", str(snap)],
                         capture_output=True, timeout=60)
    assert dev.returncode == 0, dev.stderr
    return {"report": bench.stdout, "snapshot": snap.read_bytes()}


def _retyped(doc: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    data = json.loads(doc)
    edit(data)
    return json.dumps(data).encode()


def _set_p99(d: dict[str, Any]) -> None:
    d["benches"][0]["latency"]["p99_ns"] = "fast"


def _set_chains(d: dict[str, Any]) -> None:
    d["chains"] = {"not": "a list"}


# name -> (bytes of the corrupt file from the valid one, words the error line must hold)
JSON_CORRUPTIONS: dict[str, tuple[Callable[[bytes, str], bytes], tuple[str, ...]]] = {
    "empty": (lambda v, k: b"", ()),
    "binary": (lambda v, k: b"\x00\xff\xfe\x80 not text", ()),
    "truncated": (lambda v, k: v[: len(v) // 2], ()),
    "not-an-object": (lambda v, k: b"[1, 2, 3]", ("expected an object",)),
    "deeply-nested": (lambda v, k: DEEP_JSON, ("nested too deeply",)),
    "huge-integer": (lambda v, k: v.replace(b"1", HUGE_INT.encode(), 1), ()),
    "wrong-type": (
        lambda v, k: _retyped(v, _set_p99 if k == "report" else _set_chains),
        (),
    ),
}

CONSUMERS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name -> (which valid file it reads, the command line before the file)
    "model": ("report", ("model", "--no-corosync-conf", "--from-report")),
    "cluster": ("report", ("cluster",)),
    "device": ("snapshot", ("device", "--from-snapshot")),
}


def _check(proc: subprocess.CompletedProcess[str], directory: Path, before: dict[str, str], *needles: str) -> str:
    line = faultkit.one_line_error(proc, 2, *needles)
    assert proc.stdout == "", proc.stdout
    faultkit.assert_untouched(directory, before)
    return line


# `model` and `cluster` share one report loader (cli/model.py load_report): cluster gets the
# cases that prove its own path; model and device (a loader of its own) get every case. Every
# case is a subprocess of about a second, so the matrix is kept to what differs.
JSON_CASES = [
    *(("model", k) for k in ("binary", "truncated", "not-an-object", "deeply-nested", "wrong-type")),
    *(("device", k) for k in ("empty", "binary", "truncated", "deeply-nested", "huge-integer", "wrong-type")),
    ("cluster", "deeply-nested"),
]


@pytest.mark.parametrize(("consumer", "corruption"), JSON_CASES)
def test_corrupt_json_input_is_one_line_exit_2(
    tmp_path: Path, valid: dict[str, bytes], consumer: str, corruption: str
) -> None:
    kind, command = CONSUMERS[consumer]
    make, needles = JSON_CORRUPTIONS[corruption]
    bad = tmp_path / f"{kind}.json"
    bad.write_bytes(make(valid[kind], kind))
    faultkit.plant(tmp_path)
    before = faultkit.tree_digest(tmp_path)
    proc = fsyncprobe(*command, str(bad), timeout=60)
    line = _check(proc, tmp_path, before, str(bad), *needles)
    if corruption == "wrong-type":  # the key at fault is named
        assert ("p99_ns" in line) if kind == "report" else ("chains" in line), line


@pytest.mark.parametrize(
    ("consumer", "what"),
    [("model", "dev-null"), ("device", "directory"), ("cluster", "missing")],
)
def test_unreadable_input_is_one_line_exit_2(tmp_path: Path, consumer: str, what: str) -> None:
    _, command = CONSUMERS[consumer]
    faultkit.plant(tmp_path)
    paths = {"missing": str(tmp_path / "no-such.json"), "directory": str(tmp_path / "sub"), "dev-null": "/dev/null"}
    path = paths[what]
    if consumer == "cluster" and what == "directory":
        path = str(tmp_path)  # cluster reads every *.json of a directory: here there is none
    before = faultkit.tree_digest(tmp_path)
    proc = fsyncprobe(*command, path, timeout=60)
    _check(proc, tmp_path, before, path)


def test_report_with_an_impossible_histogram_is_refused_by_model(tmp_path: Path, valid: dict[str, bytes]) -> None:
    # Well-formed JSON, every type right, but a latency bucket no histogram can have.
    data = json.loads(valid["report"])
    data["benches"][0]["histogram"]["buckets"] = [[10**30, 5]]
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps(data))
    before = faultkit.tree_digest(tmp_path)
    proc = fsyncprobe("model", "--no-corosync-conf", "--from-report", str(bad), timeout=60)
    _check(proc, tmp_path, before)


PROFILE_CORRUPTIONS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "not-toml": (b"[[[ = x\n", ("invalid TOML", "line 1")),
    "deeply-nested": (b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", ("nested too deeply",)),
    "unknown-workload": (b'[[workload]]\nworkload = "no-such-workload"\n', ("no-such-workload",)),
}


@pytest.mark.parametrize("corruption", sorted(PROFILE_CORRUPTIONS))
def test_corrupt_profile_is_refused_before_measuring(tmp_path: Path, corruption: str) -> None:
    content, needles = PROFILE_CORRUPTIONS[corruption]
    target = tmp_path / "target"
    target.mkdir()
    faultkit.plant(target)
    profile = tmp_path / "bad.toml"
    profile.write_bytes(content)
    before = faultkit.tree_digest(tmp_path)
    proc = fsyncprobe("verdict", str(target), "--profile", str(profile), "--no-sched-probe", "--no-progress",
                      timeout=60)
    _check(proc, tmp_path, before, str(profile), *needles)
