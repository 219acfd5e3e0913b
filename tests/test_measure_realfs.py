"""`fsyncprobe bench` on real filesystems made by the tests, checked against independent tools.

References: pveperf's own method (the fsync loop of pve-manager's bin/pveperf, re-run in Perl with
pveperf's own statements and Debian's libfile-sync-perl, and traced with strace) and fio with the
same parameters.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests import realfs
from tests.cli_helpers import bench_json
from tests.conftest import requires_root
from tests.pveperf_ref import PERL_CMD


def perl_pveperf(fs_root: Path, seconds: float, max_ops: int = 0, durable: bool = False) -> float:
    """FSYNCS/SECOND by pveperf's method on the same filesystem: in fs_root/ptest.PID, which it makes
    and removes as pveperf does (fsyncprobe, given fs_root, measures in fs_root/fsyncprobe-XXXX)."""
    realfs.settle(fs_root)  # the previous run's leftovers committed, a throttle's count of them paid
    out = subprocess.run([*PERL_CMD, str(fs_root), str(seconds), str(max_ops), str(int(durable))],
                         capture_output=True, text=True, check=True)
    assert not list(fs_root.glob("ptest.*")), list(fs_root.glob("ptest.*"))
    return float(out.stdout)


def ours(fs_root: Path, *args: str) -> dict:
    """`fsyncprobe bench` on fs_root, after the same settling as the Perl reference."""
    realfs.settle(fs_root)  # the previous run's leftovers committed, a throttle's count of them paid
    return bench_json(str(fs_root), "--no-sched-probe", "--no-ring-id", *args)


def pveperf_calls(trace: str, max_ops: int = 5) -> list[list[str]]:
    """The system calls strace saw on each of pveperf's tf_N.dat files, in order: one list per
    operation, e.g. ["openat O_WRONLY|O_CREAT|O_TRUNC", "ioctl TCGETS", "lseek", "fstat", "fsync",
    "write 4001", "close"] (fstat: glibc's fstat(fd) is newfstatat(fd, "", AT_EMPTY_PATH))."""
    ops: list[list[str]] = []
    open_fd: dict[str, tuple[str, list[str]]] = {}  # pid -> (fd, calls of the open operation)
    for line in trace.splitlines():
        m = re.match(r"(\d+) +(\w+)\((.*)\) += (-?\d+)", line)
        if not m:
            continue
        pid, call, args, ret = m.groups()
        if call == "openat" and re.search(r'/tf_\d+\.dat"', args):
            given = args.split(", ")[2].split("|")
            flags = "|".join(f for f in ("O_WRONLY", "O_CREAT", "O_TRUNC", "O_DSYNC", "O_SYNC") if f in given)
            open_fd[pid] = (ret, [f"openat {flags}"])
            continue
        if pid not in open_fd or args.split(",")[0] != open_fd[pid][0]:
            continue
        calls = open_fd[pid][1]
        if call == "write":
            calls.append(f"write {ret}")
        elif call == "ioctl":
            calls.append(f"ioctl {args.split(', ')[1]}")
        elif call in ("newfstatat", "fstat", "statx"):
            calls.append("fstat")
        else:
            calls.append(call)
        if call == "close":
            ops.append(calls)
            del open_fd[pid]
    return ops[:max_ops]


STRACE_CALLS = "trace=openat,ioctl,lseek,fstat,newfstatat,statx,write,fsync,fdatasync,close"
PERLIO_OPEN = ["openat O_WRONLY|O_CREAT|O_TRUNC", "ioctl TCGETS", "lseek", "fstat"]
"""Perl's open(TMP, ">file"): the open, then PerlIO's own isatty, tell and fstat."""
PVEPERF_ORDER = [*PERLIO_OPEN, "fsync", "write 4001", "close"]
"""What pve-manager's bin/pveperf does per operation (strace of pveperf with Debian's libfile-sync-perl)."""
DURABLE_ORDER = [*PERLIO_OPEN, "write 4001", "fsync", "close"]


def test_pveperf_workloads_make_pveperfs_system_calls_in_its_order(tmp_path: Path) -> None:
    # The Perl reference first: pveperf's own statements give pveperf's order, the sync before the
    # data (so the reference below is pveperf's method, not a write-then-sync loop).
    traces = {}
    for name, cmd in {
        "perl": [*PERL_CMD, str(tmp_path), "10", "5", "0"],
        "perl-durable": [*PERL_CMD, str(tmp_path), "10", "5", "1"],
        "pveperf": [sys.executable, "-m", "fsyncprobe", "bench", str(tmp_path), "-w", "pveperf", "--ops", "5",
                    "--warmup", "0", "--no-sched-probe", "--no-ring-id", "--json", "--no-progress"],
        "pveperf-durable": [sys.executable, "-m", "fsyncprobe", "bench", str(tmp_path), "-w", "pveperf-durable",
                            "--ops", "5", "--warmup", "0", "--no-sched-probe", "--no-ring-id", "--json",
                            "--no-progress"],
    }.items():
        trace = tmp_path.parent / f"{tmp_path.name}-{name}.strace"
        subprocess.run(["strace", "-f", "-e", STRACE_CALLS, "-o", str(trace), *cmd],
                       capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
        traces[name] = pveperf_calls(trace.read_text())
        trace.unlink()
    assert traces["perl"] == [PVEPERF_ORDER] * 5, traces["perl"]
    assert traces["pveperf"] == traces["perl"]
    assert traces["perl-durable"] == [DURABLE_ORDER] * 5, traces["perl-durable"]
    assert traces["pveperf-durable"] == traces["perl-durable"]
    assert realfs.leftovers(tmp_path) == []


@pytest.mark.parametrize(("sync", "order"), [
    ("fdatasync", [*PERLIO_OPEN, "fdatasync", "write 4001", "close"]),
    ("dsync", ["openat O_WRONLY|O_CREAT|O_TRUNC|O_DSYNC", *PERLIO_OPEN[1:], "write 4001", "close"]),
])
def test_pveperf_sync_choices_keep_its_order_or_say_they_cannot(tmp_path: Path, sync: str, order: list[str]) -> None:
    trace = tmp_path.parent / f"{tmp_path.name}.strace"
    proc = subprocess.run(
        ["strace", "-f", "-e", STRACE_CALLS, "-o", str(trace), sys.executable, "-m",
         "fsyncprobe", "bench", str(tmp_path), "-w", "pveperf", "--sync", sync, "--ops", "3", "--warmup", "0",
         "--no-sched-probe", "--no-ring-id", "--json", "--no-progress"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert pveperf_calls(trace.read_text()) == [order] * 3
    trace.unlink()
    notes = " ".join(json.loads(proc.stdout)["benches"][0]["notes"])
    # fdatasync keeps pveperf's order and says the data is never synced; O_DSYNC cannot (the write
    # is the sync) and says it measures what pveperf-durable does
    assert ("never synced" in notes) == (sync == "fdatasync"), notes
    assert ("what -w pveperf-durable does" in notes) == (sync == "dsync"), notes


def fio_overwrite_iops(fs_root: Path, seconds: int, block_size: str = "4k", size: str = "16m") -> float:
    """fio: sequential 4 KiB rewrites of a laid-out file, fdatasync after each write."""
    with tempfile.TemporaryDirectory(dir=fs_root, prefix="fio-") as d:
        out = subprocess.run(
            ["fio", "--name=ref", f"--directory={d}", "--rw=write", f"--bs={block_size}", f"--size={size}",
             "--ioengine=sync", "--fdatasync=1", "--overwrite=1", "--time_based", f"--runtime={seconds}",
             "--output-format=json"],
            capture_output=True, text=True, check=True,
        )
    return float(json.loads(out.stdout)["jobs"][0]["write"]["iops"])


def rate(report: dict) -> float:
    return float(report["benches"][0]["ops_per_s"])


@requires_root
def test_pveperf_workload_agrees_with_pveperf_method_and_reports_device_writes(ext4: realfs.LoopFs) -> None:
    ratios, mine, theirs = [], [], []
    for i in range(5):  # interleaved, alternating who goes first, so drift on the shared host hits both alike
        if i % 2:
            theirs.append(perl_pveperf(ext4.mountpoint, 2))
        report = ours(ext4.mountpoint, "-d", "2s", "--warmup", "0")  # pveperf has no warm-up
        mine.append(rate(report))
        if not i % 2:
            theirs.append(perl_pveperf(ext4.mountpoint, 2))
        ratios.append(mine[-1] / theirs[-1])
    # Issue 16: within 10 %. Each operation commits through the loop device to the VM's disk, whose
    # speed drifts: single pairs here ranged 0.88-1.04 and the median of 15 pairs was 0.967 (90 %
    # CI 0.929-1.004; bench/compare.py --cases pveperf-fast, docs/performance.md), so the median of
    # five has about 2.5 standard deviations to the bound. Before the workload copied PerlIO's
    # fstat (multigrain timestamps: docs/validation.md) it ran 5-14 % faster than pveperf here.
    assert 0.9 <= statistics.median(ratios) <= 1.1, (mine, theirs)
    bench = report["benches"][0]
    assert bench["fstype"] == "ext4"
    assert bench["params"]["block_size_bytes"] == 4001
    # the loop device under the filesystem really wrote while we measured (each fsync commits the
    # creation or truncation; the data follows by writeback, or ext4's auto_da_alloc at close)
    writes = {d["device"]: d for d in bench["device_writes"]}
    assert ext4.kernel_name in writes, writes
    assert writes[ext4.kernel_name]["write_ops"] >= bench["ops"] * 0.5


@requires_root
def test_overwrite_workload_agrees_with_fio(ext4: realfs.LoopFs) -> None:
    # Interleaved pairs, and the median of the per-pair ratios: the disk's speed drifts (a virtio
    # disk shares its host), and a ratio taken within one pair cancels the drift.
    ratios, ours, theirs = [], [], []
    for _ in range(4):
        report = bench_json(
            str(ext4.mountpoint), "-w", "overwrite", "-b", "4k", "--file-size", "16m", "--sync", "fdatasync",
            "-d", "2s", "--warmup", "0.3s", "--no-sched-probe",
        )
        ours.append(rate(report))
        theirs.append(fio_overwrite_iops(ext4.mountpoint, 2))
        ratios.append(ours[-1] / theirs[-1])
    assert 0.7 < statistics.median(ratios) < 1.4, (ours, theirs)


@requires_root
def test_throttled_disk_comes_out_under_its_iops_limit_and_far_below_the_unthrottled_one(
    ext4: realfs.LoopFs, slow_ext4: realfs.LoopFs
) -> None:
    # pveperf-durable: each operation's data write waits for the 50-IOPS throttle
    slow = ours(slow_ext4.mountpoint, "-w", "pveperf-durable", "-d", "3s", "--warmup", "0.5s")
    slow_ref = perl_pveperf(slow_ext4.mountpoint, 3, durable=True)
    fast = ours(ext4.mountpoint, "-w", "pveperf-durable", "-d", "2s", "--warmup", "0.5s")
    assert rate(slow) < 50  # 50 write IOPS cannot give 50 fsyncs/s: each fsync costs >= 1 write
    assert slow_ref < 50
    # the reference has no warm-up: its first operation also pays the throttle's first wait (up to
    # a few seconds here), hence the wider bound than for pveperf's own order below
    assert 0.7 < rate(slow) / slow_ref < 1.4, (rate(slow), slow_ref)
    assert rate(fast) > 10 * rate(slow)
    assert slow["benches"][0]["latency"]["p50_ns"] > 10 * fast["benches"][0]["latency"]["p50_ns"]
    # pveperf's own order on the same disk against pveperf's own loop, both for pveperf's 3 s. Here
    # each run ends in one stall of about 46 s: the throttle let the journal's writes through but
    # counted them, the 4 MiB journal fills after about 317 operations, and a close then waits for
    # journal space whose checkpoint writes the throttle holds until that count is paid
    # (docs/validation.md). So each figure is about 317 operations over 48 s, set by how much each
    # commit journals: with the same calls the two agree within 0.5 % (bench/compare.py --cases
    # pveperf: 1.000-1.004 over 9 pairs); without PerlIO's fstat fsyncprobe journaled less and ran
    # 3 % fast. One pair, about 100 s; realfs.settle before each run pays the previous one's count.
    mine = rate(ours(slow_ext4.mountpoint, "-w", "pveperf", "-d", "3s", "--warmup", "0"))
    theirs = perl_pveperf(slow_ext4.mountpoint, 3)
    assert 0.95 <= mine / theirs <= 1.05, (mine, theirs)


@requires_root
def test_tmpfs_says_fsync_is_a_noop_there(ramfs: Path) -> None:
    report = bench_json(str(ramfs), "-w", "overwrite", "--ops", "2000", "--warmup", "0", "--no-sched-probe")
    bench = report["benches"][0]
    assert bench["fstype"] == "tmpfs"
    assert bench["ops"] == 2000
    assert any("no-op" in n and "says nothing about a disk" in n for n in bench["notes"])


def test_json_carries_schema_version_and_every_parameter(tmp_path: Path) -> None:
    report = bench_json(
        str(tmp_path), "-w", "append", "-b", "2300", "--file-size", "1m", "--sync", "fdatasync",
        "--ops", "50", "--warmup", "0", "--stall-threshold", "250ms", "--no-sched-probe",
    )
    assert report["schema_version"] == 1
    params = report["benches"][0]["params"]
    assert params == {
        "path": str(tmp_path), "workload": "append", "sync": "fdatasync", "block_size_bytes": 2300,
        "file_size_bytes": 1 << 20, "duration_ns": None, "ops_limit": 50, "warmup_ns": 0,
        "stall_threshold_ns": 250_000_000, "label": None, "background_write": None, "rate_per_s": None,
    }
    assert report["benches"][0]["pacing"] is None
    bench = report["benches"][0]
    assert bench["ops"] == 50 and bench["latency"]["count"] == 50
    assert sum(s["ops"] for s in bench["timeline"]) == 50
    assert bench["latency"]["p50_ns"] <= bench["latency"]["p99_ns"] <= bench["latency"]["max_ns"]
    assert realfs.leftovers(tmp_path) == []


@pytest.mark.parametrize("workload", ["pveperf", "pveperf-durable", "overwrite", "append", "sqlite"])
@pytest.mark.parametrize("sync", ["fsync", "dsync"])
def test_every_workload_runs_and_leaves_nothing(tmp_path: Path, workload: str, sync: str) -> None:
    report = bench_json(str(tmp_path), "-w", workload, "--sync", sync, "--file-size", "256k",
                        "--ops", "30", "--warmup", "0", "--no-sched-probe")
    assert report["benches"][0]["ops"] == 30
    assert realfs.leftovers(tmp_path) == []


def _wait_for_tempdir(path: Path, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if realfs.leftovers(path):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the tool never made its temp dir")


def _wait_for_files(path: Path, proc: subprocess.Popen[str], count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dirs = realfs.leftovers(path)
        try:
            if dirs and len(os.listdir(path / dirs[0])) >= count:
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"the tool never made its {count} files")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("phase", ["warmup", "measure"])
def test_signals_leave_nothing_behind_and_mark_results_partial(tmp_path: Path, signum: int, phase: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    warmup = "30s" if phase == "warmup" else "0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsyncprobe", "bench", str(target), "-d", "60s", "--warmup", warmup,
         "--json", "--no-sched-probe"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _wait_for_tempdir(target, proc)
    if phase == "measure":
        # On a loaded machine, creating pveperf's 300 files can outlast a fixed sleep; a signal
        # before measuring starts rightly gives no report, so wait until they all exist.
        _wait_for_files(target, proc, 300)
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert realfs.leftovers(target) == []
    assert os.listdir(target) == []
    if phase == "measure":
        report = json.loads(out)
        bench = report["benches"][0]
        assert bench["partial"] is True
        assert signal.Signals(signum).name in bench["partial_reason"]
        assert bench["ops"] > 0
        assert any("partial" in w for w in report["warnings"])
    else:
        assert out == ""  # nothing was measured, so no report pretends otherwise
