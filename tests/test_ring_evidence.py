"""Evidence-bounded answers (issue 17): no recommendation rests on more than the data support.

Pure: the ring model on constructed distributions, no disks. "The same distribution observed m
times as long" is every histogram count x m and the time x m: the tail fit takes the same
buckets (a quantile threshold) and the same mean excess, so only the amount of evidence changes.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsyncprobe.ring import model as ring
from fsyncprobe.ring.model import SECONDS_PER_YEAR
from fsyncprobe.ring.tail import StallRate
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram
from tests.cli_helpers import fsyncprobe, verdict_json

MS = 1_000_000
PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hist(values: list[int]) -> SavedHistogram:
    h = Histogram()
    h.record_many(values)
    return SavedHistogram.of(h)


def _times(h: SavedHistogram, m: int) -> SavedHistogram:
    """The same distribution with every count x m."""
    sq = None if h.sum_squares_ns2 is None else h.sum_squares_ns2 * m
    return dataclasses.replace(h, buckets=tuple((i, c * m) for i, c in h.buckets), sum_ns=h.sum_ns * m,
                               sum_squares_ns2=sq)


def _node(h: SavedHistogram, seconds: float) -> ring.NodeDistribution:
    ns = int(seconds * 1e9)
    return ring.NodeDistribution(hostname="n1", stall_histogram=h, sync_histogram=None, measured_ns=ns,
                                 stall_measured_ns=ns)


def _stalls(seed: int, n: int, mean_us: int, spikes_ms: list[int]) -> list[int]:
    r = random.Random(seed)
    return [int(r.expovariate(1 / (mean_us * 1000))) + 1 for _ in range(n)] + [s * MS for s in spikes_ms]


def _token(v: float | None) -> float:
    return math.inf if v is None else v


def _nodes(v: int | None) -> int:
    return 0 if v is None else v


distributions = st.builds(
    _stalls, seed=st.integers(0, 10**6), n=st.integers(1500, 6000), mean_us=st.integers(20, 3000),
    spikes_ms=st.lists(st.integers(1, 4000), max_size=6))
seconds = st.floats(min_value=1.0, max_value=40 * SECONDS_PER_YEAR)


@PROPS
@given(stalls=distributions, seconds=seconds, m=st.sampled_from([2, 5, 40]))
def test_less_evidence_never_gives_a_less_conservative_answer(stalls: list[int], seconds: float, m: int) -> None:
    h = _hist(stalls)
    params = ring.ModelParams(nodes=3)
    short = ring.run_model([_node(h, seconds)], params)
    long = ring.run_model([_node(_times(h, m), seconds * m)], params)
    a, b = short.answers, long.answers
    assert a is not None and b is not None
    assert b.evidence.observed_s > a.evidence.observed_s
    # more evidence of the same distribution: the window's lower end never rises, the ring never shrinks
    assert _token(b.token_min_ms) <= _token(a.token_min_ms)
    assert _nodes(b.max_nodes) >= _nodes(a.max_nodes)
    # ... and the model's conservative figures and interval end move the same way
    assert _token(long.min_safe_token_ms) <= _token(short.min_safe_token_ms)
    assert long.max_safe_nodes >= short.max_safe_nodes
    assert long.false_losses_per_year_high <= short.false_losses_per_year_high * (1 + 1e-9)
    # the point estimate is the same: only the evidence changed
    assert long.false_losses_per_year == pytest.approx(short.false_losses_per_year, rel=1e-6, abs=1e-300)


@PROPS
@given(stalls=distributions, seconds=seconds, token=st.sampled_from([None, 1000.0, 5000.0]),
       nodes=st.integers(2, 9))
def test_the_token_is_never_lowered_beyond_the_evidence(stalls: list[int], seconds: float, token: float | None,
                                                        nodes: int) -> None:
    m = ring.run_model([_node(_hist(stalls), seconds)], ring.ModelParams(nodes=nodes, token_ms=token))
    a = m.answers
    assert a is not None
    if a.token_min_ms is not None and a.token_min_ms < m.effective_token_ms:
        assert a.evidence.covered
        assert a.evidence.observed_s * a.evidence.max_extrapolation >= a.evidence.target_period_s
    if not a.evidence.covered:
        assert a.token_min_ms is None or a.token_min_ms >= m.effective_token_ms
        assert a.max_nodes is None or a.max_nodes * m.target_years_per_false_loss * SECONDS_PER_YEAR <= (
            a.evidence.observed_s * a.evidence.max_extrapolation)
    # the recommendation meets the target at the conservative end, not only at the point estimate
    if a.token_min_ms is not None and m.min_safe_token_ms is not None:
        assert a.token_min_ms >= m.min_safe_token_ms


@PROPS
@given(stalls=distributions, seconds=st.floats(min_value=1.0, max_value=1e6),
       xs=st.lists(st.integers(1, 5000), min_size=2, max_size=8))
def test_interval_holds_the_point_and_its_ends_fall_with_longer_stalls(stalls: list[int], seconds: float,
                                                                      xs: list[int]) -> None:
    rate = StallRate(_hist(stalls), int(seconds * 1e9), 1.0, "test")
    last_hi = last_lo = math.inf
    for x in sorted(v * MS / 10 for v in xs):
        lo, hi = rate.interval(x)
        assert lo <= rate.rate(x) <= hi
        assert hi <= last_hi * (1 + 1e-12) and lo <= last_lo * (1 + 1e-12)
        last_hi, last_lo = hi, lo


def test_years_of_quiet_observation_support_a_lower_token() -> None:
    # The other side of the bound: enough observation of a quiet node does move the window down.
    quiet = _hist(_stalls(1, 20_000, 50, []))
    long = ring.run_model([_node(quiet, 5 * SECONDS_PER_YEAR)], ring.ModelParams(nodes=3))
    short = ring.run_model([_node(quiet, 60.0)], ring.ModelParams(nodes=3))
    assert long.answers is not None and short.answers is not None
    assert long.answers.evidence.covered and not short.answers.evidence.covered
    assert long.answers.token_min_ms is not None and long.answers.token_min_ms < long.effective_token_ms
    assert short.answers.token_min_ms == short.effective_token_ms == 3650
    assert long.answers.max_nodes is not None and long.answers.max_nodes >= 2 and short.answers.max_nodes is None
    assert "observed for 3.0 years" in short.answers.token_basis  # 3 nodes x 10 years / 10


def test_a_node_that_stalls_past_the_tolerance_raises_the_token_whatever_the_evidence() -> None:
    # Raising is always within the evidence: seconds of data suffice to show a token is too short.
    bad = _hist(_stalls(2, 5000, 50, [2500] * 20))
    m = ring.run_model([_node(bad, 300.0)], ring.ModelParams(nodes=3))
    assert m.answers is not None and not m.answers.evidence.covered
    assert m.answers.token_min_ms is None or m.answers.token_min_ms > m.effective_token_ms
    assert "raise T" in m.answers.token_basis or "no effective token" in m.answers.token_basis


def _pareto(seed: int, n: int, alpha: float, scale_us: int) -> list[int]:
    r = random.Random(seed)
    return [int(scale_us * 1000 * r.paretovariate(alpha)) for _ in range(n)]


@pytest.mark.parametrize(("alpha", "scale_us", "warned"), [(3.0, 1000, False), (1.5, 1000, True)])
def test_a_heavier_tail_is_a_warning_only_where_it_changes_the_finding(alpha: float, scale_us: int,
                                                                         warned: bool) -> None:
    # Both have a clearly heavy top 1 %; only the second would put the ring over the target.
    h = _hist(_stalls(3, 20_000, 50, []) + _pareto(4, 300, alpha, scale_us))
    m = ring.run_model([_node(h, 60.0)], ring.ModelParams())
    (part,) = [nm.tail for nm in m.node_models if nm.tail and not nm.assumed]
    assert part.shape_xi_estimate > 0.1 and part.shape_xi == 0  # heavy-looking, modelled light
    assert m.false_losses_per_year <= 1 / m.target_years_per_false_loss
    assert any("heavier tail" in w for w in m.warnings) is warned, m.warnings


def test_verdict_from_seconds_keeps_the_default_token_and_says_what_would_settle_it(tmp_path: Path) -> None:
    proc = fsyncprobe("verdict", str(tmp_path), "--no-corosync-conf", "--json", "--no-progress",
                      "--duration", "3s", "--warmup", "0s")
    data = verdict_json(proc)
    a = data["model"]["answers"]
    assert a["evidence"]["observed_s"] < 60 and not a["evidence"]["covered"]
    assert a["token_min_setting_ms"] is None or a["token_min_setting_ms"] >= 3000  # corosync's default token
    assert "fsyncprobe watch" in a["token_basis"] and "observed for" in a["token_basis"]
    assert a["max_nodes"] is None
    # the table shows the answers first, before the verdict's findings
    saved = tmp_path / "verdict.json"
    saved.write_text(proc.stdout)
    table = fsyncprobe("model", "--from-report", str(saved), "--no-corosync-conf").stdout
    assert table.index("Answers") < table.index("Token-ring model")
    assert "minimum safe token" not in table and "% interval" not in table.split("Clocks")[0]

