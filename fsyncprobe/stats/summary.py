"""The frozen forms of a latency distribution that reports carry, and how to make them.

`Histogram` (`fsyncprobe.stats.histogram`) is the live, mutable counter the measuring loop fills;
`SavedHistogram` is its frozen, JSON-ready copy and `LatencySummary` its statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsyncprobe.stats.histogram import SUB_BITS, Histogram


@dataclass(frozen=True)
class LatencySummary:
    """Statistics of a latency distribution, in nanoseconds (percentiles within 0.4 %)."""

    count: int
    """Number of samples."""
    mean_ns: float
    """Arithmetic mean (exact)."""
    stddev_ns: float
    """Population standard deviation (exact)."""
    min_ns: int
    """Smallest sample (exact)."""
    p50_ns: int
    """Median."""
    p90_ns: int
    """90th percentile."""
    p99_ns: int
    """99th percentile."""
    p999_ns: int
    """99.9th percentile."""
    max_ns: int
    """Largest sample (exact)."""


@dataclass(frozen=True)
class SavedHistogram:
    """A histogram in a report, so `model` and `cluster` can reuse the whole distribution."""

    buckets: tuple[tuple[int, int], ...]
    """(bucket index, count) for non-empty buckets; see `fsyncprobe.stats.histogram.bucket_bounds`."""
    sum_ns: int
    """Exact sum of all samples."""
    min_ns: int
    """Exact smallest sample."""
    max_ns: int
    """Exact largest sample."""
    sub_bucket_bits: int = 7
    """Resolution the buckets were made with (`histogram.SUB_BITS`)."""
    sum_squares_ns2: int | None = None
    """Exact sum of squared samples, so the standard deviation survives a round trip."""

    @classmethod
    def of(cls, h: Histogram) -> SavedHistogram:
        """Freeze a live histogram."""
        return cls(
            buckets=tuple((i, c) for i, c in h.to_sparse()),
            sum_ns=h.sum_value,
            min_ns=max(h.min_value, 0),
            max_ns=h.max_value,
            sum_squares_ns2=h.sum_sq,
        )

    def to_histogram(self) -> Histogram:
        """Rebuild a live histogram (raises ValueError on a bucket out of range)."""
        if self.sub_bucket_bits != SUB_BITS:
            raise ValueError(f"histogram resolution {self.sub_bucket_bits} bits, expected {SUB_BITS}")
        # No real run holds 2**53 operations (285 years at a million a second). A saved count
        # beyond that is corrupt and would overflow the signed 64-bit counters (OverflowError,
        # a traceback in `model --from-report`; found by tests/test_parsers_property.py).
        total = sum(max(0, count) for _, count in self.buckets)
        if total >= 1 << 53:
            raise ValueError(f"histogram holds {total} samples: not a measured run")
        h = Histogram.from_sparse(self.buckets, total_sum=self.sum_ns, min_value=self.min_ns, max_value=self.max_ns)
        if self.sum_squares_ns2 is not None:
            h.sum_sq = self.sum_squares_ns2
        return h


def summarize(h: Histogram) -> LatencySummary:
    """Count, exact mean/stddev/min/max, and percentiles (within 0.4 %) of a histogram."""
    return LatencySummary(
        count=h.total,
        mean_ns=h.mean(),
        stddev_ns=h.stddev(),
        min_ns=max(h.min_value, 0),
        p50_ns=h.percentile(50),
        p90_ns=h.percentile(90),
        p99_ns=h.percentile(99),
        p999_ns=h.percentile(99.9),
        max_ns=h.max_value,
    )
