"""The scheduling-stall probe (fsyncprobe.measure.schedprobe): a SCHED_RR, mlocked sleeper process.

What it must show: that it measures a stall of its own process (as corosync would suffer one),
that it gets real-time priority as root, and how its wake-up delays compare on an idle machine
and beside a sync workload on a blkio-throttled loop disk. On this project's test VM the throttled
disk did NOT delay the real-time probe measurably (docs/validation.md, "The stall probe on a
throttled disk"): a task blocked on I/O does not keep a real-time task off the CPU. The test
records both distributions and asserts that the probe was not starved, which is the claim docs/validation.md makes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fsyncprobe.measure.schedprobe import SchedProbe
from fsyncprobe.measure.types import SchedProbeResult
from tests import realfs

MS = 1_000_000


def _probe(seconds: float, during: object = None) -> SchedProbeResult:
    with SchedProbe() as p:
        p.start()
        if callable(during):
            during(p)
        else:
            time.sleep(seconds)
        r = p.stop()
    assert r is not None
    return r


def test_a_stopped_probe_measures_its_own_stall() -> None:
    stall_s = 0.3

    def stop_once(p: SchedProbe) -> None:
        time.sleep(0.3)
        assert p.pid is not None
        os.kill(p.pid, signal.SIGSTOP)
        time.sleep(stall_s)
        os.kill(p.pid, signal.SIGCONT)
        time.sleep(0.3)

    r = _probe(0, stop_once)
    assert r.lateness.max_ns >= 0.9 * stall_s * 1e9 - r.interval_ns
    assert r.lateness.max_ns < (stall_s + 0.2) * 1e9
    assert r.lateness.p50_ns < 20 * MS  # one stall, not a slow probe


@pytest.mark.skipif(not realfs.is_root(), reason="SCHED_RR needs root (CAP_SYS_NICE)")
def test_probe_runs_at_realtime_priority_as_root() -> None:
    r = _probe(0.5)
    assert r.policy == "SCHED_RR"
    assert r.priority == os.sched_get_priority_max(os.SCHED_RR)
    assert r.note is None
    assert r.lateness.count > 100


def _sync_load(directory: Path, stop: threading.Event, counts: list[int], threads: int = 4) -> list[threading.Thread]:
    def writer(i: int) -> None:
        fd = os.open(directory / f"load{i}", os.O_CREAT | os.O_WRONLY, 0o600)
        buf = os.urandom(1 << 20)
        try:
            while not stop.is_set():
                os.pwrite(fd, buf, 0)
                os.fsync(fd)
                counts[i] += 1
        finally:
            os.close(fd)

    ts = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    return ts


@pytest.mark.slow
def test_throttled_disk_under_sync_load_vs_idle(slow_ext4: realfs.LoopFs) -> None:
    idle = _probe(2.5)
    stop = threading.Event()
    counts = [0] * 4
    t0 = time.monotonic()
    ts = _sync_load(slow_ext4.mountpoint, stop, counts)
    try:
        loaded = _probe(2.5)
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=30)
    elapsed = time.monotonic() - t0
    rows = [("idle", idle), ("4 x 1 MiB write+fsync, 50 IOPS throttle", loaded)]  # 2.5 s each
    print("\nscheduling lateness of the SCHED_RR probe (2 ms sleeps):")
    for name, r in rows:
        lat = r.lateness
        print(f"  {name:42s} n={lat.count:5d} p50={lat.p50_ns / 1e3:7.0f} us p99={lat.p99_ns / 1e3:7.0f} us "
              f"p99.9={lat.p999_ns / 1e3:7.0f} us max={lat.max_ns / 1e3:7.0f} us")
    print(f"  sync load: {sum(counts)} fsyncs in {elapsed:.1f} s")
    # The load was real: the throttled disk made each 1 MiB fsync slow (256 4 KiB writes at 50 IOPS
    # would take seconds; ext4 merges them, but far fewer than an unthrottled loop device's hundreds).
    assert sum(counts) > 0
    assert sum(counts) / elapsed < 50
    for _, r in rows:
        assert r.lateness.count > 600
        # The claim docs/validation.md makes: a real-time task is not kept off the CPU by tasks blocked on
        # a slow disk; its wake-up delays stay far below anything corosync would notice.
        assert r.lateness.p99_ns < 50 * MS
