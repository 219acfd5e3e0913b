"""The ring-id write's model (fsyncprobe/ring/ringid.py) and its rule, without disks: the exact
binomial interval against published values and its properties, the chance that a membership
change is followed by another, and the `ring-id-write` finding at PASS, WARN and FAIL."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsyncprobe.ring import model as ring
from fsyncprobe.ring.inputs import NodeDistribution, node_from_latencies
from fsyncprobe.ring.ringid import clopper_pearson, count_over, ring_id_model
from fsyncprobe.ring.types import ModelReport
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram
from fsyncprobe.verdict import rules
from fsyncprobe.verdict.types import Level

MS = 1_000_000


def _writes(latencies_ms: list[float]) -> SavedHistogram:
    h = Histogram()
    for v in latencies_ms:
        h.record(round(v * MS))
    return SavedHistogram.of(h)


def _node(latencies_ms: list[float], name: str = "n1") -> NodeDistribution:
    base = node_from_latencies(name, [0.5] * 100)
    return NodeDistribution(hostname=name, stall_histogram=None, sync_histogram=base.sync_histogram,
                            measured_ns=base.measured_ns, ring_id_histogram=_writes(latencies_ms),
                            ring_id_state_dirs=("/var/lib/corosync",))


def _model(nodes: list[NodeDistribution], n: int = 3, token_ms: float = 1000) -> ModelReport:
    m = ring.run_model(nodes, ring.ModelParams(nodes=n, token_ms=token_ms, coupling=0.0))
    return replace(m, ring_id_store=ring_id_model(nodes, m))


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Clopper & Pearson 1934 at 90 %, as tabulated (e.g. R's binom.test(k, n, conf.level = 0.9)).
    (5, 10, 0.2224, 0.7776),
    (0, 28, 0.0, 0.1015),  # k = 0: the upper end is 1 - 0.05^(1/n)
    (1, 100, 0.00051, 0.0466),
    (10, 10, 0.7411, 1.0),
])
def test_clopper_pearson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = clopper_pearson(k, n, 0.90)
    assert lo == pytest.approx(low, abs=2e-4)
    assert hi == pytest.approx(high, abs=2e-4)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500), st.data())
def test_interval_holds_the_estimate_and_narrows_with_more_samples(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = clopper_pearson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    # Ten times the samples at the same fraction: an interval no wider.
    lo10, hi10 = clopper_pearson(10 * k, 10 * n)
    assert hi10 - lo10 <= hi - lo + 1e-9
    # One more write over the limit never lowers either end.
    if k < n:
        lo1, hi1 = clopper_pearson(k + 1, n)
        assert lo1 >= lo - 1e-12 and hi1 >= hi - 1e-12


def test_zero_over_tolerance_gives_zero_but_an_upper_end_the_samples_cannot_exclude() -> None:
    m = _model([_node([0.3] * 28)])
    r = m.ring_id_store
    assert r is not None
    assert r.samples == 28 and r.over_tolerance == 0
    assert r.node_probability == 0.0 and r.change_probability == 0.0
    assert r.node_probability_high == pytest.approx(1 - 0.05 ** (1 / 28), rel=1e-3)
    # three nodes, each of which could be that bad: 1 - (1 - p_high)^3
    assert r.change_probability_high == pytest.approx(1 - (1 - r.node_probability_high) ** 3, rel=1e-9)
    assert r.extra_reformations_per_change == 0.0


def test_the_token_bound_not_the_knet_bound_is_the_tolerance() -> None:
    m = _model([_node([0.3] * 10)])
    r = m.ring_id_store
    assert r is not None
    token = next(b for b in m.stall_bounds if b.name == "token")
    assert r.tolerance_bound_by == "token" and r.tolerance_ms == token.stall_ms
    # With knet (the default) the ring's general stall tolerance is the smaller knet-link bound:
    # a blocked main thread leaves libknet's heartbeat thread running, so it does not apply here.
    assert m.stall_tolerance_bound_by == "knet link" and m.stall_tolerance_ms < r.tolerance_ms


def test_slow_writes_give_the_cascade_probability_and_its_geometric_sum() -> None:
    # token 1000 ms with 3 nodes: T = 1650 ms, token bound about 1600 ms
    writes = [0.3] * 16 + [2000.0] * 4  # 4 of 20 past the bound
    m = _model([_node(writes)])
    r = m.ring_id_store
    assert r is not None
    assert r.over_tolerance == 4 and r.samples == 20
    p = 4 / 20
    q = 1 - (1 - p) ** 3
    assert r.node_probability == pytest.approx(p)
    assert r.change_probability == pytest.approx(q)
    assert r.change_probability_low < q < r.change_probability_high
    assert r.extra_reformations_per_change == pytest.approx(q / (1 - q))
    assert r.max_ms == pytest.approx(2000.0, rel=0.01)


def test_every_write_over_means_the_ring_may_never_settle() -> None:
    r = _model([_node([5000.0] * 5)]).ring_id_store
    assert r is not None
    assert r.change_probability == 1.0
    assert r.extra_reformations_per_change is None and r.extra_reformations_per_year is None


def test_the_worst_node_stands_for_the_unmeasured_ones_and_nodes_without_it_are_skipped() -> None:
    slow, fast = _node([0.3] * 18 + [3000.0] * 2, "slow"), _node([0.3] * 20, "fast")
    plain = node_from_latencies("plain", [0.5] * 10)
    r = _model([fast, slow, plain], n=5).ring_id_store
    assert r is not None
    p = 2 / 20
    # fast (0), slow (p), and three more like slow: plain measured nothing of it
    assert r.change_probability == pytest.approx(1 - (1 - p) ** 4)
    assert _model([plain]).ring_id_store is None


def test_count_over_uses_the_exact_maximum() -> None:
    h = _writes([1.0, 2.0, 1600.5])
    assert count_over(h, 1600.0 * MS) == (1, 3)
    assert count_over(h, 1601.0 * MS) == (0, 3)


@pytest.mark.parametrize(("writes_ms", "level"), [
    ([0.3] * 30, Level.PASS),
    ([0.3] * 29 + [900.0], Level.WARN),  # over half the ~1600 ms token bound
    ([0.3] * 29 + [2500.0], Level.FAIL),
])
def test_ring_id_rule_levels(writes_ms: list[float], level: Level) -> None:
    m = _model([_node(writes_ms)])
    found = [f for f in rules.model_findings(m, ()) if f.rule == "ring-id-write"]
    assert len(found) == 1
    f = found[0]
    assert f.level is level
    assert "/var/lib/corosync" in f.title
    assert "corosync_ring_id_store" in f.reason and "exec/main.c" in f.reason and "issue 520" in f.reason
    assert (f.advice is None) == (level is Level.PASS)
    assert f.value == pytest.approx(max(writes_ms) * MS, rel=0.01)
    m_text = f.measured or ""
    # an interval only where it says something: with no write over the bound, only its upper end
    assert ("upper end" in m_text) == (level is not Level.FAIL) and "% interval" not in m_text
    assert math.isfinite(f.value or 0.0)


def test_no_finding_without_the_measurement() -> None:
    m = ring.run_model([node_from_latencies("x", [1.0] * 50)], ring.ModelParams(nodes=3))
    assert m.ring_id_store is None
    assert not [f for f in rules.model_findings(m, ()) if f.rule == "ring-id-write"]
