"""JSON: the report as data, for CI gates and for `model`/`cluster` to read back."""

from __future__ import annotations

import json

from fsyncprobe.report.codec import to_jsonable
from fsyncprobe.report.types import Report


def render(report: Report) -> str:
    """Indented JSON with `schema_version` first."""
    data = to_jsonable(report)
    ordered = {"schema_version": data.pop("schema_version"), **data}
    return json.dumps(ordered, indent=2, ensure_ascii=False)
