"""The latency histogram: bounded relative error, bounded memory, exact moments."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from fsyncprobe.stats.histogram import MAX_RELATIVE_ERROR, N_BUCKETS, Histogram, bucket_bounds, bucket_index
from fsyncprobe.stats.summary import SavedHistogram, summarize

latencies = st.lists(st.integers(min_value=0, max_value=2**42), min_size=1, max_size=400)


def nearest_rank(sorted_values: list[int], q: float) -> int:
    rank = max(1, math.ceil(len(sorted_values) * q / 100))
    return sorted_values[rank - 1]


@given(latencies, st.sampled_from([1, 50, 90, 99, 99.9]))
def test_percentiles_are_within_the_stated_relative_error(values: list[int], q: float) -> None:
    h = Histogram()
    h.record_many(values)
    exact = nearest_rank(sorted(values), q)
    got = h.percentile(q)
    assert abs(got - exact) <= exact * MAX_RELATIVE_ERROR + 0.5
    assert MAX_RELATIVE_ERROR < 0.01  # the bench issue asks for <= 1 %


@given(latencies)
def test_record_and_record_many_agree_and_moments_are_exact(values: list[int]) -> None:
    a, b = Histogram(), Histogram()
    for v in values:
        a.record(v)
    b.record_many(values)
    assert list(a.counts) == list(b.counts)
    assert a.total == b.total == len(values)
    assert a.sum_value == b.sum_value == sum(values)
    assert a.min_value == min(values) and a.max_value == max(values)
    assert math.isclose(a.mean(), sum(values) / len(values))


@given(st.integers(min_value=0, max_value=2**43 - 1))
def test_every_value_lies_inside_its_bucket(value: int) -> None:
    low, high = bucket_bounds(bucket_index(value))
    assert low <= value <= high
    assert high - low <= max(1, low) * 2 * MAX_RELATIVE_ERROR


@settings(max_examples=30)
@given(latencies)
def test_saved_histogram_round_trips(values: list[int]) -> None:
    h = Histogram()
    h.record_many(values)
    back = SavedHistogram.of(h).to_histogram()
    assert summarize(back) == summarize(h)


def test_memory_does_not_grow_with_the_number_of_samples() -> None:
    h = Histogram()
    size_before = len(h.counts)
    h.record_many(range(0, 10**9, 997))  # a million samples spread over 1 s
    assert len(h.counts) == size_before == N_BUCKETS
    assert h.total == len(range(0, 10**9, 997))
    # far beyond the top bucket: clamped, never an IndexError
    h.record(2**60)
    assert h.max_value == 2**60 and h.percentile(100) == 2**60
