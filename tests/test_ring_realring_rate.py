"""The model's rate against a real Corosync ring (issue 17): six rings of tests/ringkit.py side by
side, one node of each stopped with SIGSTOP again and again for lengths drawn (seeded) from a
known log-normal distribution whose mass straddles the stall tolerance; the membership changes
the survivors really formed are counted and must lie inside the 99 % interval of the counting
noise around what the model's own P(s) predicts from the same distribution (tests/ringrate.py has the
procedure; bench/ringrate.py is the long run, its results are in docs/validation.md).

Root only; CI runs as root. Everything the rings create is removed by name and pid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.ringkit import Ring
from tests.ringrate import LogNormalStalls, model_view, predictions, run_series, table

pytestmark = [pytest.mark.root, pytest.mark.slow]

RINGS = 6
STALLS_PER_RING = 24
DIST = LogNormalStalls(median_ms=550, sigma=0.6, cap_ms=1500)
"""About 42 % of these stalls are longer than the model's 619 ms, and a third lie on the model's
transition (219-1019 ms) but below the tolerance: a useful fraction re-forms, and its width shows."""
LEVEL = 0.99
SEED = 17


def test_membership_changes_match_model_rate(make_ring: Callable[..., Ring]) -> None:
    rings = [make_ring(f"r{k}") for k in range(RINGS)]
    for r in rings:
        r.wait_formed()
    view = model_view()
    assert view.bound == "knet link"
    stalls = [DIST.draw(STALLS_PER_RING, SEED + k) for k in range(RINGS)]
    time.sleep(10)  # links came up with libknet's 10 x back-off; let it decay (tests/ringrate.py)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=RINGS) as pool:
        runs = list(pool.map(lambda k: run_series(rings[k], k, stalls[k], seed=100 + k), range(RINGS)))
    elapsed = time.monotonic() - t0
    trials = [t for run in runs for t in run]
    print(f"\n{len(trials)} stalls in {elapsed:.0f} s\n" + table(DIST, trials, view, LEVEL))
    assert len(trials) == RINGS * STALLS_PER_RING
    counted = sum(1 for t in trials if t.memberships)
    # The model's own prediction: P(s), the chance that a stall of s re-forms the ring, as
    # run_model's false-loss rate uses it (model.reform_transition), for stalls drawn from the
    # distribution (a binomial count) and for the stalls as they happened (Poisson-binomial). The
    # old step and the linear ramp are printed beside it, not asserted (docs/validation.md, "Rate
    # of membership changes").
    wanted = [p for p in predictions(DIST, trials, view, LEVEL) if p.name.startswith("model P(s)")]
    assert len(wanted) == 2
    for p in wanted:
        assert p.low <= counted <= p.high, (counted, p)
    # Stalls below the transition keep the ring, above it re-form it.
    short = [t for t in trials if t.actual_ms < view.transition.lower_ms]
    long = [t for t in trials if t.actual_ms > view.transition.upper_ms]
    assert short and long
    assert sum(1 for t in short if t.memberships) <= 0.1 * len(short), short
    assert sum(1 for t in long if t.memberships) >= 0.9 * len(long), long
