"""Renderers: one module per output format, each `render(report) -> str`."""

from __future__ import annotations

import importlib

from fsyncprobe.report import Report

FORMATS = ("table", "json", "markdown", "prometheus")


def render(report: Report, fmt: str) -> str:
    """Render `report` in format `fmt` (one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    module = importlib.import_module(f"fsyncprobe.render.{fmt}")
    result: str = module.render(report)
    return result
