"""Parsing and formatting of sizes and durations given on the command line or in profiles.

Sizes use binary multiples like fio and dd (`4k` = 4096 bytes, `1M` = 1 MiB); a bare number is
bytes. Durations take `ns`, `us`, `ms`, `s`, `m`, `h`; a bare number is seconds.
"""

from __future__ import annotations

import re
from fractions import Fraction

# re.ASCII: without it IGNORECASE folds U+017F (long s) onto `s` and U+212A (Kelvin) onto `k`,
# and `\d` takes any script's digits; the unit then is no key of the tables below (a KeyError,
# i.e. a traceback, found by tests/test_parsers_property.py).
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b?)\s*$", re.IGNORECASE | re.ASCII)
_SIZE_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}

_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|μs|ms|s|sec|m|min|h)?\s*$", re.IGNORECASE | re.ASCII)
_DUR_NS = {
    None: 1_000_000_000,
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN, what format_duration_ns writes
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU, what many keyboards type
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "sec": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_size(text: str) -> int:
    """Return the number of bytes `text` names (`4k`, `2300`, `1M`, `8KiB`).

    Raises ValueError with a short reason for anything else, including fractions of a byte.
    """
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (examples: 4k, 2300, 1M, 64MiB)")
    number, unit, _ = m.groups()
    value = _exact(text, number) * _SIZE_MULT[unit.lower()]
    if value.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


_MAX_DIGITS = 30  # far beyond any real size or duration; keeps a pasted wall of digits a ValueError


def _exact(text: str, number: str) -> Fraction:
    """The decimal `number` exactly (floats would turn 2**60 + 1 bytes into 2**60 silently)."""
    if len(number) > _MAX_DIGITS:
        raise ValueError(f"{text!r} is too large")
    return Fraction(number)


def parse_duration_ns(text: str) -> int:
    """Return the nanoseconds `text` names (`3s`, `1m`, `250ms`, `1.5`); negative is refused."""
    m = _DUR_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (examples: 3s, 250ms, 1m, 1.5h)")
    number, unit = m.groups()
    return round(_exact(text, number) * _DUR_NS[unit.lower() if unit else None])


def format_size(n_bytes: float) -> str:
    """`4096` -> `4.0 KiB`; exact bytes below 1 KiB."""
    if n_bytes < 1024:
        return f"{int(n_bytes)} B"
    value = float(n_bytes)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value:.1f} EiB"


def format_duration_ns(ns: float) -> str:
    """A latency with three significant digits in the unit that fits (`812 µs`, `3.41 ms`)."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    for div, unit in ((1_000, "µs"), (1_000_000, "ms"), (1_000_000_000, "s")):
        value = ns / div
        if value < 1_000 or unit == "s":
            if value >= 100:
                return f"{value:.0f} {unit}"
            if value >= 10:
                return f"{value:.1f} {unit}"
            return f"{value:.2f} {unit}"
    raise AssertionError("unreachable")


RATE_FLOOR_YEARS = 1_000_000
"""Beyond one event per this many years a rate prints as "fewer than ...": the model's tail
extrapolation means nothing that far out (a printed "1 per 2.58e+168 years" claimed a precision
no measurement has)."""


def format_rate_per_year(per_year: float) -> str:
    """An expected event rate: `2.40 per year`, `1 per 37.5 years`, `fewer than 1 per 1,000,000
    years`, `0 per year`."""
    if per_year <= 0:
        return "0 per year"
    if per_year >= 0.1:
        return f"{per_year:,.2f} per year"
    if 1 / per_year > RATE_FLOOR_YEARS:
        return f"fewer than 1 per {RATE_FLOOR_YEARS:,} years"
    return f"1 per {1 / per_year:,.3g} years"


def format_seconds(seconds: float) -> str:
    """A span of observation in the unit a reader plans with: `7.2 s`, `45 min`, `3.5 h`,
    `12 days`, `3.0 years`."""
    if seconds == float("inf"):
        return "forever"
    for limit, div, unit in ((120, 1, "s"), (7200, 60, "min"), (172_800, 3600, "h"),
                             (2 * 365.25 * 86400, 86400, "days")):
        if seconds < limit:
            v = seconds / div
            return f"{v:.1f} {unit}" if v < 10 else f"{v:,.0f} {unit}"
    return f"{seconds / (365.25 * 86400):,.1f} years"
