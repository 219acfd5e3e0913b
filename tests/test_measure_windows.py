"""Quiet and probe windows (issue 16, fsyncprobe.measure.windows): the scheduling probe's wake-ups
must not reach the headline sync figures.

What it must show: which samples go where (pure: a scripted clock and a recording switch); that a
paused probe takes no sample and does not run, and that no probe sample spans a pause (a real probe
process); and, in a real run on a real ext4, that every operation in the headline figures was done
while the probe was stopped, by the probe's own clock readings, while the probe's delay distribution
still has samples and reaches the ring model.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from array import array
from pathlib import Path

import pytest

from fsyncprobe import pipeline
from fsyncprobe.measure.schedprobe import SchedProbe
from fsyncprobe.measure.types import BenchParams, SyncMethod, TimelineSecond, Window, WindowKind, Workload
from fsyncprobe.measure.windows import WindowedRecorder, WindowPlan, quiet_ns_by_second
from fsyncprobe.render import rows
from fsyncprobe.ring.inputs import node_from_benches
from tests import factories, realfs

MS = 1_000_000
Q, P = WindowKind.QUIET, WindowKind.PROBE


class Clock:
    """A monotonic clock the test sets."""

    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now


class Switch:
    """Records the calls; `pause` takes `pause_ns` of the clock, as the real probe's answer does."""

    def __init__(self, clock: Clock, pause_ns: int = 0, dies_at: int | None = None) -> None:
        self.clock = clock
        self.pause_ns = pause_ns
        self.dies_at = dies_at
        self.calls: list[tuple[str, int]] = []

    def pause(self) -> tuple[int, int]:
        if self.dies_at is not None and len(self.calls) >= self.dies_at:
            raise OSError("the scheduling probe exited early")
        self.calls.append(("pause", self.clock.now))
        started = self.clock.now - 150 * MS
        self.clock.now += self.pause_ns
        return started, self.clock.now - 1

    def resume(self) -> None:
        self.calls.append(("resume", self.clock.now))


def _recorder(pause_ns: int = 0, dies_at: int | None = None) -> tuple[WindowedRecorder, Clock, Switch]:
    clock = Clock()
    switch = Switch(clock, pause_ns, dies_at)
    rec = WindowedRecorder(10 * MS, switch, WindowPlan(quiet_ns=800 * MS, probe_ns=200 * MS), clock=clock)
    rec.start_ns = rec.end_ns = clock.now
    return rec, clock, switch


def _fold_at(rec: WindowedRecorder, clock: Clock, at_ms: int, latencies_us: list[int]) -> None:
    """A fold `at_ms` after the start, of a batch taken since the last one (as run_phase does)."""
    clock.now = rec.start_ns + at_ms * MS
    rec.fold(array("q", [v * 1000 for v in latencies_us]), 0, at_ms // 1000)


def test_plan_alternates_quiet_first() -> None:
    plan = WindowPlan(quiet_ns=800 * MS, probe_ns=200 * MS)
    kinds = [plan.kind_at(t * 100 * MS) for t in range(21)]
    assert kinds == [Q] * 8 + [P] * 2 + [Q] * 8 + [P] * 2 + [Q]


def test_samples_go_to_the_window_they_were_taken_in() -> None:
    rec, clock, switch = _recorder(pause_ns=2 * MS)
    for t in range(1, 9):  # 100..800 ms: quiet; the fold at 800 ms ends the quiet window
        _fold_at(rec, clock, t * 100, [100, 110])
    assert switch.calls == [("resume", rec.start_ns + 800 * MS)]
    _fold_at(rec, clock, 900, [999])  # taken beside the probe
    _fold_at(rec, clock, 1000, [888, 777])  # still beside it; then the switch back to quiet
    assert switch.calls[-1] == ("pause", rec.start_ns + 1000 * MS)
    _fold_at(rec, clock, 1100, [120])
    rec.close(1150 * MS)
    # Headline: only what was folded in quiet windows; beside: only the probe window's batches.
    assert rec.ops == 17 and rec.hist.max_value < 200_000
    assert rec.beside.ops == 3 and rec.beside.hist.min_value > 700_000
    w = rec.windows
    assert [x.kind for x in w] == [Q, P, Q]
    assert [x.ops for x in w] == [16, 3, 1]
    assert (w[0].start_ns, w[0].end_ns) == (0, 800 * MS)
    assert (w[1].start_ns, w[1].end_ns) == (800 * MS, 1000 * MS)
    # The pause took 2 ms: counted in neither window; the quiet window starts once the probe stopped.
    assert w[2].start_ns == 1002 * MS and w[2].end_ns == 1150 * MS
    assert rec.switch_ns == 2 * MS
    assert w[1].probe_from_ns == 850 * MS and w[1].probe_to_ns == 1002 * MS - 1
    assert rec.quiet_ns() == 800 * MS + 148 * MS
    s = rec.summary()
    assert (s.quiet_windows, s.probe_windows, s.beside_probe_ops, s.run_ns) == (2, 1, 3, 1150 * MS)
    assert s.beside_probe_ops_per_s == pytest.approx(3 / 0.2)
    timeline = rec.quiet_timeline()
    assert [(x.second, x.ops, x.measured_ns) for x in timeline] == [(0, 16, 800 * MS), (1, 1, 148 * MS)]


def test_a_switch_at_the_deadline_is_not_part_of_the_run() -> None:
    rec, clock, switch = _recorder(pause_ns=3 * MS)
    for t in (400, 800, 900):
        _fold_at(rec, clock, t, [100])
    _fold_at(rec, clock, 1001, [100])  # the last fold, just after the deadline, pauses the probe
    rec.close(1000 * MS)
    assert [c for c, _ in switch.calls] == ["resume", "pause"]
    assert [x.kind for x in rec.windows] == [Q, P]
    assert rec.switch_ns == 0
    assert rec.windows[-1].end_ns == 1000 * MS


def test_a_probe_that_dies_leaves_the_rest_quiet() -> None:
    rec, clock, switch = _recorder(dies_at=1)
    for t in (800, 900, 1000, 1500, 2000):
        _fold_at(rec, clock, t, [100])
    rec.close(2000 * MS)
    assert [c for c, _ in switch.calls] == ["resume"]  # the pause found it dead
    assert rec.switch is None and rec.note is not None and "stopped answering" in rec.note
    assert [x.kind for x in rec.windows] == [Q, P, Q]
    assert rec.windows[-1].ops == 2  # after the probe died, nothing of ours ran: quiet


def test_quiet_time_is_split_at_second_boundaries() -> None:
    ws = [Window(Q, 0, 800 * MS, 1), Window(P, 800 * MS, 1000 * MS, 1), Window(Q, 1000 * MS, 1800 * MS, 1),
          Window(P, 1800 * MS, 2010 * MS, 1), Window(Q, 2010 * MS, 2900 * MS, 1), Window(Q, 900 * MS, 1100 * MS, 1)]
    assert quiet_ns_by_second(ws) == {0: 900 * MS, 1: 900 * MS, 2: 890 * MS}


def _context_switches(pid: int) -> int:
    """Times any thread of `pid` went off a CPU (proc(5): voluntary + nonvoluntary_ctxt_switches):
    a process that sets no timer and gets no input does not run, and this does not grow."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
    return total


def test_a_paused_probe_does_not_run_and_no_sample_spans_a_pause() -> None:
    pause_s = 0.4
    with SchedProbe(start_paused=True) as p:
        p.start()
        assert p.pid is not None
        time.sleep(0.05)
        idle_before = _context_switches(p.pid)
        time.sleep(pause_s)  # started paused: no timer, no wake-up
        idle_after = _context_switches(p.pid)
        p.resume()
        running_before = _context_switches(p.pid)
        time.sleep(0.2)
        running_after = _context_switches(p.pid)
        from_ns, to_ns = p.pause()
        time.sleep(0.02)
        paused_before = _context_switches(p.pid)
        time.sleep(pause_s)
        paused_after = _context_switches(p.pid)
        p.resume()
        time.sleep(0.2)
        r = p.stop()
    assert r is not None
    assert running_after - running_before > 50  # a 2 ms sleeper, running: about 100 in 0.2 s
    assert idle_after - idle_before <= 1 and paused_after - paused_before <= 1
    assert 0.15e9 < to_ns - from_ns < 0.35e9
    assert r.windows == 2
    # About 100 samples a window; none as late as a pause (the first after a resume starts afresh).
    assert r.lateness.count > 50
    assert r.lateness.max_ns < pause_s * 1e9 / 2
    assert 0.3e9 < r.duration_ns < 0.7e9  # the two windows, not the pauses


def test_headline_samples_were_taken_while_the_probe_was_stopped(ext4: realfs.LoopFs) -> None:
    params = BenchParams(path=str(ext4.mountpoint), workload=Workload.OVERWRITE, sync=SyncMethod.FDATASYNC,
                         block_size_bytes=4096, file_size_bytes=1 << 20, duration_ns=2_300_000_000,
                         ops_limit=None, warmup_ns=0, stall_threshold_ns=100 * MS)
    b = pipeline.bench(params, sched_probe=True, ring_id=pipeline.RingIdOptions(enabled=False)).benches[0]
    w, sp = b.probe_windows, b.sched_probe
    assert w is not None and sp is not None
    quiet = [x for x in w.windows if x.kind is WindowKind.QUIET]
    probe = [x for x in w.windows if x.kind is WindowKind.PROBE]
    assert len(quiet) == 3 and len(probe) == 2
    # The probe's own clock readings: when it sampled. No quiet window overlaps any of it.
    active = [(x.probe_from_ns, x.probe_to_ns) for x in probe]
    assert all(a is not None and z is not None for a, z in active)
    for q in quiet:
        for a, z in active:
            assert a is not None and z is not None
            assert z < q.start_ns or a > q.end_ns, (q, a, z)
    # The headline figures are exactly the quiet windows' operations; the rest is kept apart.
    assert b.ops == sum(x.ops for x in quiet) == b.latency.count > 0
    assert w.beside_probe_ops == sum(x.ops for x in probe) == w.beside_probe_latency.count > 0
    assert b.elapsed_ns == w.quiet_ns == sum(x.end_ns - x.start_ns for x in quiet)
    assert w.run_ns == w.quiet_ns + w.probe_ns + w.switch_ns >= 2_300_000_000
    assert b.ops_per_s == pytest.approx(b.ops * 1e9 / b.elapsed_ns)
    assert sum(s.ops for s in b.timeline) == b.ops
    assert sum(s.measured_ns or 0 for s in b.timeline) == pytest.approx(w.quiet_ns, abs=1000)
    # The probe's delay distribution has samples, over the probe windows' time only.
    assert sp.windows == 2 and sp.lateness.count > 50
    assert sp.duration_ns == pytest.approx(sum(z - a for a, z in active if a is not None and z is not None), rel=0.01)
    assert sp.duration_ns < 0.6e9
    node = node_from_benches("n1", [b])
    assert node.stall_histogram is not None and node.stall_measured_ns == sp.duration_ns
    assert node.measured_ns == b.elapsed_ns


def test_no_sched_probe_has_no_windows(tmp_path: Path) -> None:
    params = BenchParams(path=str(tmp_path), workload=Workload.OVERWRITE, sync=SyncMethod.FDATASYNC,
                         block_size_bytes=4096, file_size_bytes=1 << 20, duration_ns=300 * MS, ops_limit=None,
                         warmup_ns=0, stall_threshold_ns=100 * MS)
    b = pipeline.bench(params, sched_probe=False, ring_id=pipeline.RingIdOptions(enabled=False)).benches[0]
    assert b.probe_windows is None and b.sched_probe is None
    assert all(s.measured_ns is None for s in b.timeline)


def test_sparkline_draws_each_seconds_quiet_rate() -> None:
    # A second with half its time quiet and half the operations has the same rate as a full one.
    seconds = (TimelineSecond(0, 800, 1, 800 * MS), TimelineSecond(1, 400, 1, 400 * MS),
               TimelineSecond(2, 200, 1, 800 * MS))
    rec = _recorder()[0]
    rec.close(3_050 * MS)
    # The figures cover 2 s of quiet time, but the run had three whole seconds: all three are drawn.
    b = dataclasses.replace(factories.bench(seconds=3.0), timeline=seconds, elapsed_ns=2_000 * MS,
                            probe_windows=rec.summary())
    assert rows.timeline_line(b) == "██▂"


def test_a_probe_that_does_not_answer_is_given_up_on_and_still_reports() -> None:
    with SchedProbe(start_paused=True, pause_timeout_s=0.3) as p:
        p.start()
        assert p.pid is not None
        p.resume()
        time.sleep(0.1)
        os.kill(p.pid, signal.SIGSTOP)  # kept off the CPU longer than the pause may take
        t0 = time.monotonic()
        try:
            with pytest.raises(OSError, match="did not answer"):
                p.pause()
            assert time.monotonic() - t0 < 2
        finally:
            os.kill(p.pid, signal.SIGCONT)
        r = p.stop()  # its late answer to the pause is skipped; the result follows
    assert r is not None and r.lateness.count > 10
    assert r.lateness.max_ns > 0.25e9  # the stop it went through, measured as a stall
