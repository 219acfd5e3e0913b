"""The paced (open-loop) mode: `--rate N` / `--interval T` (fsyncprobe/measure/pacing.py).

The schedule arithmetic is tested pure, and the loop itself against a fake clock whose sleeps and
operations take exactly the time a test gives them, so "late operations do not shift the schedule"
and the lag accounting are checked exactly. Then real runs: the operation count on a real
filesystem, and a throttled loop disk that cannot keep up.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsyncprobe.measure import pacing
from fsyncprobe.measure.loop import Recorder
from fsyncprobe.measure.types import Workload
from fsyncprobe.pipeline import new_report
from fsyncprobe.render import render
from tests import factories, realfs
from tests.cli_helpers import bench_json
from tests.conftest import requires_root


@given(st.floats(min_value=pacing.MIN_RATE_PER_S, max_value=pacing.MAX_RATE_PER_S),
       st.integers(min_value=0, max_value=10**7))
def test_due_times_are_computed_from_k_and_never_drift(rate: float, k: int) -> None:
    exact = Fraction(k) * Fraction(10**9) / Fraction(rate)
    assert abs(pacing.due_ns(0, k, rate) - exact) <= 1  # rounding of this one due time, nothing added up
    assert pacing.due_ns(5, k + 1, rate) >= pacing.due_ns(5, k, rate)


def test_due_times_of_a_rate_whose_interval_is_not_whole_nanoseconds() -> None:
    # 3/s: 333,333,333.3 ns apart; adding a rounded interval would lose 1 ns a step, k / rate does not.
    assert pacing.due_ns(0, 3, 3.0) == 10**9
    assert pacing.due_ns(0, 3_000_000, 3.0) == 10**15


@given(st.integers(min_value=1, max_value=10**12), st.floats(min_value=pacing.MIN_RATE_PER_S,
                                                             max_value=pacing.MAX_RATE_PER_S))
def test_scheduled_within_counts_the_due_times_before_the_deadline(duration_ns: int, rate: float) -> None:
    n = pacing.scheduled_within(duration_ns, rate)
    assert n >= 1
    assert pacing.due_ns(0, n - 1, rate) < duration_ns <= pacing.due_ns(0, n, rate)


def test_ten_a_second_for_twenty_seconds_is_two_hundred() -> None:
    assert pacing.scheduled_within(20 * 10**9, 10.0) == 200
    assert pacing.scheduled_within(4 * 10**9, 50.0) == 200
    assert pacing.scheduled_within(500_000_000, 5.0) == 3  # due at 0, 200 and 400 ms


class FakeTime:
    """A monotonic clock that only moves when the loop sleeps (by the sleep plus `slack_ns`, as a
    timer wakes late) or an operation runs (by the latency the test gives operation k)."""

    def __init__(self, latencies_ns: list[int], slack_ns: int) -> None:
        self.now = 1_000_000_000_000
        self.latencies = latencies_ns
        self.slack = slack_ns
        self.starts: list[int] = []
        self.ends: list[int] = []

    def monotonic_ns(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += round(seconds * 1e9) + self.slack

    def op(self) -> None:
        self.starts.append(self.now)
        self.now += self.latencies[len(self.starts) - 1]
        self.ends.append(self.now)


def run_paced(ft: FakeTime, rate: float, ops: int | None = None, duration_ns: int | None = None,
              ) -> tuple[pacing.PacedPhase, Recorder, int, int]:
    phase = pacing.PacedPhase(rate, clock=ft.monotonic_ns, sleep=ft.sleep)
    rec = Recorder(stall_threshold_ns=10**12)
    done, elapsed = phase(ft.op, duration_ns, ops, rec, "measure", None, None)
    return phase, rec, done, elapsed


@settings(max_examples=200, deadline=None)
@given(lat=st.lists(st.integers(min_value=0, max_value=300_000_000), min_size=1, max_size=40),
       slack=st.integers(min_value=0, max_value=2_000_000))
def test_late_operations_do_not_shift_the_schedule_and_lag_is_accounted(lat: list[int], slack: int) -> None:
    ft = FakeTime(lat, slack)
    t0 = ft.now
    phase, rec, done, elapsed = run_paced(ft, 10.0, ops=len(lat))  # due every 100 ms
    assert done == len(lat) == rec.ops
    late = 0
    lags = []
    for k, start in enumerate(ft.starts):
        due = t0 + k * 100_000_000
        prev_end = ft.ends[k - 1] if k else t0
        if k == 0:
            assert start == t0  # the first is due at the start: no sleep
        elif prev_end >= due:
            late += 1
            assert start == prev_end  # started at once when the one before ended, not one interval later
        else:
            assert abs(start - (due + slack)) <= 1  # slept to its own due time, whatever came before
        lags.append(start - due)
    result = phase.result()
    assert result is not None
    assert result.late_ops == late
    assert result.scheduled_ops == len(lat)
    assert result.lag.count == len(lat)
    assert abs(result.lag.max_ns - max(lags)) <= 1 and abs(result.lag.min_ns - min(lags)) <= 1
    assert rec.hist.max_value == max(lat)  # latency from each operation's own start, lag not in it
    # A run that kept up lasts until its next due time: ops / elapsed is the rate asked for.
    assert elapsed == max(len(lat) * 100_000_000, ft.ends[-1] - t0)


def test_a_duration_run_that_falls_behind_stops_at_its_deadline_and_says_so() -> None:
    ft = FakeTime([250_000_000] * 20, 0)  # 250 ms each, due every 100 ms
    phase, _, done, elapsed = run_paced(ft, 10.0, duration_ns=1_000_000_000)
    result = phase.result()
    assert result is not None
    assert done == 4  # started at 0, 250, 500, 750 ms; the one free at 1000 ms is past the deadline
    assert result.scheduled_ops == 10 and result.late_ops == 3
    assert result.lag.max_ns == 750_000_000 - 300_000_000
    assert elapsed == 1_000_000_000
    notes = pacing.notes(result, done)
    assert any("3 of 4 operations started late" in n for n in notes)
    assert any("6 of 10 scheduled operations never started" in n for n in notes)
    assert not any("never started" in n for n in pacing.notes(result, done, cut_short=True))  # a signal's doing


def test_the_warm_up_is_paced_and_records_nothing() -> None:
    ft = FakeTime([1_000_000] * 5, 0)
    phase = pacing.PacedPhase(4.0, clock=ft.monotonic_ns, sleep=ft.sleep)
    done, elapsed = phase(ft.op, 1_000_000_000, None, None, "warmup", None, None)
    assert done == 4 and elapsed == 1_000_000_000
    assert [s - ft.starts[0] for s in ft.starts] == [0, 250_000_000, 500_000_000, 750_000_000]
    assert phase.result() is None  # no measured phase yet


def test_a_bad_rate_is_refused() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan, pacing.MAX_RATE_PER_S * 2):
        with pytest.raises(ValueError):
            pacing.PacedPhase(bad)


def test_rate_50_for_4_s_makes_200_operations_on_a_real_filesystem(tmp_path: Path) -> None:
    report = bench_json(str(tmp_path), "-w", "overwrite", "--sync", "fdatasync", "--file-size", "1m",
                        "--rate", "50", "--duration", "4s", "--warmup", "100ms", "--no-sched-probe", "--no-ring-id")
    b = report["benches"][0]
    assert abs(b["ops"] - 200) <= 1
    assert b["params"]["rate_per_s"] == 50.0
    assert b["pacing"]["rate_per_s"] == 50.0 and b["pacing"]["interval_ns"] == 20_000_000
    assert b["pacing"]["scheduled_ops"] == 200
    assert b["pacing"]["lag"]["count"] == b["ops"] == b["latency"]["count"]
    assert 1 <= b["warmup_ops"] <= 6  # paced too: 100 ms at 50/s
    if not b["pacing"]["late_ops"]:
        assert b["ops_per_s"] == pytest.approx(50.0)
    assert [s["ops"] for s in b["timeline"]][:3] == [50, 50, 50] or b["pacing"]["late_ops"]
    assert realfs.leftovers(tmp_path) == []


def test_a_paced_run_beside_the_probe_splits_its_schedule_between_the_windows(tmp_path: Path) -> None:
    # With the scheduling probe (the default) the headline holds the quiet windows' operations and
    # the probe windows' are reported apart: together they are the whole schedule, and the end of
    # the run (a paced run idles to its planned end after its last operation) asks nothing of the
    # probe that has stopped by then.
    report = bench_json(str(tmp_path), "-w", "overwrite", "--sync", "fdatasync", "--file-size", "1m",
                        "--rate", "50", "--duration", "3s", "--warmup", "100ms", "--no-ring-id")
    b = report["benches"][0]
    w = b["probe_windows"]
    assert w is not None and w["note"] is None and not any("probe" in n for n in b["notes"]), b["notes"]
    assert w["quiet_windows"] >= 3 and w["probe_windows"] >= 2
    assert abs(b["ops"] + w["beside_probe_ops"] - 150) <= 1 and b["pacing"]["scheduled_ops"] == 150
    assert not any("never started" in n for n in b["notes"])
    assert b["sched_probe"] is not None and b["sched_probe"]["lateness"]["count"] > 0


def test_interval_is_the_inverse_of_rate(tmp_path: Path) -> None:
    report = bench_json(str(tmp_path), "-w", "pveperf", "--interval", "40ms", "--ops", "10", "--warmup", "0",
                        "--no-sched-probe", "--no-ring-id")
    b = report["benches"][0]
    assert b["params"]["rate_per_s"] == 25.0 and b["ops"] == 10
    assert b["elapsed_ns"] >= 400_000_000  # ten slots of 40 ms, the last one idled out


@requires_root
def test_a_throttled_disk_that_cannot_keep_up_reports_late_operations(slow_ext4: realfs.LoopFs) -> None:
    # 50 write IOPS cannot make 100 syncs a second (each costs at least one write request).
    report = bench_json(str(slow_ext4.mountpoint), "-w", "overwrite", "--sync", "fdatasync", "--file-size", "1m",
                        "--rate", "100", "--duration", "2s", "--warmup", "0", "--no-sched-probe", "--no-ring-id")
    b = report["benches"][0]
    p = b["pacing"]
    assert p["scheduled_ops"] == 200
    assert b["ops"] < 150 and p["late_ops"] > b["ops"] // 2
    assert p["lag"]["max_ns"] > 200_000_000  # the backlog grows: the lag, not the latency
    assert b["latency"]["p50_ns"] < p["lag"]["max_ns"]
    assert b["ops_per_s"] < 75
    assert any("started late" in n and "did not keep up" in n for n in b["notes"])
    assert any("never started" in n for n in b["notes"])


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_the_human_readable_report_says_the_run_was_paced_and_how_it_kept_up(fmt: str) -> None:
    b = factories.paced(factories.bench(Workload.OVERWRITE, 5.0, 4 * factories.MS, seconds=3.0), "isolated", 5.0,
                        late_ops=2)
    text = render(new_report("bench", "/x", (b,)), fmt)
    assert "isolated: overwrite 4.0 KiB + fsync, paced at 5/s on /x" in text
    assert "5.0 ops/s (paced at 5/s)" in text
    assert "one every 200 ms, open loop: 2 started late" in text
    assert "lag p50 100 µs, max 20.1 ms" in text
