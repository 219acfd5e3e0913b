"""P(s), the chance that a stall of s re-forms the ring, and the rate it gives (issue 17;
fsyncprobe/ring/transition.py, docs/model.md "From the stall tolerance to a rate").

Pure: no disks, no rings. The real-ring check of the same function is
tests/test_ring_realring_rate.py.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsyncprobe.ring import model as ring
from fsyncprobe.ring.model import SECONDS_PER_YEAR
from fsyncprobe.ring.transition import Transition, knet_ping_period_ms, step
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram
from tests.cli_helpers import fsyncprobe

MS = 1_000_000
centres = st.floats(min_value=0.0, max_value=5000.0)
widths = st.floats(min_value=0.0, max_value=2000.0)
stalls = st.floats(min_value=-100.0, max_value=8000.0)


@given(c=centres, a=widths, b=widths, s=stalls, t=stalls)
def test_p_is_monotone_in_the_stall_and_a_probability(c: float, a: float, b: float, s: float, t: float) -> None:
    tr = Transition(c, a, b)
    lo, hi = sorted((s, t))
    assert 0.0 <= tr.probability(lo) <= tr.probability(hi) <= 1.0


@given(c=centres, a=widths, b=widths, gap=st.floats(min_value=0.0, max_value=5000.0))
def test_p_is_0_below_the_lower_edge_and_1_above_the_upper(c: float, a: float, b: float, gap: float) -> None:
    tr = Transition(c, a, b)
    assert tr.upper_ms - tr.lower_ms == pytest.approx(a + b, abs=1e-5)
    if tr.upper_ms > tr.lower_ms:
        assert tr.probability(tr.lower_ms - gap) == 0.0
    assert tr.probability(tr.upper_ms + gap) == 1.0


@given(c=centres, a=st.floats(min_value=1.0, max_value=2000.0), b=st.floats(min_value=1.0, max_value=2000.0))
def test_the_centre_is_the_median_and_the_shape_symmetric(c: float, a: float, b: float) -> None:
    tr = Transition(c, a, b)
    assert tr.probability(c) == pytest.approx(0.5, abs=1e-9)
    for d in (0.1, 0.3, 0.49):
        x = d * (a + b)
        assert tr.probability(c - x) == pytest.approx(1 - tr.probability(c + x), abs=1e-9)


@given(c=centres, s=stalls, shrink=st.floats(min_value=1e-9, max_value=1e-3))
def test_the_step_comes_back_as_the_widths_go_to_0(c: float, s: float, shrink: float) -> None:
    assert step(c).probability(s) == (1.0 if s >= c else 0.0)
    narrow = Transition(c, 600 * shrink, 200 * shrink)
    if abs(s - c) > 800 * shrink:
        assert narrow.probability(s) == step(c).probability(s)


def test_the_ends_are_quadratic_over_the_tick_and_the_middle_linear() -> None:
    tr = Transition(619, 600, 200)  # the test ring: T = 1650 ms, knet_ping_interval 412 ms
    assert (tr.lower_ms, tr.upper_ms) == (219, 1019)
    # density rises linearly over the first tick: P = x^2 / (2 x 600 x 200)
    assert tr.probability(219 + 100) == pytest.approx(100 ** 2 / 240_000)
    assert tr.probability(219 + 200) == pytest.approx(200 / 1200)
    # then flat at 1/600 per ms
    assert tr.probability(519) - tr.probability(419) == pytest.approx(100 / 600)
    assert tr.probability(1019 - 100) == pytest.approx(1 - 100 ** 2 / 240_000)
    # the same convolution in the other order
    assert Transition(619, 200, 600).probability(300) == pytest.approx(tr.probability(300))


@given(c=centres, a=widths, b=widths)
@settings(max_examples=50)
def test_the_mean_over_p_matches_a_sampled_threshold_and_never_falls_below_it(c: float, a: float, b: float) -> None:
    # L(x) = exp(-x / 150): the rate of stalls longer than x; P's mean of it is E[L(c - A + D)].
    tr = Transition(c, a, b)

    def rate(x: float) -> float:
        return math.exp(-max(x, 0.0) / 150)

    r = random.Random(1)
    n = 20_000
    sampled = sum(rate(c - a / 2 + r.uniform(0, a) + b / 2 - r.uniform(0, b)) for _ in range(n)) / n
    exact = tr.mean(rate, cells=4000)
    assert exact == pytest.approx(sampled, rel=0.03, abs=1e-12)
    assert tr.mean(rate) >= exact * (1 - 1e-9)  # the coarse sum never below the fine one
    if a + b == 0:
        assert tr.mean(rate) == rate(c)


def test_knet_ping_period_counts_whole_ticks() -> None:
    assert knet_ping_period_ms(412, 200) == 600
    assert knet_ping_period_ms(400, 200) == 400
    assert knet_ping_period_ms(401, 200) == 600
    assert knet_ping_period_ms(412, 0) == 412


def _node(values_ns: list[int], seconds: float) -> ring.NodeDistribution:
    h = Histogram()
    h.record_many(values_ns)
    ns = int(seconds * 1e9)
    return ring.NodeDistribution(hostname="n1", stall_histogram=SavedHistogram.of(h), sync_histogram=None,
                                 measured_ns=ns, stall_measured_ns=ns)


def test_the_model_reports_and_uses_the_transition() -> None:
    # Stalls of 300 ms: below the 619 ms tolerance (the step counts none of them) but above the
    # transition's lower edge (219 ms), where P(300) = 81^2 / 240,000 re-form the ring.
    node = _node([1000] * 10_000 + [300 * MS] * 100, 1000.0)
    params = ring.ModelParams(nodes=3, token_ms=1000, network_latency_ms=0.05, jitter_ms=0.0)
    with_p = ring.run_model([node], params)
    as_step = ring.run_model([node], ring.ModelParams(**{**params.__dict__, "reform_step": True}))
    tr = ring.report_transition(params, with_p)
    assert (round(tr.lower_ms), round(tr.upper_ms)) == (219, 1019)
    per_node_p = with_p.node_models[0].false_losses_per_year
    # 0.1 stalls per second times P(300), from above by at most one quadrature cell (25 ms) and
    # the histogram bucket's 0.4 %
    cell = (tr.upper_ms - tr.lower_ms) / 32
    assert 0.1 * tr.probability(298.8) <= per_node_p / SECONDS_PER_YEAR <= 0.1 * tr.probability(301.2 + cell)
    assert as_step.node_models[0].false_losses_per_year < per_node_p
    names = {a.name: a for a in with_p.assumptions}
    assert names["knet heartbeat tick"].value == "200"
    assert "219" in names["re-formation transition"].value and "1019" in names["re-formation transition"].value
    # a wider tick widens it (configurable like every other assumption)
    wide = ring.run_model([node], ring.ModelParams(**{**params.__dict__, "knet_heartbeat_tick_ms": 400.0}))
    assert ring.report_transition(ring.ModelParams(**{**params.__dict__, "knet_heartbeat_tick_ms": 400.0}),
                                  wide).lower_ms < tr.lower_ms


def test_without_knet_the_token_bound_stays_a_step() -> None:
    node = _node([1000] * 1000, 100.0)
    params = ring.ModelParams(nodes=3, token_ms=1000, transport="udpu")
    report = ring.run_model([node], params)
    tr = ring.report_transition(params, report)
    assert report.stall_tolerance_bound_by == "token"
    assert tr.lower_ms == tr.upper_ms == report.stall_tolerance_ms


def test_cli_model_takes_the_tick_and_lists_the_transition() -> None:
    def assumptions(*extra: str) -> dict[str, dict[str, str]]:
        res = fsyncprobe("model", "--latency-ms", "2,3,2.5,4,3,2,80,3", "--nodes", "3", "--token", "1000",
                         "--no-corosync-conf", "--no-live-ring", "--json", "--quiet", *extra)
        assert res.returncode == 0, res.stderr
        return {a["name"]: a for a in json.loads(res.stdout)["model"]["assumptions"]}

    default = assumptions()
    assert default["knet heartbeat tick"]["value"] == "200"
    assert "600 ms convolved with tick 200 ms" in default["re-formation transition"]["value"]
    given = assumptions("--knet-heartbeat-tick-ms", "100")
    assert given["knet heartbeat tick"]["value"] == "100"
    assert given["knet heartbeat tick"]["source"].startswith("command line (--knet-heartbeat-tick-ms)")
    assert "500 ms convolved with tick 100 ms" in given["re-formation transition"]["value"]
    bad = fsyncprobe("model", "--latency-ms", "2,3", "--knet-heartbeat-tick-ms", "-1", "--no-corosync-conf")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
