"""The report: the frozen dataclass every command produces and every renderer reads.

`schema_version` changes when a field changes meaning or disappears; new optional fields do not
change it. The JSON form is `fsyncprobe.report.codec.to_jsonable(report)`; the JSON Schema shipped
beside this module (`schema.json`) describes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsyncprobe.device.types import DeviceReport
from fsyncprobe.measure.types import BenchResult
from fsyncprobe.ring.types import LiveRing, ModelReport
from fsyncprobe.verdict.types import Verdict
from fsyncprobe.watch.types import WatchReport

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Report:
    """Everything one fsyncprobe command found."""

    command: str
    """Which command made it (`bench`, `device`, `verdict`, ...)."""
    tool_version: str
    """fsyncprobe version."""
    created_utc: str
    """ISO 8601 time the report was made."""
    hostname: str
    """Node name, so `cluster` can say which node holds a ring back."""
    path: str | None = None
    """The path examined."""
    benches: tuple[BenchResult, ...] = ()
    """Measured workloads."""
    device: DeviceReport | None = None
    """What holds the path."""
    model: ModelReport | None = None
    """Token-ring consequences of the measurements (`fsyncprobe.ring.model`; None when not modelled)."""
    live_ring: LiveRing | None = None
    """What this node's running corosync reported (`fsyncprobe.ring.live`; None: no corosync here, not
    this node's ring, or `--no-live-ring`)."""
    warnings: tuple[str, ...] = ()
    """Actionable warnings about the run itself."""
    verdict: Verdict | None = None
    """PASS/WARN/FAIL and its findings (`verdict`, `cluster`; None for the other commands)."""
    watch: WatchReport | None = None
    """What `watch` observed of the real processes (`watch`, and `verdict --from-watch`; else None)."""
    schema_version: int = SCHEMA_VERSION
    """Version of this format."""
