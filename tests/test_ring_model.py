"""The pure token-ring model: formulas, tail estimates, monotonicity (hypothesis), the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsyncprobe.cli import main
from fsyncprobe.report.codec import from_jsonable, to_jsonable
from fsyncprobe.ring import corosync
from fsyncprobe.ring import model as ring
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram
from tests.cli_helpers import cli_runner, fsyncprobe

MS = 1_000_000


def _hist(values: list[int]) -> SavedHistogram:
    h = Histogram()
    h.record_many(values)
    return SavedHistogram.of(h)


def _node(stalls_ns: list[int], measured_s: float = 60.0, sync_ns: list[int] | None = None,
          name: str = "n1") -> ring.NodeDistribution:
    return ring.NodeDistribution(
        hostname=name, stall_histogram=_hist(stalls_ns) if stalls_ns else None,
        sync_histogram=_hist(sync_ns) if sync_ns else None, measured_ns=int(measured_s * 1e9),
        stall_measured_ns=int(measured_s * 1e9))


def _exp_samples(n: int, mean_ns: float, seed: int = 1) -> list[int]:
    r = random.Random(seed)
    return [int(r.expovariate(1 / mean_ns)) for _ in range(n)]


QUIET = _node(_exp_samples(20_000, 50_000))  # 50 us mean lateness, an idle machine


def test_stall_bounds_for_a_1000_ms_token_three_nodes() -> None:
    t = corosync.derive_timers(corosync.CorosyncSettings(token_ms=1000), nodes=3)
    bounds = {b.name: b.stall_ms for b in ring.stall_bounds(t, rotation=303.0)}
    # knet: ping_timeout 825 - interval 412 / 2 (3T/8).
    assert bounds["knet link"] == pytest.approx(825 - 206)
    assert bounds["token"] == pytest.approx(1650 - 303)
    assert bounds["fail_recv_const"] == pytest.approx(2500 * 303)
    assert ring.stall_bounds(t, 303.0)[0].name == "knet link"
    # Link latency lengthens the knet timeout by twice the round trip (libknet LAT_MUL).
    slow = {b.name: b.stall_ms for b in ring.stall_bounds(t, 303.0, link_rtt_ms=10.0)}
    assert slow["knet link"] == pytest.approx(825 + 20 - 206)


def test_without_knet_the_token_bounds_a_stall() -> None:
    t = corosync.derive_timers(corosync.CorosyncSettings(token_ms=1000, transport="udpu"), nodes=3)
    assert ring.stall_bounds(t, 300.0)[0].name == "token"
    m = ring.run_model([QUIET], ring.ModelParams(token_ms=1000, transport="udpu"))
    assert m.stall_tolerance_bound_by == "token"
    assert m.knet_ping_timeout_ms is None


def test_rotation_formula() -> None:
    t = corosync.derive_timers(corosync.CorosyncSettings(token_ms=1000), nodes=3)
    p = ring.ModelParams(network_latency_ms=2.0, jitter_ms=0.5)
    assert ring.rotation_ms(t, p, [1.0, 0.0, 0.0]) == pytest.approx(303 + 3 * 2.5 + 1.0)
    busy = dataclasses.replace(p, idle_ring=False)
    assert ring.rotation_ms(t, busy, [0.0] * 5) == pytest.approx(5 * 2.5)


def test_model_report_timers_and_ha_ceiling() -> None:
    m = ring.run_model([QUIET], ring.ModelParams())
    assert (m.nodes, m.token_ms, m.effective_token_ms, m.consensus_ms) == (3, 3000, 3650, 4380)
    ha = m.ha_ceiling
    assert ha.total_ms == pytest.approx(3650 + 4380 + 1000 + 10_000 + 5000)
    assert ha.ok
    # T + 1.2 T + sync + 10 s + 5 s <= 60 s - margin: about 19 s of effective token.
    assert ha.max_token_ms == pytest.approx((60_000 - 2000 - 16_000) / 2.2)
    assert ha.max_nodes == 2 + int((ha.max_token_ms - 3000) // 650)
    names = {a.name for a in m.assumptions}
    assert {"token", "token_coefficient", "coupling", "network_latency", "knet_ping_timeout",
            "max extrapolation"} <= names
    assert any("assumed like n1" in w for w in m.warnings)


def test_commit_latency_enters_the_ha_budget() -> None:
    slow_commit = dataclasses.replace(QUIET, commit_p999_ns=40_000 * MS)
    m = ring.run_model([slow_commit], ring.ModelParams())
    assert m.ha_ceiling.commit_p999_ms == 40_000
    assert not m.ha_ceiling.ok
    assert m.max_safe_nodes == 1
    assert any("HA ceiling exceeded" in w for w in m.warnings)


def test_empirical_rate_where_the_data_reach() -> None:
    stalls = [1 * MS] * 990 + [800 * MS] * 10
    rate = ring.StallRate(_hist(stalls), 100 * 10**9, 1.0, "test")
    assert rate.count_above(500 * MS) == 10
    assert rate.rate(500 * MS) >= 10 / 100
    lo, hi = rate.interval(500 * MS)
    assert lo <= rate.rate(500 * MS) <= hi


def test_fitted_tail_of_exponential_data_extrapolates_near_the_truth() -> None:
    mean = 1 * MS
    n, seconds = 100_000, 200.0
    rate = ring.StallRate(_hist(_exp_samples(n, mean, seed=7)), int(seconds * 1e9), 1.0, "test")
    assert rate.fitted
    assert rate.xi < 0.15  # an exponential tail is recognised as light
    x = 15 * MS  # far beyond the largest of 100,000 samples (about 11.5 ms)
    truth = n / seconds * math.exp(-x / mean)
    est = rate.rate(x)
    assert truth / 10 < est < truth * 10
    lo, hi = rate.interval(x)
    assert lo <= est <= hi


def test_model_is_reproducible() -> None:
    # The interval is analytic (no bootstrap, so no seed): the same input gives the same report.
    noisy = _node(_exp_samples(20_000, 50_000) + [int(x) for x in range(MS, 60 * MS, 3 * MS)])
    a = ring.run_model([noisy], ring.ModelParams())
    b = ring.run_model([noisy], ring.ModelParams())
    assert to_jsonable(a) == to_jsonable(b)
    assert from_jsonable(ring.ModelReport, json.loads(json.dumps(to_jsonable(a)))) == a


def test_min_token_and_max_nodes_for_a_quiet_and_a_stalling_node() -> None:
    quiet = ring.run_model([QUIET], ring.ModelParams())
    assert quiet.min_safe_token_ms is not None and quiet.min_safe_token_ms < 1000
    assert quiet.max_safe_nodes >= 16
    # A node whose corosync was late by 2-3 s about once a minute: no ring is safe with T = 3.65 s.
    bad = _node(_exp_samples(20_000, 50_000) + [2500 * MS] * 5, measured_s=300)
    m = ring.run_model([bad], ring.ModelParams())
    assert m.false_losses_per_year > 1000
    assert m.min_safe_token_ms is None or m.min_safe_token_ms > 2500 / 0.4
    assert m.max_safe_nodes < quiet.max_safe_nodes
    assert m.bottleneck_node == "n1"


def test_slowest_node_is_the_bottleneck() -> None:
    bad = _node(_exp_samples(5000, 50_000) + [900 * MS] * 3, name="slow")
    m = ring.run_model([QUIET, bad], ring.ModelParams(nodes=3))
    assert m.bottleneck_node == "slow"
    assert [nm.assumed for nm in m.node_models] == [False, False, True]
    assert "slow" in m.node_models[2].hostname


def test_coupling_uses_sync_latency() -> None:
    node = _node(_exp_samples(5000, 50_000), sync_ns=[5 * MS] * 5000 + [1500 * MS] * 5)
    base = ring.run_model([node], ring.ModelParams(coupling=None))
    folk = ring.run_model([node], ring.ModelParams(coupling=1.0))
    code = ring.run_model([node], ring.ModelParams(coupling=0.0))
    assert folk.false_losses_per_year > base.false_losses_per_year
    assert code.false_losses_per_year == base.false_losses_per_year
    no_sched = dataclasses.replace(node, stall_histogram=None)
    assumed = ring.run_model([no_sched], ring.ModelParams())
    assert any("assumed coupling 1" in w for w in assumed.warnings)
    assert assumed.false_losses_per_year == folk.false_losses_per_year


# --- Properties ----------------------------------------------------------------------------

stall_lists = st.lists(st.integers(min_value=1000, max_value=3_000 * MS), min_size=20, max_size=300)
PROPS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _key(v: float | None) -> float:
    return math.inf if v is None else v


@PROPS
@given(stalls=stall_lists, factor=st.sampled_from([2, 4]))
def test_longer_stalls_never_lower_the_min_token_nor_raise_max_nodes(stalls: list[int], factor: int) -> None:
    params = ring.ModelParams(nodes=3)
    base = ring.run_model([_node(stalls, 30.0)], params)
    longer = ring.run_model([_node([v * factor for v in stalls], 30.0)], params)
    assert _key(longer.min_safe_token_ms) >= _key(base.min_safe_token_ms)
    assert longer.max_safe_nodes <= base.max_safe_nodes
    assert longer.false_losses_per_year >= base.false_losses_per_year


@PROPS
@given(sync=stall_lists, factor=st.sampled_from([2, 8]))
def test_a_slower_disk_never_lowers_the_min_token_nor_raises_max_nodes(sync: list[int], factor: int) -> None:
    params = ring.ModelParams(nodes=3, coupling=1.0)
    fast = ring.run_model([_node([], 30.0, sync_ns=sync)], params)
    slow = ring.run_model([_node([], 30.0, sync_ns=[v * factor for v in sync])], params)
    assert _key(slow.min_safe_token_ms) >= _key(fast.min_safe_token_ms)
    assert slow.max_safe_nodes <= fast.max_safe_nodes


@PROPS
@given(stalls=stall_lists, n=st.integers(min_value=2, max_value=20))
def test_more_nodes_never_lower_the_min_token(stalls: list[int], n: int) -> None:
    node = _node(stalls, 30.0)
    a = ring.run_model([node], ring.ModelParams(nodes=n))
    b = ring.run_model([node], ring.ModelParams(nodes=n + 1))
    assert _key(b.min_safe_token_ms) >= _key(a.min_safe_token_ms)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_model_json_lists_assumptions_and_stall_tolerance() -> None:
    res = fsyncprobe("model", "--latency-ms", "2,3,2.5,4,3,2,80,3", "--nodes", "4", "--token", "1000",
                     "--no-corosync-conf", "--json", "--quiet")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["model"]
    assert m["nodes"] == 4 and m["effective_token_ms"] == 2300
    assert m["stall_tolerance_ms"] == pytest.approx(2300 // 2 - (2300 // 4) / 2 + 2 * 2 * 0.3, rel=1e-6)
    assert m["stall_tolerance_bound_by"] == "knet link"
    assert all({"name", "value", "unit", "source"} <= set(a) for a in m["assumptions"])
    assert res.stderr == ""  # --quiet


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_cli_model_human_formats(fmt: str) -> None:
    res = fsyncprobe("model", "--latency-ms", "2,3,4", "--no-corosync-conf", "--format", fmt)
    assert res.returncode == 0, res.stderr
    assert "stall tolerance" in res.stdout and "Assumptions" in res.stdout


def test_cli_model_from_a_report_and_corrupt_reports(tmp_path: Path) -> None:
    from fsyncprobe.measure.types import (
        BenchParams,
        BenchResult,
        SchedProbeResult,
        StallSummary,
        SyncMethod,
        Workload,
    )
    from fsyncprobe.pipeline import new_report
    from fsyncprobe.stats.summary import LatencySummary, summarize

    h = Histogram()
    h.record_many(_exp_samples(3000, 2 * MS))
    s = Histogram()
    s.record_many(_exp_samples(30_000, 40_000))
    lat: LatencySummary = summarize(h)
    bench = BenchResult(
        params=BenchParams(path="/x", workload=Workload.SQLITE, sync=SyncMethod.FSYNC, block_size_bytes=4096,
                           file_size_bytes=1 << 20, duration_ns=None, ops_limit=3000, warmup_ns=0,
                           stall_threshold_ns=100 * MS),
        mountpoint="/", fstype="ext4", ops=3000, elapsed_ns=60 * 10**9, ops_per_s=50.0, latency=lat,
        histogram=SavedHistogram.of(h), timeline=(), stalls=StallSummary(100 * MS, 0, lat.max_ns),
        device_writes=(), warmup_ops=0,
        sched_probe=SchedProbeResult(policy="SCHED_RR", priority=99, interval_ns=2 * MS, lateness=summarize(s),
                                     histogram=SavedHistogram.of(s), duration_ns=60 * 10**9),
    )
    report = dataclasses.replace(new_report("bench", "/x", (bench,)), hostname="pve7")
    good = tmp_path / "r.json"
    good.write_text(json.dumps(to_jsonable(report)))
    res = fsyncprobe("model", "--from-report", str(good), "--no-corosync-conf", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    m = out["model"]
    assert out["hostname"] == "pve7" and m["bottleneck_node"] == "pve7"
    assert m["node_models"][0]["tail"]["source"].startswith("scheduling stalls (SCHED_RR)")
    assert m["ha_ceiling"]["commit_p999_ms"] == pytest.approx(lat.p999_ns / 1e6)

    bad_key = json.loads(good.read_text())
    bad_key["benches"][0]["latency"]["p99_ns"] = "x"
    cases = {"garbage.json": "{not json", "wrongtype.json": json.dumps(bad_key), "empty.json": json.dumps(
        to_jsonable(new_report("device", "/x")))}
    # The same command in-process (click's runner: the real option parsing and error mapping,
    # without a Python start-up per case).
    for name, text in cases.items():
        p = tmp_path / name
        p.write_text(text)
        r = _invoke("model", "--from-report", str(p), "--no-corosync-conf")
        assert r.exit_code == 2, (name, r.stderr)
        assert r.exception is None or isinstance(r.exception, SystemExit)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _invoke("model", "--from-report", str(tmp_path / "missing.json"))
    assert r.exit_code == 2 and "cannot read" in r.stderr


def _invoke(*args: str) -> Result:
    return cli_runner().invoke(main, list(args))


def test_cli_model_needs_exactly_one_input() -> None:
    assert _invoke("model").exit_code == 2
    assert _invoke("model", "--latency-ms", "1", "--from-report", "x.json").exit_code == 2
    r = _invoke("model", "--latency-ms", "1,abc")
    assert r.exit_code == 2 and "not a number" in r.stderr
