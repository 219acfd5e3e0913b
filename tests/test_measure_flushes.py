"""Flush counting on a real loop ext4 (issue 13): a loop device forwards flushes (drivers/block/loop.c
turns REQ_OP_FLUSH into vfs_fsync of its backing file), so `bench --sync fdatasync` must report one
flush per sync on it; with its queue/write_cache set to write through the block layer sends it none
(block/blk-core.c submit_bio_noacct), and the report and the verdict must say what that means."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import realfs
from tests.cli_helpers import fsyncprobe

pytestmark = pytest.mark.skipif(not realfs.is_root(), reason="needs root for loop devices and mounts")

OPS = 500


@contextlib.contextmanager
def write_cache(fs: realfs.LoopFs, mode: str) -> Iterator[None]:
    """Set the loop device's queue/write_cache (only the one this test made) and restore it."""
    attr = Path(f"/sys/block/{fs.kernel_name}/queue/write_cache")
    before = attr.read_text().strip()
    attr.write_text(mode)
    try:
        assert attr.read_text().strip() == mode
        yield
    finally:
        attr.write_text(before)


def _bench(fs: realfs.LoopFs) -> dict:
    proc = fsyncprobe("bench", str(fs.mountpoint), "--workload", "overwrite", "--sync", "fdatasync",
                      "--ops", str(OPS), "--warmup", "200ms", "--no-sched-probe", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _loop_writes(report: dict, fs: realfs.LoopFs) -> dict:
    (b,) = report["benches"]
    (d,) = [d for d in b["device_writes"] if d["device"] == fs.kernel_name]
    return d


def test_fdatasync_on_a_loop_ext4_makes_one_flush_per_sync(ext4: realfs.LoopFs) -> None:
    report = _bench(ext4)
    d = _loop_writes(report, ext4)
    assert d["write_cache"] == "write back"
    assert d["flush_ops"] == pytest.approx(OPS, rel=0.10), d
    assert d["flush_time_ns"] is not None and d["flush_time_ns"] >= 0
    md = fsyncprobe("bench", str(ext4.mountpoint), "--workload", "overwrite", "--sync", "fdatasync",
                    "--ops", str(OPS), "--warmup", "200ms", "--no-sched-probe", "--quiet", "--format", "markdown")
    assert md.returncode == 0, md.stderr
    row = next(line for line in md.stdout.splitlines() if f"device {ext4.kernel_name}" in line)
    assert "flushes (1.0" in row or "flushes (0.9" in row or "flushes (1.1" in row, row
    assert "per sync), mean" in row, row


def test_write_through_loop_gets_no_flushes_and_the_verdict_says_what_that_means(ext4: realfs.LoopFs) -> None:
    with write_cache(ext4, "write through"):
        report = _bench(ext4)
        d = _loop_writes(report, ext4)
        assert d["write_cache"] == "write through"
        assert d["flush_ops"] == 0, d
        (b,) = report["benches"]
        assert any(f"no flushes to {ext4.kernel_name}" in n and "write through" in n for n in b["notes"]), b["notes"]
        verdict = fsyncprobe("verdict", str(ext4.mountpoint), "--profile", "etcd", "--duration", "1s",
                             "--warmup", "200ms", "--no-sched-probe", "--no-corosync-conf", "--json", "--quiet",
                             timeout=300)
    assert verdict.returncode in (0, 1), verdict.stderr
    findings = json.loads(verdict.stdout)["verdict"]["findings"]
    (f,) = [f for f in findings if f["rule"] == "flushes-write-through"]
    assert f["level"] == "warn"
    assert ext4.kernel_name in f["title"] and "write through" in f["title"]
    assert "not durable" in f["reason"]
    assert not [f for f in findings if f["rule"] == "flushes-per-sync"]
