"""corosync's ring-id write measured beside the workloads (fsyncprobe/measure/ringid.py), on real
filesystems: the probe makes exactly corosync_ring_id_store's calls (exec/main.c: creat, an
8-byte write, close; checked with strace), its write latency rises on a blkio-throttled loop
ext4 against an unthrottled one and the `ring-id-write` finding appears there, and where the
state dir comes from (corosync.conf's `system.state_dir`, `--state-dir`, `--no-ring-id`).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsyncprobe import pipeline
from fsyncprobe.cli import main
from fsyncprobe.measure import ringid
from fsyncprobe.measure.types import BenchParams, SyncMethod, Workload
from fsyncprobe.report.types import Report
from fsyncprobe.verdict.types import Level
from tests import realfs
from tests.conftest import requires_root

THROTTLE_IOPS = 5
"""Write IOPS of the slow disk: a busy USB stick. At 5 IOPS the pveperf-durable workload's journal commits
keep ext4's journal busy long enough that the probe's close (auto_da_alloc's flush needs a journal
handle) and its creat (the truncate waits for the last write's writeback) block for seconds
(docs/validation.md, "The ring-id write")."""


def _verdict(fs: realfs.LoopFs) -> Report:
    # token 1000 ms, 3 nodes: T = 1650 ms, token bound about 1.35 s (so a multi-second write FAILs)
    return pipeline.verdict(
        str(fs.mountpoint), "pmxcfs", duration_ns=5_000_000_000, warmup_ns=0,
        ring=pipeline.RingOptions(token_ms=1000, read_conf=False),
        ring_id=pipeline.RingIdOptions(state_dir=str(fs.mountpoint)),
    )


def _ring_id(report: Report) -> tuple[int, int]:
    """(writes measured, slowest write in ns) over the report's benches."""
    runs = [b.ring_id_store for b in report.benches]
    assert all(r is not None for r in runs)
    return sum(r.latency.count for r in runs if r), max(r.latency.max_ns for r in runs if r)


@requires_root
def test_ring_id_write_rises_on_a_throttled_disk_and_the_finding_appears(tmp_path: Path) -> None:
    with realfs.loop_ext4(tmp_path, name="fast") as fast:
        calm = _verdict(fast)
        left_fast = realfs.leftovers(fast.mountpoint)
    with realfs.loop_ext4(tmp_path, name="slow") as slow, realfs.write_iops_limit(slow, THROTTLE_IOPS):
        slowed = _verdict(slow)
        left_slow = realfs.leftovers(slow.mountpoint)
    assert left_fast == [] and left_slow == []
    n_fast, max_fast = _ring_id(calm)
    n_slow, max_slow = _ring_id(slowed)
    # about 4 writes a second beside 3 x 5 s of workloads
    assert n_fast >= 30 and n_slow >= 20
    # On the slow disk one sync holds a quiet window open for seconds (windows switch between
    # operations): the probes are resumed meanwhile, so the scheduling delay and the ring-id write
    # are measured while syncs block, which is when corosync suffers.
    assert all(b.sched_probe is not None and b.sched_probe.lateness.count > 0 for b in slowed.benches)
    assert sum(b.probe_windows.overruns for b in slowed.benches if b.probe_windows) > 0
    for r in (calm, slowed):
        ri = r.benches[0].ring_id_store
        assert ri is not None and ri.same_filesystem and ri.state_dir_source == "given (--state-dir)"
    assert max_slow >= 500_000_000, max_slow  # seconds on the throttled disk (2.8-3.5 s here)
    assert max_slow >= 20 * max_fast, (max_slow, max_fast)

    def finding(r: Report) -> Level:
        assert r.verdict is not None and r.model is not None and r.model.ring_id_store is not None
        found = [f for f in r.verdict.findings if f.rule == "ring-id-write"]
        assert len(found) == 1 and str(found[0].value) and "corosync_ring_id_store" in found[0].reason
        return found[0].level

    assert finding(calm) is Level.PASS
    assert finding(slowed) is not Level.PASS
    m = slowed.model
    assert m is not None and m.ring_id_store is not None
    assert m.ring_id_store.tolerance_bound_by == "token"
    assert m.ring_id_store.change_probability_high > 0


@requires_root
def test_the_probe_makes_corosyncs_calls_and_nothing_else(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir()
    trace = tmp_path / "trace"
    # Run the probe process itself under strace for a second, a write every 100 ms.
    proc = subprocess.Popen(
        ["strace", "-f", "-e", "trace=openat,write,close,fsync,fdatasync,sync_file_range", "-o", str(trace),
         sys.executable, "-m", "fsyncprobe.measure.ringid", str(d), "10"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None and proc.stdin is not None
    assert b"ready" in proc.stdout.readline()
    time.sleep(1.2)
    proc.stdin.close()
    assert proc.stdout.readline()  # the result
    proc.wait(timeout=10)
    lines = trace.read_text().splitlines()
    ring = [ln for ln in lines if "ringid_" in ln and "openat(" in ln]
    assert len(ring) >= ringid.ROTATING_FILES + 5
    for ln in ring:
        assert "O_WRONLY|O_CREAT|O_TRUNC" in ln and "0600" in ln, ln
    # after the files are made: each measured open is followed by one 8-byte write and a close of that fd
    body = "\n".join(lines)
    fds = re.findall(r'openat\(AT_FDCWD, "[^"]*ringid_\d+", [^)]*\) = (\d+)', body)
    for fd in set(fds):
        assert re.search(rf"write\({fd}, .*, 8\) += 8", body), fd
        assert re.search(rf"close\({fd}\) += 0", body), fd
    assert "fsync(" not in body and "fdatasync(" not in body and "sync_file_range(" not in body


def test_state_dir_from_corosync_conf_else_the_default_else_the_path(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text("totem {\n  version: 2\n}\nsystem {\n  state_dir: /srv/corosync\n}\n")
    t = pipeline.ring_id_target(pipeline.RingIdOptions(), "/x", str(conf))
    assert t == ringid.RingIdTarget("/srv/corosync", f"system.state_dir in {conf}")
    given = pipeline.ring_id_target(pipeline.RingIdOptions(state_dir="/y"), "/x", str(conf))
    assert given is not None and given.state_dir == "/y" and "--state-dir" in given.source
    assert pipeline.ring_id_target(pipeline.RingIdOptions(enabled=False), "/x", str(conf)) is None
    fallback = pipeline.ring_id_target(pipeline.RingIdOptions(), "/x", read_conf=False)
    assert fallback is not None
    if Path(pipeline.COROSYNC_STATE_DIR).is_dir():
        assert fallback.state_dir == pipeline.COROSYNC_STATE_DIR and "default" in fallback.source
    else:
        assert fallback.state_dir == "/x" and "measured path" in fallback.source


def test_no_ring_id_and_a_missing_state_dir(tmp_path: Path) -> None:
    params = BenchParams(path=str(tmp_path), workload=Workload.OVERWRITE, sync=SyncMethod.FDATASYNC,
                         block_size_bytes=4096, file_size_bytes=1 << 20, duration_ns=300_000_000, ops_limit=None,
                         warmup_ns=0, stall_threshold_ns=100_000_000)
    off = pipeline.bench(params, sched_probe=False, ring_id=pipeline.RingIdOptions(enabled=False))
    assert off.benches[0].ring_id_store is None
    missing = pipeline.bench(params, sched_probe=False,
                             ring_id=pipeline.RingIdOptions(state_dir=str(tmp_path / "nope")))
    b = missing.benches[0]
    assert b.ring_id_store is None and b.ops > 0
    assert any("ring-id write not measured" in n and "nope" in n for n in b.notes)
    # The ring-id write runs in the probe windows only (fsyncprobe.measure.windows): the run needs
    # one, so longer than a quiet window.
    longer = dataclasses.replace(params, duration_ns=1_200_000_000)
    on = pipeline.bench(longer, sched_probe=False, ring_id=pipeline.RingIdOptions(state_dir=str(tmp_path)))
    ri = on.benches[0].ring_id_store
    assert ri is not None and ri.latency.count >= 1 and ri.state_dir == str(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("args", [["--state-dir", "/tmp", "--no-ring-id"]])
def test_state_dir_conflicts_with_no_ring_id(args: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["bench", str(tmp_path), *args])
    assert res.exit_code == 2 and "--state-dir conflicts with --no-ring-id" in res.output
