"""bench/compare.py's per-operation percentiles of fio (issue 7): fio reports the write and the
fdatasync as two histograms; the script combines them into the distribution of their sum."""

from __future__ import annotations

import importlib.util
import itertools
import random
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare", REPO / "bench" / "compare.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["compare"] = mod  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    return mod


compare = _compare()

_bins = st.dictionaries(st.integers(1, 10_000).map(str), st.integers(0, 5), min_size=1, max_size=8)


@given(_bins, _bins, st.sampled_from([1, 50, 90, 99, 100]))
def test_percentile_of_the_convolution_is_the_percentile_of_every_pairwise_sum(
    a: dict[str, int], b: dict[str, int], p: int
) -> None:
    # Brute force: every (write, sync) pair of samples, i.e. independence spelled out.
    xs = [int(v) for v, c in a.items() for _ in range(c)]
    ys = [int(v) for v, c in b.items() for _ in range(c)]
    sums = sorted(x + y for x, y in itertools.product(xs, ys))
    dist = compare.convolve(a, b)
    if not sums:
        assert compare.percentile(dist, p) == 0.0
        return
    rank = max(1, -(-len(sums) * p // 100))  # nearest rank: ceil(p/100 * n)
    assert compare.percentile(dist, p) == sums[rank - 1]


def test_the_sum_of_two_p99s_overstates_the_p99_of_the_sum() -> None:
    # Why the script convolves: a write that is slow 1 % of the time and a sync that is slow 1 %
    # of the time rarely meet; adding the two p99s pretends they always do.
    write = {"5": 99, "50": 1}
    sync = {"100": 99, "300": 1}
    dist = compare.convolve(write, sync)
    assert compare.percentile(dist, 99) == 150.0  # 105 for 98.01 %, then 150 (1 % x 99 %)
    assert compare.percentile(dist, 99) < 50 + 300


def _binom_cdf_half(n: int, k: int) -> float:
    """P(Bin(n, 1/2) <= k), summed term by term (independent of the code under test)."""
    return sum(compare.math.comb(n, i) for i in range(k + 1)) / 2**n


@given(st.lists(st.floats(0.5, 1.5, allow_nan=False), min_size=1, max_size=60), st.sampled_from([0.8, 0.9, 0.95]))
def test_median_interval_is_the_widest_sign_test_interval_that_keeps_its_coverage(
    xs: list[float], confidence: float
) -> None:
    ci = compare.median_ci(xs, confidence)
    n = len(xs)
    s = sorted(xs)
    # The largest k whose interval [x_(k), x_(n+1-k)] still covers the median with >= confidence.
    ks = [k for k in range(1, n // 2 + 1) if 1 - 2 * _binom_cdf_half(n, k - 1) >= confidence]
    if not ks:
        assert ci is None
        return
    k = max(ks)
    assert ci is not None
    low, high, coverage = ci
    assert (low, high) == (s[k - 1], s[n - k])
    assert low <= compare.statistics.median(xs) <= high
    assert coverage >= confidence
    assert abs(coverage - (1 - 2 * _binom_cdf_half(n, k - 1))) < 1e-12


def test_median_interval_sizes_at_the_pair_counts_the_readme_uses() -> None:
    assert compare.median_ci([1.0, 1.1, 0.9, 1.2]) is None  # 4 pairs: even (min, max) covers 87.5 %
    seven = [0.98, 0.896, 0.918, 0.986, 0.921, 1.019, 0.894]
    assert compare.median_ci(seven)[:2] == (0.894, 1.019)  # 7 pairs at 90 %: only (min, max), 98.4 %
    ci = compare.median_ci([float(i) for i in range(1, 22)])
    assert ci is not None and ci[:2] == (7.0, 15.0) and 0.92 < ci[2] < 0.93  # 21 pairs: x_7 .. x_15


def test_median_interval_covers_a_known_median_as_often_as_it_claims() -> None:
    # Ratios from a skewed distribution with a known median (exp(0) = 1 for a log-normal): over
    # 4,000 seeded draws of 9 pairs the interval must contain 1 as often as its exact coverage
    # says (1 - 2 P(Bin(9, 1/2) <= 1) = 96.1 %), whatever the shape of the distribution.
    rng = random.Random(7)
    hits = 0
    trials = 4000
    for _ in range(trials):
        xs = [rng.lognormvariate(0.0, 0.08) for _ in range(9)]
        ci = compare.median_ci(xs)
        assert ci is not None
        hits += ci[0] <= 1.0 <= ci[1]
    expected = 1 - 2 * _binom_cdf_half(9, 1)
    assert abs(hits / trials - expected) < 0.02


def test_the_waker_goes_beside_every_tool_but_fio_unless_asked(monkeypatch) -> None:
    # --waker gives the other tools what fio's parent process (a 10 ms poller) gives fio.
    monkeypatch.setattr(compare, "WAKER_CMD", None)
    assert compare.waker_for(own_waker=False) is None and compare.waker_for(own_waker=True) is None
    monkeypatch.setattr(compare, "WAKER_CMD", ["waker", "10"])
    monkeypatch.setattr(compare, "WAKER_FIO", False)
    assert compare.waker_for(own_waker=False) == ["waker", "10"]
    assert compare.waker_for(own_waker=True) is None
    monkeypatch.setattr(compare, "WAKER_FIO", True)
    assert compare.waker_for(own_waker=True) == ["waker", "10"]
