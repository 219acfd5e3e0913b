"""Rare stalls: the rate of stalls longer than x, from a histogram and the time it covers.

Empirical where the data reach x; beyond them a generalised Pareto tail fitted to the samples
above the 99th percentile (probability-weighted moments, Hosking & Wallis 1987), never lighter
than exponential, with an analytic confidence interval. Pure: no I/O, no clock.

Why a quantile threshold and an analytic interval (docs/model.md, "Evidence-bounded answers"):
the same distribution observed m times as long (every count x m, the time x m) selects exactly
the same buckets and the same mean excess, so the point rate is unchanged and every bound is
tighter. That makes "less data never gives a less conservative answer" a property of the
construction, not a hope about a bootstrap, and it is what the property tests check.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from fsyncprobe.ring.types import TailFit
from fsyncprobe.stats.histogram import Histogram, bucket_value
from fsyncprobe.stats.summary import SavedHistogram

TAIL_FRACTION = 0.01
"""The tail fit uses the samples in the buckets above the 99th percentile (whole buckets: a
bucket is in while fewer than 1 % of the samples lie above it)."""
TAIL_MIN_EXCEEDANCES = 10
"""Fewer samples than this above the threshold: no fitted tail, only the empirical rate."""
CI_LEVEL = 0.90
"""Two-sided confidence level of every interval reported; its upper end is the conservative end
every recommendation must meet (one-sided 95 %)."""
XI_MAX_DEFAULT = 0.0
"""Default upper clamp of the fitted tail shape: 0, an exponential tail. Scheduling lateness is
microseconds in bulk; a heavy-tailed fit to its top 1 % extrapolated over three orders of
magnitude to a stall tolerance of seconds says more about the fit than about the machine (an idle
VM came out at thousands of false changes a year). So the default is the light tail, stated as an
assumption, and a warning gives the heavy-tail figure whenever the data's own shape estimate is
clearly positive and would change the verdict (`ModelParams.tail_shape_max` / `--tail-shape-max`
to use it)."""
XI_ESTIMATE_MAX = 0.9
"""Clamp of the reported (unused by default) shape estimate."""


def _gpd_fit(excess: Sequence[tuple[float, int]], xi_max: float = XI_MAX_DEFAULT) -> tuple[float, float]:
    """Generalised Pareto (shape, scale) of exceedances given as (excess, count) pairs, by
    probability-weighted moments (Hosking & Wallis 1987, Technometrics 29:339) with plotting
    positions (i + 0.65) / k; shape clamped to [0, xi_max] so the tail is never assumed lighter
    than exponential; scale then from the mean, scale = mean x (1 - shape), which keeps the fit
    exactly scale-equivariant."""
    k = sum(c for _, c in excess)
    if k == 0:
        return 0.0, 0.0
    a0 = sum(y * c for y, c in excess) / k
    if a0 <= 0:
        return 0.0, 0.0
    a1 = 0.0
    rank = 0  # samples below this bucket, ascending
    for y, c in sorted(excess):
        # sum over ranks i = rank .. rank + c - 1 of (1 - (i + 1 - 0.35) / k), in closed form
        a1 += y * (c - (c * (2 * rank + c + 1) / 2 - 0.35 * c) / k)
        rank += c
    a1 /= k
    denom = a0 - 2 * a1
    xi = 0.0
    if denom > 0:
        xi = -(a0 / denom - 2)  # Hosking & Wallis's k is -xi
    xi = min(max(xi, 0.0), xi_max)
    return xi, a0 * (1 - xi)


def _survival(y: float, xi: float, scale: float) -> float:
    if scale <= 0:
        return 0.0 if y > 0 else 1.0
    if xi <= 1e-9:
        return math.exp(-y / scale)
    return (1 + xi * y / scale) ** (-1 / xi)


def _poisson_ci(count: float, level: float = CI_LEVEL) -> tuple[float, float]:
    """Two-sided interval for a Poisson mean from one count (Byar's approximation; exact at 0).

    Both ends divided by the count fall towards 1 as the count grows, which is what makes more
    evidence of the same rate give a tighter interval."""
    z = _z(level)
    alpha = (1 - level) / 2
    low = 0.0 if count == 0 else count * (1 - 1 / (9 * count) - z / (3 * math.sqrt(count))) ** 3
    c1 = count + 1
    high = -math.log(alpha) if count == 0 else c1 * (1 - 1 / (9 * c1) + z / (3 * math.sqrt(c1))) ** 3
    return max(low, 0.0), high


def _scale_ci(k: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Two-sided interval of an exponential scale over its estimate (the mean of k excesses):
    2 k mean / scale is chi-square with 2k degrees of freedom, exactly, for exponential excesses;
    quantiles by Wilson and Hilferty's cube-root approximation (1931, PNAS 17:684), within 1 %
    from 20 degrees of freedom (k >= TAIL_MIN_EXCEEDANCES)."""
    z = _z(level)
    nu = 2 * k
    a = 2 / (9 * nu)

    def chi2(zq: float) -> float:
        return nu * max(1 - a + zq * math.sqrt(a), 1e-9) ** 3

    return nu / chi2(z), nu / chi2(-z)


def _z(level: float) -> float:
    # Two-sided normal quantile by bisection on erf (stdlib only).
    target = (1 + level) / 2
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class StallRate:
    """Rate per second of samples longer than x, from a histogram and the time it covers."""

    def __init__(self, hist: SavedHistogram, measured_ns: int, scale: float, source: str,
                 xi_max: float = XI_MAX_DEFAULT) -> None:
        """`scale` multiplies every sample (the coupling); `measured_ns` is the time base."""
        self.source = source
        self.xi_max = xi_max
        self.scale = scale
        self.measured_s = max(measured_ns, 1) / 1e9
        # (value in ns, count), largest first; values are bucket midpoints (within 0.4 %).
        pairs = sorted(((bucket_value(i) * scale, c) for i, c in hist.buckets if c > 0), reverse=True)
        self.pairs = pairs
        self._ascending = [v for v, _ in reversed(pairs)]
        above_each = [0]
        for _, c in pairs:  # largest first: above_each[j] = samples in the j largest values
            above_each.append(above_each[-1] + c)
        # _above[i] = samples whose value is above the i smallest values
        self._above = list(reversed(above_each))
        self.total = sum(c for _, c in pairs)
        # Whole buckets from the top while fewer than TAIL_FRACTION of the samples lie above;
        # the threshold u is the next bucket down (0 when every sample is in).
        top: list[tuple[float, int]] = []
        above = 0
        u = 0.0
        for v, c in pairs:
            if above < TAIL_FRACTION * self.total:
                top.append((v, c))
                above += c
            else:
                u = v
                break
        self.u = u
        self.k = above
        excess = [(v - u, c) for v, c in top]
        self.mean_excess = sum(y * c for y, c in excess) / above if above else 0.0
        self.fitted = self.k >= TAIL_MIN_EXCEEDANCES and self.mean_excess > 0
        self.xi, self.sigma = _gpd_fit(excess, xi_max) if self.fitted else (0.0, 0.0)
        self.xi_estimate = _gpd_fit(excess, XI_ESTIMATE_MAX)[0] if self.fitted else 0.0
        h = Histogram.from_sparse(hist.buckets, total_sum=hist.sum_ns, min_value=hist.min_ns, max_value=hist.max_ns)
        self.max_ns = pairs[0][0] if pairs else 0.0
        self.p999_ns = h.percentile(99.9) * scale
        self.mean_ns = h.mean() * scale

    def count_above(self, x_ns: float) -> int:
        """Measured samples longer than x."""
        # by bisection over the values ascending: the rate is averaged over a transition
        # (ring/transition.py), so it is asked at many x
        return self._above[bisect.bisect_right(self._ascending, x_ns)]

    def _tail(self, x_ns: float, k: float, xi: float, sigma: float) -> float:
        return k / self.measured_s * _survival(max(x_ns - self.u, 0.0), xi, sigma)

    def fitted_rate(self, x_ns: float) -> float:
        """The fitted tail's rate of samples longer than x (the exceedance rate below u)."""
        if not self.fitted:
            return 0.0
        return self._tail(x_ns, self.k, self.xi, self.sigma)

    def rate_with_shape(self, x_ns: float, xi: float) -> float:
        """`rate(x)` had the tail shape been `xi` (scale from the mean excess, as in the fit)."""
        if not self.fitted:
            return self.rate(x_ns)
        return max(self.count_above(x_ns) / self.measured_s, self._tail(x_ns, self.k, xi, self.mean_excess * (1 - xi)))

    def rate(self, x_ns: float) -> float:
        """Events per second longer than x: the larger of the measured rate and the fitted tail.

        Taking the larger keeps the estimate monotone: longer stalls (every sample larger) never
        give a smaller rate, which the minimum-token and maximum-ring searches rely on."""
        return max(self.count_above(x_ns) / self.measured_s, self.fitted_rate(x_ns))

    def extrapolated(self, x_ns: float) -> bool:
        """True when the fitted tail, not observed stalls, gives the rate at x (also where the
        tail's rate is too small for a float: no sample reached x, so only the tail speaks)."""
        if not self.fitted:
            return False
        count = self.count_above(x_ns)
        return count == 0 or self.fitted_rate(x_ns) > count / self.measured_s

    def interval(self, x_ns: float) -> tuple[float, float]:
        """CI_LEVEL interval of `rate(x)`, never excluding the point estimate: Poisson on the
        count of observed stalls longer than x, and, with a fitted tail, the tail's rate with its
        exceedance count and its scale at their own interval ends (each a two-sided CI_LEVEL
        interval, so the pair is conservative). With no fitted tail and nothing observed beyond
        x the upper end is what zero events in the measured time allow: -ln(0.05) / time.

        Every end is non-increasing in x and, for the same distribution observed longer (counts
        and time x m), no wider: the bounds every recommendation rests on (docs/model.md)."""
        point = self.rate(x_ns)
        count = self.count_above(x_ns)
        lo_c, hi_c = _poisson_ci(count)
        lo, hi = lo_c / self.measured_s, hi_c / self.measured_s
        if count == 0 and self.fitted:
            hi = 0.0  # the fitted tail speaks for the region no sample reached
        if self.fitted:
            k_lo, k_hi = _poisson_ci(self.k)
            s_lo, s_hi = _scale_ci(self.k)
            lo = max(lo, self._tail(x_ns, k_lo, self.xi, self.sigma * s_lo))
            hi = max(hi, self._tail(x_ns, k_hi, self.xi, self.sigma * s_hi))
        return min(lo, point), max(hi, point)

    def upper(self, x_ns: float) -> float:
        """The conservative end of `interval(x)`: what a recommendation must meet."""
        return self.interval(x_ns)[1]

    def describe(self) -> TailFit:
        """The fit, for the report."""
        return TailFit(
            source=self.source, samples=self.total, measured_s=self.measured_s, max_ms=self.max_ns / 1e6,
            p999_ms=self.p999_ns / 1e6, mean_ms=self.mean_ns / 1e6, threshold_ms=self.u / 1e6,
            exceedances=self.k, shape_xi=self.xi, scale_ms=self.sigma / 1e6, fitted=self.fitted,
            shape_xi_estimate=self.xi_estimate,
        )
