"""What holds a path: mount, block-device stack, physical leaves, and their class.

`facts` collects and (de)serialises the raw facts, `stack` resolves a path to its leaves,
`classify` interprets facts (pure). This module ties them together for the commands.
"""

from __future__ import annotations

import json
import os

from fsyncprobe.device.classify import classify
from fsyncprobe.device.facts import Snapshot, load_snapshot, snapshot_to_json
from fsyncprobe.device.model import DeviceReport
from fsyncprobe.device.stack import resolve
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


def block_devices_for(path: str) -> list[tuple[str, str]]:
    """Kernel block devices under `path` with their role: the mounted one(s) then the leaves.

    Used to read /proc/diskstats counters around a measurement; [] for tmpfs or NFS.
    """
    snap = snapshot(path)
    out: list[tuple[str, str]] = []
    for stack in snap.stacks:
        if stack and (stack[0], "mounted") not in out:
            out.append((stack[0], "mounted"))
    for stack in snap.stacks:
        if stack and stack[-1] != stack[0] and (stack[-1], "leaf") not in out:
            out.append((stack[-1], "leaf"))
    return out


def from_snapshot_file(file: str) -> DeviceReport:
    """Classify a saved snapshot (InputError, exit 2, when it is malformed)."""
    return classify(load_snapshot(file))


def snapshot_json(s: Snapshot) -> str:
    """The snapshot as the documented JSON text."""
    return json.dumps(snapshot_to_json(s), indent=2, sort_keys=False) + os.linesep


__all__ = ["block_devices_for", "describe", "from_snapshot_file", "snapshot", "snapshot_json"]
