"""The verdict's data: levels, findings and the verdict a `Report` carries (`Report.verdict`).

Kept apart from `fsyncprobe.verdict.rules` (which computes them from measurements) so that
`fsyncprobe.report.types` can import these without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Level(str, Enum):
    """How bad a finding is; the verdict is the worst finding's level."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        """0 PASS, 1 WARN, 2 FAIL (the members' order), for taking the worst; the Prometheus
        gauges carry it too."""
        return list(Level).index(self)


def worst(levels: list[Level] | tuple[Level, ...]) -> Level:
    """The worst of `levels` (PASS when empty)."""
    return max(levels, key=lambda lv: lv.rank, default=Level.PASS)


@dataclass(frozen=True)
class Finding:
    """One rule's result: what was measured, against what, why it matters and what to do."""

    rule: str
    """Stable identifier of the rule (`pveperf-rate`, `device-class`, `gate-max-p99`), for CI filters."""
    level: Level
    """PASS, WARN or FAIL."""
    title: str
    """One line a person reads first."""
    measured: str | None
    """The measured value with its unit, as text (`23.5 ops/s`); None when nothing was measured."""
    threshold: str | None
    """The limit it was held against (`FAIL below 50 ops/s, WARN below 500 ops/s`)."""
    reason: str
    """Why it matters for a cluster node, and which path (HA, /etc/pve, corosync scheduling) it rests on."""
    advice: str | None
    """What to do about it (None when nothing needs doing)."""
    value: float | None = None
    """The measured value as a number in the unit `unit` (for CI gates and Prometheus)."""
    unit: str | None = None
    """Unit of `value` (`ops_per_s`, `ns`, `per_year`)."""
    node: str | None = None
    """The node the finding is about (`cluster` reports; None: this report's host)."""


@dataclass(frozen=True)
class NodeVerdict:
    """One node's level in a `cluster` verdict."""

    hostname: str
    """Node name from its report."""
    level: Level
    """The worst of its own findings."""
    source: str
    """The report file it came from."""


@dataclass(frozen=True)
class Verdict:
    """PASS/WARN/FAIL with every finding behind it."""

    level: Level
    """The worst finding's level (PASS when every finding passes)."""
    profile: str
    """The profile whose thresholds were applied (name, or the file given)."""
    findings: tuple[Finding, ...]
    """Every rule's result, worst first."""
    strict: bool = False
    """Whether `--strict` was given (WARN then exits 1)."""
    nodes: tuple[NodeVerdict, ...] = ()
    """Per-node levels (`cluster` only)."""
    bottleneck_node: str | None = None
    """The node that holds the ring back (`cluster` only)."""
