"""fsyncprobe/ring/reforms.py: the chance that a stall re-forms the ring, the expected count and
the counting-noise interval of the end-to-end rate check; and the distribution that check draws
its stalls from (tests/ringrate.py). Pure: no ring."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsyncprobe.ring import reforms
from fsyncprobe.ring.transition import Transition
from tests.ringrate import LogNormalStalls

prob = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
ms = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False)


def test_step_and_ramp() -> None:
    assert reforms.reform_probability(618.9, 619) == 0.0
    assert reforms.reform_probability(619, 619) == 1.0
    assert reforms.reform_probability(619, 619, 412) == 0.5
    assert reforms.reform_probability(619 - 206, 619, 412) == 0.0
    assert reforms.reform_probability(619 + 206, 619, 412) == 1.0
    assert reforms.reform_probability(619 + 103, 619, 412) == pytest.approx(0.75)
    assert reforms.expected_reforms([100, 619, 722, 2000], 619, 412) == pytest.approx(0 + 0.5 + 0.75 + 1)


@given(a=ms, b=ms, tol=ms, width=st.floats(min_value=0.0, max_value=2000.0))
def test_probability_is_monotone_in_the_stall(a: float, b: float, tol: float, width: float) -> None:
    lo, hi = sorted((a, b))
    p_lo, p_hi = (reforms.reform_probability(x, tol, width) for x in (lo, hi))
    assert 0.0 <= p_lo <= p_hi <= 1.0


@given(stall=ms, tol=ms, width=st.floats(min_value=1.0, max_value=2000.0))
def test_a_narrower_ramp_moves_towards_the_step(stall: float, tol: float, width: float) -> None:
    step = reforms.reform_probability(stall, tol)
    wide, narrow = reforms.reform_probability(stall, tol, width), reforms.reform_probability(stall, tol, width / 2)
    assert abs(narrow - step) <= abs(wide - step) + 1e-12


@given(st.lists(prob, max_size=60))
def test_count_distribution_is_the_poisson_binomial(ps: list[float]) -> None:
    pmf = reforms.count_distribution(ps)
    assert len(pmf) == len(ps) + 1
    assert sum(pmf) == pytest.approx(1.0)
    mean = sum(k * m for k, m in enumerate(pmf))
    var = sum(k * k * m for k, m in enumerate(pmf)) - mean ** 2
    assert mean == pytest.approx(sum(ps), abs=1e-9)
    assert var == pytest.approx(sum(p * (1 - p) for p in ps), abs=1e-7)


def test_equal_probabilities_give_the_binomial() -> None:
    n, q = 40, 0.3
    pmf = reforms.count_distribution([q] * n)
    for k in range(n + 1):
        assert pmf[k] == pytest.approx(math.comb(n, k) * q ** k * (1 - q) ** (n - k), rel=1e-9, abs=1e-300)


@given(st.lists(prob, min_size=1, max_size=60), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_interval_is_central_and_tightest(ps: list[float], level: float) -> None:
    lo, hi = reforms.count_interval(ps, level)
    pmf = reforms.count_distribution(ps)
    tail = (1 - level) / 2
    assert 0 <= lo <= hi <= len(ps)
    assert sum(pmf[:lo]) <= tail + 1e-12
    assert sum(pmf[hi + 1:]) <= tail + 1e-12
    # One step further in on either side would leave more than the tail outside.
    if lo < len(ps):
        assert sum(pmf[:lo + 1]) > tail - 1e-12
    if hi > 0:
        assert sum(pmf[hi:]) > tail - 1e-12


def test_certain_events_leave_no_noise() -> None:
    assert reforms.count_interval([1.0] * 7 + [0.0] * 5) == (7, 7)


def test_interval_covers_a_simulated_count() -> None:
    rng = random.Random(3)
    ps = [rng.random() for _ in range(150)]
    lo, hi = reforms.count_interval(ps, 0.9)
    inside = sum(lo <= sum(rng.random() < p for p in ps) <= hi for _ in range(4000))
    assert 0.88 <= inside / 4000 <= 0.95


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        reforms.count_distribution([1.5])
    with pytest.raises(ValueError):
        reforms.count_interval([0.5], 1.0)


def test_lognormal_stalls_predictions_match_their_draws() -> None:
    dist = LogNormalStalls(median_ms=550, sigma=0.6, cap_ms=1500)
    draws = dist.draw(40_000, seed=5)
    assert draws == dist.draw(40_000, seed=5)
    assert max(draws) == 1500
    assert sorted(draws)[20_000] == pytest.approx(550, rel=0.03)
    for chance in (Transition(619, 0, 0).probability, Transition(619, 600, 200).probability,
                   lambda s: reforms.reform_probability(s, 619, 412)):
        drawn = sum(chance(s) for s in draws) / len(draws)
        assert dist.p_reform(chance) == pytest.approx(drawn, abs=0.01)
    step = Transition(619, 0, 0).probability
    assert dist.p_reform(step) == pytest.approx(0.4225, abs=0.001)  # 1 - Phi(ln(619/550) / 0.6)
    assert LogNormalStalls(550, 0.6, 600).p_reform(step) == 0.0


def test_knet_ramp_width_counts_whole_ticks() -> None:
    # T = 1650 ms: knet_ping_interval 412 ms -> a ping every third 200 ms tick, + one tick.
    assert reforms.knet_ramp_width_ms(412) == 800
    assert reforms.knet_ramp_width_ms(400) == 600
    assert reforms.knet_ramp_width_ms(401) == 800
    assert reforms.knet_ramp_width_ms(912, tick_ms=100) == 1100
