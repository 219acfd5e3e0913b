"""Renderers: one module per output format, each `render(report) -> str`."""

from __future__ import annotations

import importlib
from enum import Enum

from fsyncprobe.report.types import Report


class Format(str, Enum):
    """The report formats (shared/DESIGN.md, "Commands"); each value names its module here."""

    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    PROMETHEUS = "prometheus"


def render(report: Report, fmt: Format | str) -> str:
    """Render `report` in format `fmt`."""
    module = importlib.import_module(f"fsyncprobe.render.{Format(fmt).value}")
    result: str = module.render(report)
    return result
