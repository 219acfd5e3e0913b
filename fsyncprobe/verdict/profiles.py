"""Profiles: TOML files that say what to measure and which thresholds turn it into a verdict.

Shipped profiles live in `fsyncprobe/verdict/profiles/*.toml` (package data, so they are in the wheel);
`--profile NAME` finds one of them, `--profile FILE` (anything with a `/` or ending in `.toml`)
reads that file. Every problem is an `InputError` (exit 2) naming the file, the key and, where
the text shows it, the line.

Pure apart from reading the file: no printing, no click.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

from fsyncprobe.device.types import DeviceClass
from fsyncprobe.errors import InputError, UsageError
from fsyncprobe.measure import pacing
from fsyncprobe.measure.background import parse_rate
from fsyncprobe.measure.types import BackgroundWrite, SyncMethod, Workload
from fsyncprobe.units import parse_duration_ns, parse_size

PROFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
"""Where the shipped profiles are (package data beside this module)."""
DEFAULT_PROFILE = "pmxcfs"
"""The profile `fsyncprobe verdict` uses when none is named."""


class Metric(str, Enum):
    """What a threshold is held against."""

    OPS_PER_S = "ops_per_s"
    MEAN = "mean"
    P50 = "p50"
    P90 = "p90"
    P99 = "p99"
    P999 = "p999"
    MAX = "max"
    STALLS = "stalls"

    @property
    def is_latency(self) -> bool:
        """True for latencies (limits are durations, in ns)."""
        return self not in (Metric.OPS_PER_S, Metric.STALLS)

    @property
    def lower_is_worse(self) -> bool:
        """True for the rate (FAIL when below the limit); latencies and stall counts FAIL at or above it."""
        return self is Metric.OPS_PER_S


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload a profile runs (a `[[workload]]` table)."""

    workload: Workload
    """What one operation is."""
    sync: SyncMethod = SyncMethod.FSYNC
    """The sync call."""
    block_size_bytes: int | None = None
    """Bytes per write (None: the workload's default)."""
    file_size_bytes: int = 16 << 20
    """File size for `overwrite`/`append`."""
    duration_ns: int = 4_000_000_000
    """Measured time."""
    warmup_ns: int = 500_000_000
    """Uncounted warm-up."""
    stall_threshold_ns: int = 100_000_000
    """An operation slower than this counts as a stall (`stall_threshold`, default 100 ms as in `bench`)."""
    name: str | None = None
    """The run's name (`name`, unique within the profile; thresholds name runs by it); None: the
    workload's own name."""
    background_write: BackgroundWrite | None = None
    """A backup-like writer beside this run (`background_write = "50M"` or `"max"`); None: none."""
    rate_per_s: float | None = None
    """Paced (open-loop) rate in operations per second (`rate`, or `interval` as its inverse);
    None runs operations back to back."""

    @property
    def run_name(self) -> str:
        """The name thresholds use for this run: `name`, else the workload's."""
        return self.name or self.workload.value


@dataclass(frozen=True)
class Threshold:
    """One rule of a profile: a metric of one workload against FAIL and WARN limits."""

    rule: str
    """Stable identifier (the finding's `rule`)."""
    workload: str
    """Which run of the profile it reads: a `[[workload]]`'s `name`, else its workload's name."""
    metric: Metric
    """What it reads."""
    fail: float
    """FAIL limit: ops/s (FAIL when below), nanoseconds or a stall count (FAIL when at or above)."""
    warn: float | None
    """WARN limit, same unit (None: no WARN level)."""
    reason: str
    """Why it matters, one line."""
    advice: str
    """What to do, one line."""


@dataclass(frozen=True)
class Profile:
    """A parsed profile."""

    name: str
    """Its name."""
    source: str
    """The file it was read from."""
    description: str
    """A sentence or two."""
    workloads: tuple[WorkloadSpec, ...]
    """What to run, in order."""
    thresholds: tuple[Threshold, ...]
    """The rules."""
    device_fail: tuple[DeviceClass, ...] = ()
    """Device classes that FAIL (`[device] fail`)."""
    device_warn: tuple[DeviceClass, ...] = ()
    """Device classes that WARN (`[device] warn`)."""
    model: bool = False
    """Whether the token-ring model runs and its findings count (`[model] enabled`)."""


def available() -> list[str]:
    """Names of the shipped profiles."""
    try:
        return sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".toml"))
    except OSError:
        return []


def resolve(name_or_path: str | None) -> str:
    """The file a `--profile` value names (a shipped name, or a path)."""
    value = name_or_path or DEFAULT_PROFILE
    if "/" in value or value.endswith(".toml"):
        return value
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise InputError(f"--profile {value!r}: not a profile name (shipped: {', '.join(available())})")
    path = os.path.join(PROFILE_DIR, f"{value}.toml")
    if not os.path.exists(path):
        raise InputError(f"--profile {value}: no such profile (shipped: {', '.join(available())}; or give a FILE)")
    return path


def load(name_or_path: str | None = None) -> Profile:
    """Load a profile by name (`pmxcfs`) or path; InputError naming file, key and line on any problem."""
    path = resolve(name_or_path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InputError(f"profile {path}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise InputError(f"profile {path}: invalid TOML: {exc}") from None
    return parse(data, path, text)


def parse(data: dict[str, Any], source: str, text: str = "") -> Profile:
    """Build a Profile from parsed TOML; `text` (the file) lets errors give a line."""
    p = _Parser(source, text)
    known = {"name", "description", "workload", "threshold", "device", "model"}
    for key in data:
        if key not in known:
            p.fail(key, f"unknown key (known: {', '.join(sorted(known))})")
    name = p.string(data, "name", required=False) or os.path.basename(source).removesuffix(".toml")
    raw = data.get("workload")
    if not isinstance(raw, list) or not raw:
        p.fail("workload", "at least one [[workload]] table is needed")
    specs = tuple(p.workload(b, i) for i, b in enumerate(raw))
    names = [b.run_name for b in specs]
    for i, n in enumerate(names):
        if n in names[:i]:
            p.fail("name" if specs[i].name else "workload",
                   f"a run named {n!r} is already in this profile: give each [[workload]] of one workload a "
                   "unique `name`", "workload", i)
    workloads = set(names)
    thresholds_raw = data.get("threshold", [])
    if not isinstance(thresholds_raw, list):
        p.fail("threshold", "must be an array of [[threshold]] tables")
    thresholds = tuple(p.threshold(t, i, workloads) for i, t in enumerate(thresholds_raw))
    rules = [t.rule for t in thresholds]
    for dup in sorted({r for r in rules if rules.count(r) > 1}):
        p.fail("rule", f"{dup!r} appears twice", "threshold", rules.index(dup))
    device = data.get("device", {})
    if not isinstance(device, dict):
        p.fail("device", "must be a table with `fail` and `warn` lists of device classes")
    for key in device:
        if key not in ("fail", "warn"):
            p.fail(key, "unknown key in [device] (known: fail, warn)", "device")
    device_fail = p.classes(device, "fail")
    device_warn = p.classes(device, "warn")
    for c in set(device_fail) & set(device_warn):
        p.fail("warn", f"{c.value} is listed under both fail and warn", "device")
    model = data.get("model", {})
    if not isinstance(model, dict):
        p.fail("model", "must be a table (`enabled = true`)")
    for key in model:
        if key != "enabled":
            p.fail(key, "unknown key in [model] (known: enabled)", "model")
    enabled = model.get("enabled", False)
    if not isinstance(enabled, bool):
        p.fail("enabled", "must be true or false", "model")
    return Profile(
        name=name, source=source, description=(p.string(data, "description", required=False) or "").strip(),
        workloads=specs, thresholds=thresholds, device_fail=device_fail, device_warn=device_warn, model=enabled,
    )


_SINGLE_TABLES = ("device", "model")


class _Parser:
    """Checks values and raises InputError naming file, key and line."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def line_of(self, key: str, table: str | None = None, index: int = 0) -> int | None:
        """1-based line of `key = ...`, inside the `index`-th `[[table]]` when given."""
        start = 0
        if table is not None:
            seen = -1
            for n, line in enumerate(self.lines):
                if re.match(rf"\s*\[\[?\s*{re.escape(table)}\s*\]", line):
                    seen += 1
                    if seen == index:
                        start = n + 1
                        break
            else:
                return None
        for n in range(start, len(self.lines)):
            line = self.lines[n]
            if table is not None and re.match(r"\s*\[", line):
                break
            if re.match(rf"\s*{re.escape(key)}\s*=", line):
                return n + 1
        return None

    def fail(self, key: str, why: str, table: str | None = None, index: int = 0) -> NoReturn:
        single = table in _SINGLE_TABLES
        where = (f"[{table}] {key}" if single else f"{table}[{index}].{key}") if table else key
        line = self.line_of(key, table, index) if table or "." not in key else None
        at = f" (line {line})" if line else ""
        raise InputError(f"profile {self.source}: {where}{at}: {why}")

    def string(self, d: dict[str, Any], key: str, required: bool = True, table: str | None = None,
               index: int = 0) -> str | None:
        v = d.get(key)
        if v is None:
            if required:
                self.fail(key, "missing", table, index)
            return None
        if not isinstance(v, str) or not v.strip():
            self.fail(key, f"must be a non-empty string, got {v!r}", table, index)
        return str(v)

    def enum(self, cls: type[Any], value: Any, key: str, table: str | None = None, index: int = 0) -> Any:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            return self.fail(key, f"{value!r} is not one of {choices}", table, index)

    def duration(self, d: dict[str, Any], key: str, default: int, table: str, index: int) -> int:
        v = d.get(key)
        if v is None:
            return default
        try:
            return parse_duration_ns(str(v))
        except ValueError as exc:
            return int(self.fail(key, str(exc), table, index))

    def size(self, d: dict[str, Any], key: str, table: str, index: int) -> int | None:
        v = d.get(key)
        if v is None:
            return None
        try:
            n = parse_size(str(v))
        except ValueError as exc:
            return int(self.fail(key, str(exc), table, index))
        if n < 1:
            self.fail(key, "must be at least 1 byte", table, index)
        return n

    def table_of(self, value: Any, table: str, index: int, known: set[str]) -> None:
        """`[[table]]` entry `index` must be a table with only `known` keys."""
        if not isinstance(value, dict):
            self.fail(table, "must be a table")
        for key in value:
            if key not in known:
                self.fail(key, f"unknown key (known: {', '.join(sorted(known))})", table, index)

    def workload(self, b: Any, i: int) -> WorkloadSpec:
        t = "workload"
        self.table_of(b, t, i, {"workload", "sync", "block_size", "file_size", "duration", "warmup",
                                "stall_threshold", "name", "background_write", "rate", "interval"})
        name = self.string(b, "name", required=False, table=t, index=i)
        if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            self.fail("name", f"{name!r}: use letters, digits, '.', '-' and '_'", t, i)
        bg_text = self.string(b, "background_write", required=False, table=t, index=i)
        try:
            bg = parse_rate(bg_text) if bg_text is not None else None
        except UsageError as exc:
            self.fail("background_write", str(exc).removeprefix(f"--background-write {bg_text!r}: "), t, i)
        rate = self.rate(b, t, i)
        wl = self.enum(Workload, self.string(b, "workload", table=t, index=i), "workload", t, i)
        sync = self.enum(SyncMethod, b.get("sync", "fsync"), "sync", t, i)
        duration = self.duration(b, "duration", WorkloadSpec.duration_ns, t, i)
        if duration <= 0:
            self.fail("duration", "must be more than 0", t, i)
        stall = self.duration(b, "stall_threshold", WorkloadSpec.stall_threshold_ns, t, i)
        if stall <= 0:
            self.fail("stall_threshold", "must be more than 0", t, i)
        file_size = self.size(b, "file_size", t, i) or WorkloadSpec.file_size_bytes
        block = self.size(b, "block_size", t, i)
        if block is not None and block > file_size and wl in (Workload.OVERWRITE, Workload.APPEND):
            self.fail("block_size", "larger than file_size", t, i)
        return WorkloadSpec(workload=wl, sync=sync, block_size_bytes=block, file_size_bytes=file_size,
                            duration_ns=duration, warmup_ns=self.duration(b, "warmup", WorkloadSpec.warmup_ns, t, i),
                            stall_threshold_ns=stall, name=name, background_write=bg, rate_per_s=rate)

    def rate(self, b: dict[str, Any], t: str, i: int) -> float | None:
        """`rate` (operations per second) or `interval` (a duration, its inverse): one or neither."""
        lo, hi = pacing.MIN_RATE_PER_S, pacing.MAX_RATE_PER_S
        if "rate" in b and "interval" in b:
            self.fail("interval", "`rate` and `interval` exclude each other: give one", t, i)
        if "interval" in b:
            ns = self.duration(b, "interval", 0, t, i)
            if not round(1e9 / hi) <= ns <= round(1e9 / lo):
                self.fail("interval", f"{b['interval']!r} is out of range: accepted 10 us to 1000 s", t, i)
            return 1e9 / ns
        v = b.get("rate")
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            self.fail("rate", f"must be a number of operations per second from {lo:g} to {hi:g}, got {v!r}", t, i)
        return float(v)

    def threshold(self, d: Any, i: int, workloads: set[str]) -> Threshold:
        t = "threshold"
        self.table_of(d, t, i, {"rule", "workload", "metric", "fail", "warn", "reason", "advice"})
        tid = str(self.string(d, "rule", table=t, index=i))
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", tid):
            self.fail("rule", f"{tid!r}: use lower-case letters, digits, - and _", t, i)
        wl = str(self.string(d, "workload", table=t, index=i))
        if wl not in workloads:
            self.fail("workload", f"{wl!r} names no run of this profile (runs: {', '.join(sorted(workloads))})", t, i)
        metric = self.enum(Metric, self.string(d, "metric", table=t, index=i), "metric", t, i)
        fail = self.limit(d, "fail", metric, t, i, required=True)
        warn = self.limit(d, "warn", metric, t, i, required=False)
        assert fail is not None
        if warn is not None and (warn < fail if metric.lower_is_worse else warn > fail):
            what = "below" if metric.lower_is_worse else "above"
            self.fail("warn", f"the WARN limit lies {what} the FAIL limit: it could never apply", t, i)
        return Threshold(rule=tid, workload=wl, metric=metric, fail=fail, warn=warn,
                         reason=str(self.string(d, "reason", table=t, index=i)),
                         advice=str(self.string(d, "advice", table=t, index=i)))

    def classes(self, d: dict[str, Any], key: str) -> tuple[DeviceClass, ...]:
        v = d.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.fail(key, "must be a list of device classes", "device")
        return tuple(self.enum(DeviceClass, x, key, "device") for x in v)

    def limit(self, d: dict[str, Any], key: str, metric: Metric, t: str, i: int, required: bool) -> float | None:
        v = d.get(key)
        if v is None:
            if required:
                self.fail(key, "missing", t, i)
            return None
        if not metric.is_latency:
            unit = "ops/s" if metric is Metric.OPS_PER_S else "stalls"
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v == float("inf"):
                self.fail(key, f"must be a positive number of {unit}, got {v!r}", t, i)
            return float(v)
        if not isinstance(v, str):
            self.fail(key, f"must be a duration with a unit such as \"10ms\", got {v!r}", t, i)
        try:
            ns = parse_duration_ns(str(v))
        except ValueError as exc:
            return float(self.fail(key, str(exc), t, i))
        if ns <= 0:
            self.fail(key, "must be more than 0", t, i)
        return float(ns)
