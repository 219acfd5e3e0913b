"""bench/compare.py's per-operation percentiles of fio (issue 7): fio reports the write and the
fdatasync as two histograms; the script combines them into the distribution of their sum."""

from __future__ import annotations

import importlib.util
import itertools
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
