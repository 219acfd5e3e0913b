"""What holds a path: mount, block-device stack, physical leaves, and their class.

`facts` collects and (de)serialises the raw facts, `stack` resolves a path to its leaves,
`classify` interprets facts (pure). This module ties them together for the commands.
"""

from __future__ import annotations

import json
import os

from fsyncprobe.device.classify import classify
from fsyncprobe.device.facts import Snapshot, load_snapshot, snapshot_to_json
from fsyncprobe.device.stack import resolve
from fsyncprobe.device.types import DeviceReport
from fsyncprobe.errors import MeasureError, UsageError


def snapshot(path: str) -> Snapshot:
    """The raw facts about what holds `path` (UsageError for a missing path, MeasureError otherwise)."""
    try:
        return resolve(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise MeasureError(f"{path}: cannot resolve its device: {exc.strerror or exc}") from None


def describe(path: str) -> DeviceReport:
    """The device section of a report for `path`."""
    return classify(snapshot(path))


def from_snapshot_file(file: str) -> DeviceReport:
    """Classify a saved snapshot (InputError, exit 2, when it is malformed)."""
    return classify(load_snapshot(file))


def snapshot_json(s: Snapshot) -> str:
    """The snapshot as the documented JSON text."""
    return json.dumps(snapshot_to_json(s), indent=2, sort_keys=False) + os.linesep


__all__ = ["describe", "from_snapshot_file", "snapshot", "snapshot_json"]
