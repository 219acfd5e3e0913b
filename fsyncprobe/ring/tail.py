"""Rare stalls: the rate of stalls longer than x, from a histogram and the time it covers.

Empirical where the data reach x; beyond them a generalised Pareto tail fitted to the largest
samples (probability-weighted moments, Hosking & Wallis 1987), never lighter than exponential,
with a seeded bootstrap confidence interval. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from fsyncprobe.ring.types import TailFit
from fsyncprobe.stats.histogram import Histogram, bucket_value
from fsyncprobe.stats.summary import SavedHistogram

TAIL_MAX_EXCEEDANCES = 500
"""At most this many of the largest samples feed the tail fit (the top 1 % when fewer)."""
TAIL_MIN_EXCEEDANCES = 10
"""Fewer samples than this: no fitted tail, only the empirical rate."""
BOOTSTRAP_ROUNDS = 200
"""Bootstrap resamples for the confidence interval (seeded: `ModelParams.seed`)."""
CI_LEVEL = 0.90
"""Two-sided confidence level of every interval reported."""
XI_MAX_DEFAULT = 0.0
"""Default upper clamp of the fitted tail shape: 0, an exponential tail. Scheduling lateness is
microseconds in bulk; a heavy-tailed fit to its top 1 % extrapolated over three orders of
magnitude to a stall tolerance of seconds says more about the fit than about the machine (an idle
VM came out at thousands of false changes a year). So the default is the light tail, stated as an
assumption, and a warning gives the heavy-tail figure whenever the data's own shape estimate is
clearly positive (`ModelParams.tail_shape_max` / `--tail-shape-max` to use it)."""
XI_ESTIMATE_MAX = 0.9
"""Clamp of the reported (unused by default) shape estimate."""


def _gpd_fit(excess: Sequence[float], xi_max: float = XI_MAX_DEFAULT) -> tuple[float, float]:
    """Generalised Pareto (shape, scale) of exceedances by probability-weighted moments
    (Hosking & Wallis 1987, Technometrics 29:339), shape clamped to [0, xi_max] so the tail is
    never assumed lighter than exponential; scale then from the mean, scale = mean x (1 - shape),
    which keeps the fit exactly scale-equivariant."""
    k = len(excess)
    ys = sorted(excess)
    a0 = sum(ys) / k
    if a0 <= 0:
        return 0.0, 0.0
    a1 = sum((1 - (i + 1 - 0.35) / k) * y for i, y in enumerate(ys)) / k
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


def _poisson_ci(count: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Two-sided interval for a Poisson mean from one count (Byar's approximation; exact at 0)."""
    z = _z(level)
    alpha = (1 - level) / 2
    low = 0.0 if count == 0 else count * (1 - 1 / (9 * count) - z / (3 * math.sqrt(count))) ** 3
    c1 = count + 1
    high = -math.log(alpha) if count == 0 else c1 * (1 - 1 / (9 * c1) + z / (3 * math.sqrt(c1))) ** 3
    return max(low, 0.0), high


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
        self.total = sum(c for _, c in pairs)
        k = min(TAIL_MAX_EXCEEDANCES, max(TAIL_MIN_EXCEEDANCES, self.total // 100), self.total)
        # The k largest samples; the threshold u is the next one down (0 when every sample is used).
        top: list[float] = []
        u = 0.0
        for v, c in pairs:
            if len(top) < k:
                take = min(c, k - len(top))
                top.extend([v] * take)
                if take < c:
                    u = v
                    break
            else:
                u = v
                break
        self.u = u
        self.top = top
        self.excess = [v - u for v in top]
        self.fitted = len(self.excess) >= TAIL_MIN_EXCEEDANCES and sum(self.excess) > 0
        self.xi, self.sigma = _gpd_fit(self.excess, xi_max) if self.fitted else (0.0, 0.0)
        self.xi_estimate = _gpd_fit(self.excess, XI_ESTIMATE_MAX)[0] if self.fitted else 0.0
        h = Histogram.from_sparse(hist.buckets, total_sum=hist.sum_ns, min_value=hist.min_ns, max_value=hist.max_ns)
        self.max_ns = pairs[0][0] if pairs else 0.0
        self.p999_ns = h.percentile(99.9) * scale
        self.mean_ns = h.mean() * scale

    def count_above(self, x_ns: float) -> int:
        """Measured samples longer than x."""
        return sum(c for v, c in self.pairs if v > x_ns)

    def fitted_rate(self, x_ns: float) -> float:
        """The fitted tail's rate of samples longer than x (the exceedance rate below u)."""
        if not self.fitted:
            return 0.0
        return len(self.excess) / self.measured_s * _survival(max(x_ns - self.u, 0.0), self.xi, self.sigma)

    def rate_with_shape(self, x_ns: float, xi: float) -> float:
        """`rate(x)` had the tail shape been `xi` (scale from the mean excess, as in the fit)."""
        if not self.fitted:
            return self.rate(x_ns)
        mean = sum(self.excess) / len(self.excess)
        tail = len(self.excess) / self.measured_s * _survival(max(x_ns - self.u, 0.0), xi, mean * (1 - xi))
        return max(self.count_above(x_ns) / self.measured_s, tail)

    def rate(self, x_ns: float) -> float:
        """Events per second longer than x: the larger of the measured rate and the fitted tail.

        Taking the larger keeps the estimate monotone: longer stalls (every sample larger) never
        give a smaller rate, which the minimum-token and maximum-ring searches rely on."""
        return max(self.count_above(x_ns) / self.measured_s, self.fitted_rate(x_ns))

    def extrapolated(self, x_ns: float) -> bool:
        """True when the fitted tail, not observed stalls, gives the rate at x."""
        return self.fitted_rate(x_ns) > self.count_above(x_ns) / self.measured_s

    def interval(self, x_ns: float, rng: random.Random) -> tuple[float, float]:
        """CI_LEVEL interval of `rate(x)`: Poisson on the count where observed stalls give the rate,
        a bootstrap of the exceedances (and of their Poisson count) where the fitted tail does."""
        point = self.rate(x_ns)
        if not self.extrapolated(x_ns):
            lo, hi = _poisson_ci(self.count_above(x_ns))
            return min(lo / self.measured_s, point), max(hi / self.measured_s, point)
        k = len(self.excess)
        y = max(x_ns - self.u, 0.0)
        rates = []
        for _ in range(BOOTSTRAP_ROUNDS):
            sample = [self.excess[rng.randrange(k)] for _ in range(k)]
            xi, sigma = _gpd_fit(sample, self.xi_max)
            k_star = max(1.0, rng.gauss(k, math.sqrt(k)))
            rates.append(k_star / self.measured_s * _survival(y, xi, sigma))
        rates.sort()
        alpha = (1 - CI_LEVEL) / 2
        lo = rates[int(alpha * (len(rates) - 1))]
        hi = rates[math.ceil((1 - alpha) * (len(rates) - 1))]
        return min(lo, point), max(hi, point)

    def describe(self) -> TailFit:
        """The fit, for the report."""
        return TailFit(
            source=self.source, samples=self.total, measured_s=self.measured_s, max_ms=self.max_ns / 1e6,
            p999_ms=self.p999_ns / 1e6, mean_ms=self.mean_ns / 1e6, threshold_ms=self.u / 1e6,
            exceedances=len(self.excess), shape_xi=self.xi, scale_ms=self.sigma / 1e6, fitted=self.fitted,
            shape_xi_estimate=self.xi_estimate,
        )
