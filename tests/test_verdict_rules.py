"""Rules are pure: measurements, device facts and a profile in, findings and a verdict out.

Reports are built directly (no disk), the way a snapshot replay would give them, so every
device class and rate can be tried.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsyncprobe.device.fstypes import RAM_FSTYPES
from fsyncprobe.device.types import DeviceClass
from fsyncprobe.measure.types import Workload
from fsyncprobe.ring import model as ring
from fsyncprobe.ring.inputs import node_from_latencies
from fsyncprobe.verdict import profiles, rules
from fsyncprobe.verdict.types import Finding, Level, Verdict
from tests.factories import MS, bench, device, paced, pmx_benches
from tests.test_verdict_profiles import TWO_RUNS


@pytest.fixture(scope="module")
def pmxcfs() -> profiles.Profile:
    return profiles.load("pmxcfs")


def by_rule(v: Verdict, rule: str) -> list[Finding]:
    return [f for f in v.findings if f.rule == rule]


def test_healthy_ssd_passes(pmxcfs: profiles.Profile) -> None:
    v = rules.evaluate(pmxcfs, pmx_benches(), device(DeviceClass.SATA_SSD), None)
    # the model is enabled in pmxcfs but was not given: that alone is a WARN, and says so
    assert [f.rule for f in v.findings if f.level is not Level.PASS] == ["model"]
    assert v.level is Level.WARN
    assert rules.exit_code(v) == 0
    assert rules.exit_code(replace(v, strict=True)) == 1


@pytest.mark.parametrize(("rate", "level"), [(20.0, Level.FAIL), (49.9, Level.FAIL), (50.0, Level.WARN),
                                             (199.0, Level.WARN), (200.0, Level.PASS), (5000.0, Level.PASS)])
def test_rate_threshold_levels(pmxcfs: profiles.Profile, rate: float, level: Level) -> None:
    v = rules.evaluate(pmxcfs, pmx_benches(rate=rate), device(DeviceClass.NVME), None)
    (f,) = by_rule(v, "pveperf-rate")
    assert f.level is level
    assert f.value == rate and f.unit == "ops_per_s"
    assert "50.0 ops/s" in (f.threshold or "")
    assert (f.advice is None) == (level is Level.PASS)


@pytest.mark.parametrize(("p99_ms", "level"), [(4.9, Level.PASS), (5.0, Level.WARN), (9.99, Level.WARN),
                                               (10.0, Level.FAIL), (40.0, Level.FAIL)])
def test_etcd_fails_at_10ms_p99(p99_ms: float, level: Level) -> None:
    etcd = profiles.load("etcd")
    b = bench(Workload.APPEND, 500.0, int(p99_ms * MS))
    v = rules.evaluate(etcd, (b,), device(DeviceClass.NVME), None)
    (f,) = by_rule(v, "etcd-wal-fdatasync-p99")
    assert f.level is level
    assert v.level is level  # nothing else in the etcd profile objects to an NVMe disk
    assert rules.exit_code(v) == (1 if level is Level.FAIL else 0)


@pytest.mark.parametrize(("cls", "level"), [(DeviceClass.USB, Level.FAIL), (DeviceClass.SD, Level.FAIL),
                                            (DeviceClass.HDD, Level.WARN), (DeviceClass.NVME, Level.PASS),
                                            (DeviceClass.VIRTUAL, Level.PASS)])
def test_device_class_rules(pmxcfs: profiles.Profile, cls: DeviceClass, level: Level) -> None:
    v = rules.evaluate(pmxcfs, pmx_benches(rate=150.0 if cls is DeviceClass.HDD else 2000.0), device(cls), None)
    (f,) = by_rule(v, "device-class")
    assert f.level is level
    assert cls.value in f.title
    if level is Level.FAIL:
        assert v.level is Level.FAIL and "SSD" in (f.advice or "")


@pytest.mark.parametrize("fstype", sorted(RAM_FSTYPES))  # hugetlbfs was missing from the rules' own copy
def test_tmpfs_says_no_disk_was_measured(pmxcfs: profiles.Profile, fstype: str) -> None:
    benches = tuple(replace(b, fstype=fstype) for b in pmx_benches(rate=200_000.0))
    for dev in (None, replace(device(DeviceClass.RAM), leaves=())):
        v = rules.evaluate(pmxcfs, benches, dev, None)
        (f,) = by_rule(v, "no-disk")
        assert f.level is Level.FAIL and "no disk was measured" in f.title
        assert v.level is Level.FAIL
        # a RAM "disk" is not a lying HDD: no impossible-rate finding for it
        assert not by_rule(v, "impossible-rate")


def test_hdd_claiming_write_through_at_ssd_speed_lies(pmxcfs: profiles.Profile) -> None:
    v = rules.evaluate(pmxcfs, pmx_benches(rate=3000.0), device(DeviceClass.HDD, "write through"), None)
    (f,) = by_rule(v, "impossible-rate")
    assert f.level is Level.FAIL
    assert "lies about flushes" in f.title and "write-through cache reported" in f.title
    assert "3,000 ops/s on an HDD is physically impossible" in f.title
    # with a volatile (write back) cache, a battery-backed controller could do it honestly: WARN
    v2 = rules.evaluate(pmxcfs, pmx_benches(rate=3000.0), device(DeviceClass.HDD, "write back"), None)
    assert [f.level for f in by_rule(v2, "impossible-rate")] == [Level.WARN]
    # at a rate a spinning disk can make, nothing is impossible
    v3 = rules.evaluate(pmxcfs, pmx_benches(rate=120.0), device(DeviceClass.HDD, "write through"), None)
    assert not by_rule(v3, "impossible-rate")


def test_one_impossible_rate_finding_per_disk_from_the_fastest_sync_workload() -> None:
    # the pveperf profile runs pveperf's loop twice (pveperf-durable, judged, and pveperf's own order)
    p = profiles.load("pveperf")
    benches = (bench(Workload.PVEPERF_DURABLE, 900.0), bench(Workload.PVEPERF, 2500.0))
    (f,) = by_rule(rules.evaluate(p, benches, device(DeviceClass.HDD, "write through"), None), "impossible-rate")
    assert "2,500 ops/s" in f.title and "(pveperf)" in (f.measured or "")
    (rate,) = by_rule(rules.evaluate(p, benches, device(DeviceClass.NVME), None), "pveperf-rate")
    assert rate.value == 900.0 and rate.title.startswith("pveperf-durable ")


@pytest.mark.parametrize(("writes", "level"), [(10, Level.FAIL), (2000, Level.WARN), (8000, None), (20000, None)])
def test_far_more_syncs_than_device_writes(pmxcfs: profiles.Profile, writes: int, level: Level | None) -> None:
    # 2,000 ops/s for 4 s = 8,000 syncs
    v = rules.evaluate(pmxcfs, pmx_benches(writes=writes), device(DeviceClass.SATA_SSD), None)
    found = by_rule(v, "syncs-without-writes")
    assert [f.level for f in found] == ([] if level is None else [level])


def test_gates(pmxcfs: profiles.Profile) -> None:
    gates = rules.Gates(min_ops_per_s=3000, max_p99_ns=1 * MS)
    v = rules.evaluate(pmxcfs, pmx_benches(rate=2000.0, p99_ns=2 * MS), device(DeviceClass.NVME), None, gates)
    assert {f.level for f in by_rule(v, "gate-min-ops")} == {Level.PASS, Level.FAIL}  # sqlite 5000 passes
    assert not [f for f in by_rule(v, "gate-min-ops") if f.title.startswith("paced")]  # its rate is the pace
    pveperf_p99 = [f for f in by_rule(v, "gate-max-p99") if f.title.startswith("pveperf")]
    assert [f.level for f in pveperf_p99] == [Level.FAIL]
    assert v.level is Level.FAIL and rules.exit_code(v) == 1
    ok = rules.evaluate(pmxcfs, pmx_benches(rate=4000.0, p99_ns=MS // 2), device(DeviceClass.NVME), None,
                        rules.Gates(min_ops_per_s=3000, max_p99_ns=2 * MS))  # sqlite p99 is 1 ms
    assert all(f.level is Level.PASS for f in ok.findings if f.rule.startswith("gate-"))


def test_missing_workload_is_a_warning_not_a_crash(pmxcfs: profiles.Profile) -> None:
    v = rules.evaluate(pmxcfs, (bench(Workload.PVEPERF),), device(DeviceClass.NVME), None)
    (f,) = by_rule(v, "pmxcfs-commit-p999")
    assert f.level is Level.WARN and "not measured" in f.title


def test_model_findings_from_a_real_model_run(pmxcfs: profiles.Profile) -> None:
    # 2 % of syncs take 3 s: with coupling 1 (the folk view) corosync stalls longer than any timer
    slow = node_from_latencies("slow", [1.0] * 1000 + [3000.0] * 20)
    model = ring.run_model([slow], ring.ModelParams(nodes=3, coupling=1.0))
    benches = (bench(Workload.SQLITE, 5000.0, MS), bench(Workload.PVEPERF, 300.0, 2 * MS, p999_ns=3000 * MS))
    v = rules.evaluate(pmxcfs, benches, device(DeviceClass.NVME), model)
    (fl,) = by_rule(v, "false-membership-changes")
    assert fl.level is Level.FAIL and fl.value == model.false_losses_per_year > 1
    assert "totem.token" in (fl.advice or "")
    (tail,) = by_rule(v, "sync-tail-vs-token")
    assert tail.level is Level.WARN  # the folk path never FAILs on its own
    assert by_rule(v, "ha-ceiling")[0].level is (Level.PASS if model.ha_ceiling.ok else Level.FAIL)
    fast = node_from_latencies("fast", [0.5] * 2000)
    calm = ring.run_model([fast], ring.ModelParams(nodes=3, coupling=1.0))
    v2 = rules.evaluate(pmxcfs, pmx_benches(), device(DeviceClass.NVME), calm)
    assert v2.level is Level.PASS, [f for f in v2.findings if f.level is not Level.PASS]


def test_cluster_names_the_node_that_holds_the_ring_back(pmxcfs: profiles.Profile) -> None:
    nodes = [
        ("pve1", "pve1.json", pmx_benches(rate=3000.0), device(DeviceClass.NVME)),
        ("pve2", "pve2.json", pmx_benches(rate=25.0), device(DeviceClass.NVME)),
        ("pve3", "pve3.json", pmx_benches(rate=2500.0), device(DeviceClass.NVME)),
    ]
    v = rules.evaluate_cluster(pmxcfs, nodes, None)
    assert v.bottleneck_node == "pve2"
    assert v.level is Level.FAIL
    assert {n.hostname: n.level for n in v.nodes} == {"pve1": Level.PASS, "pve2": Level.FAIL, "pve3": Level.PASS}
    failing = [f for f in v.findings if f.level is Level.FAIL]
    assert failing and all(f.node == "pve2" for f in failing)
    # among equals, the slowest sync rate holds the ring back
    even = [(h, s, pmx_benches(rate=r), d) for (h, s, _, d), r in zip(nodes, (900.0, 800.0, 700.0), strict=True)]
    assert rules.evaluate_cluster(pmxcfs, even, None).bottleneck_node == "pve3"


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(1, 100_000), p99_ms=st.floats(0.01, 5_000), cls=st.sampled_from(list(DeviceClass)),
       min_ops=st.none() | st.floats(0, 100_000))
def test_verdict_is_the_worst_finding_and_gates_never_help(rate: float, p99_ms: float, cls: DeviceClass,
                                                           min_ops: float | None) -> None:
    prof = profiles.load("pmxcfs")
    benches = pmx_benches(rate=rate, p99_ns=int(p99_ms * MS))
    v = rules.evaluate(prof, benches, device(cls), None)
    assert v.level.rank == max(f.level.rank for f in v.findings)
    assert [f.level.rank for f in v.findings] == sorted((f.level.rank for f in v.findings), reverse=True)
    gated = rules.evaluate(prof, benches, device(cls), None, rules.Gates(min_ops_per_s=min_ops))
    assert gated.level.rank >= v.level.rank


def test_event_rates_read_as_rates_and_stop_at_a_million_years() -> None:
    from fsyncprobe.units import RATE_FLOOR_YEARS, format_rate_per_year

    assert format_rate_per_year(0.0) == "0 per year"
    assert format_rate_per_year(2.4) == "2.40 per year"
    assert format_rate_per_year(1 / 37.5) == "1 per 37.5 years"
    assert format_rate_per_year(1 / RATE_FLOOR_YEARS) == "1 per 1e+06 years"
    # the model's tail says nothing about 1e168 years: no such figure is printed
    assert format_rate_per_year(1 / 2.58e168) == "fewer than 1 per 1,000,000 years"


def test_thresholds_select_runs_by_name_when_one_workload_runs_twice(tmp_path: Path) -> None:
    p = tmp_path / "two.toml"
    p.write_text(TWO_RUNS, encoding="utf-8")
    prof = profiles.load(str(p))
    back_to_back = bench(Workload.OVERWRITE, 500.0, 8 * MS)  # p50 = p99 / 4 = 2 ms
    isolated = paced(bench(Workload.OVERWRITE, 4.0, 40 * MS), "isolated", 4.0)  # p50 10 ms
    for order in ((back_to_back, isolated), (isolated, back_to_back)):
        v = rules.evaluate(prof, order, device(DeviceClass.NVME), None)
        (b,) = by_rule(v, "back-to-back-p50")
        (i,) = by_rule(v, "isolated-p50")
        assert (b.level, b.value, b.title.split()[0]) == (Level.PASS, 2 * MS, "overwrite")
        assert (i.level, i.value, i.title.split()[0]) == (Level.FAIL, 10 * MS, "isolated")
    v = rules.evaluate(prof, (back_to_back,), device(DeviceClass.NVME), None)
    (missing,) = by_rule(v, "isolated-p50")
    assert missing.level is Level.WARN and missing.title == "isolated was not measured"


def test_a_paced_run_that_fell_behind_is_a_warning(pmxcfs: profiles.Profile) -> None:
    sqlite, pveperf, run = pmx_benches()
    assert not by_rule(rules.evaluate(pmxcfs, (sqlite, pveperf, run), device(DeviceClass.NVME), None), "paced-late")
    late = paced(run, "paced", 5.0, late_ops=4)
    (f,) = by_rule(rules.evaluate(pmxcfs, (sqlite, pveperf, late), device(DeviceClass.NVME), None), "paced-late")
    assert f.level is Level.WARN and f.value == 4 and "4 of 15 operations started late at 5/s" in f.title
    assert "40.1 ms" in (f.measured or "")
