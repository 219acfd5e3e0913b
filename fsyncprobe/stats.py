"""Summaries of latency distributions."""

from __future__ import annotations

from fsyncprobe.histogram import Histogram
from fsyncprobe.report import LatencySummary


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
