"""bench/compare.py --quick really runs both tools and prints their ratios (issue 7).

Everything on a tmpfs the test mounts, so it takes seconds whatever the disk does; the figures
themselves are not asserted against targets here (that is the script's job on a real disk),
only that both tools produced numbers the script could pair up. pg_test_fsync is left out
(CI does not install postgresql-15); fio and a C compiler for bench/syncloop.c are installed by
tools/test.sh. The run is pinned with --cpu, so the pinning path is exercised too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import requires_root

REPO = Path(__file__).resolve().parent.parent


@requires_root
def test_compare_quick_on_tmpfs(ramfs: Path, tmp_path: Path) -> None:
    if shutil.which("fio") is None:
        pytest.fail("fio is missing: tools/test.sh installs it (Debian package fio)")
    mnt = ramfs
    out = tmp_path / "compare.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "bench/compare.py", "--quick", "--no-install", "--dir", str(mnt),
         "--tmpfs-dir", str(mnt), "--cases", "overwrite,append,tmpfs,limit,noise",
         "--cpu", str(max(os.sched_getaffinity(0))), "--waker", "5", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    wall_s = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in mnt.iterdir()) == [], "compare.py left files behind"
    assert wall_s < 60, f"--quick took {wall_s:.0f} s"
    data = json.loads(out.read_text())
    names = [s["name"] for s in data["series"]]
    assert names == ["overwrite", "append", "tmpfs", "limit", "noise"]
    for s in data["series"]:
        assert len(s["pairs"]) == 2
        for a, b in s["pairs"]:
            assert a["ops_per_s"] > 0 and b["ops_per_s"] > 0
            assert 0 < a["latency_ns"]["p50"] <= a["latency_ns"]["p99"]
            assert b["latency_ns"]["p50"] > 0
    # the tables: one row per pair and a median row per case, each with a ratio
    medians = [line for line in proc.stdout.splitlines() if line.lstrip().startswith("median")]
    assert len(medians) == 5
    assert all(float(line.split()[3]) > 0 for line in medians)
    assert "both tools pinned to CPU" in proc.stdout
    assert "of the C loop's ops/s" in proc.stdout
    assert "two runs of the same fio job" in proc.stdout
    # --waker: announced, and every sleeper it started is gone with the run
    assert "waker: a sleeper waking every 5 ms" in proc.stdout
    assert not _wakers_running(), "compare.py left a --waker sleeper running"
    # 2 pairs are too few for a 90 % interval of the median, and the tables say so
    assert proc.stdout.count("confidence interval of each median ratio") == 5
    assert "too few pairs" in proc.stdout
    # tmpfs is not a disk: only the tmpfs loop-overhead target applies
    assert [t["text"].split(":")[0] for t in data["targets"]] == ["tmpfs"]


@requires_root
def test_compare_probe_case_on_tmpfs(ramfs: Path, tmp_path: Path) -> None:
    """The `probe` case (issue 16): the default run, --no-sched-probe and the C loop in each round;
    the default run's report has its probe windows and the script reads their rate."""
    out = tmp_path / "compare.json"
    proc = subprocess.run(
        [sys.executable, "bench/compare.py", "--quick", "--no-install", "--dir", str(ramfs), "--cases", "probe",
         "--cpu", str(max(os.sched_getaffinity(0))), "--fsyncprobe-tree", str(REPO), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in ramfs.iterdir()) == [], "compare.py left files behind"
    data = json.loads(out.read_text())
    assert [s["name"] for s in data["series"]] == ["probe", "probe-limit"]
    for s in data["series"]:
        assert len(s["pairs"]) == 2
        for a, b in s["pairs"]:
            assert a["ops_per_s"] > 0 and b["ops_per_s"] > 0
            assert a["extra"]["beside_probe_ops_per_s"] > 0 and a["extra"]["probe_s"] > 0
    # the same default run stands in both series of a round
    assert [a for a, _ in data["series"][0]["pairs"]] == [a for a, _ in data["series"][1]["pairs"]]
    assert "the default run's probe windows" in proc.stdout
    assert data["targets"] == []  # tmpfs is not a disk: the issue-16 targets are for the VM's disk


def _wakers_running() -> list[int]:
    """Pids of compare.py's --waker sleepers: bench/waker.c built in its temp dir, or the Python
    fallback (whose program text is on its command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv0 = cmdline.split(b"\0", 1)[0]
        if b"time.sleep(d)" in cmdline or (b"fsyncprobe-compare-cc-" in argv0 and argv0.endswith(b"/waker")):
            pids.append(int(entry.name))
    return pids


@requires_root
def test_compare_paced_case_on_tmpfs(ramfs: Path, tmp_path: Path) -> None:
    """The paced case (issue 16) really runs fsyncprobe --rate 10, ioping at 100 ms and the closed
    loop, and checks the operation count; ioping's temp file goes with its private dir."""
    if shutil.which("ioping") is None:
        pytest.fail("ioping is missing: tools/test.sh installs it (Debian package ioping)")
    out = tmp_path / "paced.json"
    proc = subprocess.run(
        [sys.executable, "bench/compare.py", "--no-install", "--dir", str(ramfs), "--cases", "paced",
         "--pairs", "1", "--paced-seconds", "1", "--duration", "0.3", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in ramfs.iterdir()) == [], "compare.py left files behind"
    data = json.loads(out.read_text())
    assert [s["name"] for s in data["series"]] == ["paced", "paced-closed"]
    ((ours, ioping),) = data["series"][0]["pairs"]
    ((_, closed),) = data["series"][1]["pairs"]
    assert ours["extra"]["ops"] == 10 and ioping["extra"]["ops"] == 10
    assert ours["extra"]["late"] == 0 or ours["extra"]["lag_max"] > 0
    assert ours["latency_ns"]["p50"] > 0 and 0 < ioping["latency_ns"]["p50"] <= ioping["latency_ns"]["p99"]
    assert closed["ops_per_s"] > 10 * ours["ops_per_s"]  # back to back on a tmpfs: far more than 10/s
    # tmpfs is not a disk: only the operation count is a target there
    assert [t["text"].split(" made ")[0] for t in data["targets"]] == ["paced: fsyncprobe --rate 10"]
    assert all(t["ok"] for t in data["targets"])
    assert "isolated (paced) syncs vs back-to-back ones" in proc.stdout
