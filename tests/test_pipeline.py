"""The pipeline computes each fact once per run (issue 11): before the redesign one `verdict`
resolved the device stack 3 times and parsed /proc/self/mountinfo 5 times, and the copies could
disagree if a mount changed between them. Counted with a profile hook on the real functions, in a
real run on the test's temp directory: no stand-in."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from fsyncprobe.cli import main
from fsyncprobe.device import mounts, stack
from tests.cli_helpers import cli_runner, verdict_exit_code

COUNTED = {stack.resolve.__code__: "resolve the device stack", mounts.parse_mountinfo.__code__: "parse mountinfo"}


def calls_during(args: list[str]) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in COUNTED:
            counts[COUNTED[frame.f_code]] += 1

    sys.setprofile(hook)
    try:
        res = cli_runner().invoke(main, args)
    finally:
        sys.setprofile(None)
    report = json.loads(res.stdout)
    level = report["verdict"]["level"] if report["verdict"] else "pass"
    assert res.exit_code == verdict_exit_code(level), res.stderr
    return dict(counts)


@pytest.mark.parametrize("command", [["bench"], ["verdict", "--no-corosync-conf"]])
def test_one_run_resolves_the_device_once(tmp_path: Path, command: list[str]) -> None:
    counts = calls_during([command[0], str(tmp_path), *command[1:], "--duration", "200ms", "--warmup", "0s",
                           "--no-sched-probe", "--json"])
    assert counts == {"resolve the device stack": 1, "parse mountinfo": 1}


def test_the_device_command_resolves_once(tmp_path: Path) -> None:
    counts = calls_during(["device", str(tmp_path), "--json"])
    assert counts == {"resolve the device stack": 1, "parse mountinfo": 1}
