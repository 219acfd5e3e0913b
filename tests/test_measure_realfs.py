"""`fsyncprobe bench` on real filesystems made by the tests, checked against independent tools.

References: pveperf's own method (the fsync loop of pve-manager's bin/pveperf, re-run in Perl
with core modules: IO::Handle's sync is fsync(2)) and fio with the same parameters.
"""

from __future__ import annotations

import json
import os
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

# pveperf's test_fsync, same method: open '>' (truncate) one of 300 rotating files, print 4,001
# bytes, fsync, close; count / elapsed after the time is up.
PERL_PVEPERF = r"""
use IO::Handle; use Time::HiRes qw(gettimeofday tv_interval);
my ($dir, $secs) = @ARGV; my $data = ('A' x 4000) . "\n";
my $t0 = [gettimeofday]; my ($count, $el);
for ($count = 1;; $count++) {
    my $m = $count % 300;
    open(my $fh, '>', "$dir/tf_$m.dat") or die "open: $!";
    print $fh $data; $fh->flush; $fh->sync or die "sync: $!"; close $fh;
    $el = tv_interval($t0); last if $el > $secs;
}
printf "%.3f\n", $count / $el;
"""


def perl_pveperf(fs_root: Path, seconds: float) -> float:
    """FSYNCS/SECOND by pveperf's method, in a private directory on the same filesystem."""
    with tempfile.TemporaryDirectory(dir=fs_root, prefix="ref-") as d:
        out = subprocess.run(["perl", "-e", PERL_PVEPERF, d, str(seconds)], capture_output=True, text=True, check=True)
    return float(out.stdout)


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
    ours, theirs = [], []
    for _ in range(3):  # interleaved, so drift on the shared host hits both alike
        report = bench_json(str(ext4.mountpoint), "-d", "2s", "--warmup", "0.5s", "--no-sched-probe")
        ours.append(rate(report))
        theirs.append(perl_pveperf(ext4.mountpoint, 2))
    ratio = statistics.median(ours) / statistics.median(theirs)
    assert 0.7 < ratio < 1.4, (ours, theirs)
    bench = report["benches"][0]
    assert bench["fstype"] == "ext4"
    assert bench["params"]["block_size_bytes"] == 4001
    # the loop device under the filesystem really wrote while we measured
    writes = {d["device"]: d for d in bench["device_writes"]}
    assert ext4.kernel_name in writes, writes
    assert writes[ext4.kernel_name]["write_bytes"] >= bench["ops"] * 4001 * 0.5


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
    slow = bench_json(str(slow_ext4.mountpoint), "-d", "3s", "--warmup", "0.5s", "--no-sched-probe")
    slow_ref = perl_pveperf(slow_ext4.mountpoint, 3)
    fast = bench_json(str(ext4.mountpoint), "-d", "2s", "--warmup", "0.5s", "--no-sched-probe")
    assert rate(slow) < 50  # 50 write IOPS cannot give 50 fsyncs/s: each fsync costs >= 1 write
    assert slow_ref < 50
    assert 0.7 < rate(slow) / slow_ref < 1.4, (rate(slow), slow_ref)
    assert rate(fast) > 10 * rate(slow)
    assert slow["benches"][0]["latency"]["p50_ns"] > 10 * fast["benches"][0]["latency"]["p50_ns"]


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
        "stall_threshold_ns": 250_000_000,
    }
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
