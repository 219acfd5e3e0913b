"""`fsyncprobe verdict` end to end, as a user runs it, on filesystems the tests build.

One unthrottled loop ext4 (the default ~10 s verdict, timed), one throttled to 50 write IOPS (a
"USB stick", short durations), and a tmpfs. Each real run is made once per module and read by
several tests.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from fsyncprobe.cli import main
from fsyncprobe.verdict import profiles
from tests import realfs
from tests.cli_helpers import cli_runner, fsyncprobe, verdict_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not realfs.is_root(), reason="needs root for loop devices, mounts and the blkio throttle"),
]

SHORT = ("--duration", "1s", "--warmup", "200ms")


@pytest.fixture(scope="module")
def fast_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realfs.LoopFs]:
    with realfs.loop_ext4(tmp_path_factory.mktemp("verdict-fast"), size_mb=192) as fs:
        yield fs


@pytest.fixture(scope="module")
def slow_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realfs.LoopFs]:
    with realfs.loop_ext4(tmp_path_factory.mktemp("verdict-slow"), name="slow") as fs, \
            realfs.write_iops_limit(fs, 50):
        yield fs


@pytest.fixture(scope="module")
def default_run(fast_fs: realfs.LoopFs) -> tuple[subprocess.CompletedProcess[str], float]:
    """The default verdict (profile pmxcfs, its own durations), timed."""
    t0 = time.monotonic()
    proc = fsyncprobe("verdict", str(fast_fs.mountpoint), "--json", "--no-corosync-conf")
    return proc, time.monotonic() - t0


@pytest.fixture(scope="module")
def slow_run(slow_fs: realfs.LoopFs) -> subprocess.CompletedProcess[str]:
    return fsyncprobe("verdict", str(slow_fs.mountpoint), "--json", "--no-corosync-conf", *SHORT)


def findings(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in data["verdict"]["findings"]:
        out.setdefault(f["rule"], []).append(f)
    return out


@pytest.mark.slow
def test_default_verdict_on_a_healthy_disk_passes_or_warns_in_time(
    default_run: tuple[subprocess.CompletedProcess[str], float], fast_fs: realfs.LoopFs
) -> None:
    proc, seconds = default_run
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["command"] == "verdict"
    assert data["verdict"]["level"] in ("pass", "warn")
    assert data["verdict"]["profile"] == "pmxcfs"
    # the profile's two workloads ran for their full duration each
    prof = profiles.load("pmxcfs")
    assert [b["params"]["workload"] for b in data["benches"]] == [w.workload.value for w in prof.workloads]
    for b, w in zip(data["benches"], prof.workloads, strict=True):
        # with the scheduling probe the figures cover the quiet windows of the run (issue 16)
        run_ns = b["probe_windows"]["run_ns"] if b["probe_windows"] else b["elapsed_ns"]
        assert run_ns >= w.duration_ns
    assert data["model"] is not None and data["device"] is not None
    # every finding that is not a PASS says why and what to do
    for f in data["verdict"]["findings"]:
        assert f["reason"]
        if f["level"] != "pass":
            assert f["advice"], f
    rules = findings(data)
    for rule in ("pveperf-rate", "pmxcfs-commit-p999", "device-class", "ha-ceiling", "false-membership-changes"):
        assert rule in rules, sorted(rules)
    assert seconds < 15.0, f"the default verdict took {seconds:.1f} s"
    assert realfs.leftovers(fast_fs.mountpoint) == []


@pytest.mark.slow
def test_throttled_disk_fails_and_names_the_sync_write_finding(slow_run: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in slow_run.stderr
    assert slow_run.returncode == 1, slow_run.stderr
    data = json.loads(slow_run.stdout)
    assert data["verdict"]["level"] == "fail"
    (rate,) = findings(data)["pveperf-rate"]
    assert rate["level"] == "fail"
    assert rate["value"] < 50
    assert "SSD" in rate["advice"]
    # the worst findings come first
    assert data["verdict"]["findings"][0]["level"] == "fail"


@pytest.mark.slow
def test_tmpfs_finding_says_no_disk_was_measured(tmp_path: Path) -> None:
    with realfs.tmpfs(tmp_path) as mnt:
        proc = fsyncprobe("verdict", str(mnt), "--json", "--no-corosync-conf", "--duration", "300ms",
                          "--warmup", "0s")
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    (f,) = findings(data)["no-disk"]
    assert f["level"] == "fail"
    assert "no disk was measured" in f["title"]
    assert proc.returncode == 1


@pytest.mark.slow
def test_json_pipes_into_json_tool_while_progress_shows_on_a_terminal(fast_fs: realfs.LoopFs) -> None:
    # stderr is a terminal (a pty), as when a person types `fsyncprobe verdict --json | python -m json.tool`
    master, slave = pty.openpty()
    try:
        cmd = (f"{sys.executable} -m fsyncprobe verdict {fast_fs.mountpoint} --json --no-corosync-conf "
               f"--profile pveperf --duration 700ms --warmup 0s | {sys.executable} -m json.tool")
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.PIPE, stderr=slave,
                              text=True, timeout=60)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the pty's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        err = b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0, err
    data = json.loads(proc.stdout)
    assert data["verdict"]["profile"] == "pveperf"
    assert "measuring pveperf" in err
    assert "verdict PASS" in err or "verdict WARN" in err


@pytest.mark.slow
def test_gates_and_strict(fast_fs: realfs.LoopFs) -> None:
    args = ("verdict", str(fast_fs.mountpoint), "--json", "-q", "--no-corosync-conf", "--profile", "pveperf",
            "--duration", "500ms", "--warmup", "0s")
    proc = fsyncprobe(*args, "--min-ops", "100000000", "--max-p99", "1us")
    assert proc.returncode == 1, proc.stderr
    rules = findings(json.loads(proc.stdout))
    assert rules["gate-min-ops"][0]["level"] == "fail"
    assert rules["gate-max-p99"][0]["level"] == "fail"
    # gates that pass, with --strict: the exit code then follows the disk's own level
    strict = fsyncprobe(*args, "--min-ops", "1", "--max-p99", "1h", "--strict")
    data = json.loads(strict.stdout)
    assert {f["level"] for f in findings(data)["gate-min-ops"] + findings(data)["gate-max-p99"]} == {"pass"}
    assert data["verdict"]["strict"] is True
    assert strict.returncode == {"pass": 0, "warn": 1, "fail": 1}[data["verdict"]["level"]]


def invoke(*args: str) -> Result:
    """The CLI in-process (usage errors fail before measuring; no need for a subprocess each)."""
    return cli_runner().invoke(main, list(args))


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[workload]]\nworkload = "sqlite"\n[[threshold]]\nrule = "x"\n'
                   'workload = "sqlite"\nmetric = "p99"\nfail = 3\nreason = "r"\nadvice = "a"\n')
    for args in (("--profile", "no-such-profile"), ("--profile", str(bad)), ("--max-p99", "fast"),
                 ("--min-ops", "-5"), ("--format", "yaml"), ("--json", "--format", "table")):
        res = invoke("verdict", str(tmp_path), *args)
        assert res.exit_code == 2, (args, res.output)
        assert isinstance(res.exception, SystemExit), res.exception  # an exit, not a crash
        assert len(res.stderr.strip().splitlines()) <= 2, res.stderr
    res = invoke("verdict", str(tmp_path), "--profile", str(bad))
    assert str(bad) in res.stderr and "fail" in res.stderr and "line 8" in res.stderr
    missing = invoke("verdict", str(tmp_path / "missing"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    # one line: the error, not a "measuring ..." progress line before it
    expect = f"fsyncprobe: error: {tmp_path / 'missing'}: no such file or directory"
    assert missing.stderr.strip().splitlines() == [expect]
    # and once through the real entry point, as a user sees it
    proc = fsyncprobe("verdict", str(tmp_path), "--profile", "no-such-profile")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "pmxcfs" in proc.stderr


def test_every_shipped_profile_runs_its_workloads(fast_fs: realfs.LoopFs) -> None:
    names = [n for n in profiles.available() if n != profiles.DEFAULT_PROFILE]  # pmxcfs: the default run
    assert {"pveperf", "etcd", "postgres-wal"} <= set(names)
    for name in names:
        proc = fsyncprobe("verdict", str(fast_fs.mountpoint), "--profile", name, "--json", "-q",
                          "--no-corosync-conf", "--duration", "200ms", "--warmup", "0s")
        data = verdict_json(proc)
        prof = profiles.load(name)
        assert [b["params"]["workload"] for b in data["benches"]] == [w.workload.value for w in prof.workloads]
        assert {t.rule for t in prof.thresholds} <= set(findings(data))
        assert (data["model"] is not None) == prof.model
    assert realfs.leftovers(fast_fs.mountpoint) == []
