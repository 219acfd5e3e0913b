"""Running the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from typing import Any

from click.testing import CliRunner


def cli_runner() -> CliRunner:
    """click's in-process runner with stderr kept apart from stdout, so `result.stdout` is the
    report alone. That is the default from click 8.2; click 8.1 (Debian 12 ships 8.1.3, Debian 13
    8.1.8) mixes stderr into stdout unless given `mix_stderr=False`, which 8.2 removed (issue 15)."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # the argument of click < 8.2
    return CliRunner()


def fsyncprobe(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m fsyncprobe ARGS` and capture everything."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fsyncprobe", *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )


def bench_json(path: str, *args: str) -> dict[str, Any]:
    """`fsyncprobe bench PATH ARGS --json`, asserting success, parsed."""
    proc = fsyncprobe("bench", path, "--json", "--no-progress", *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def verdict_exit_code(level: str, strict: bool = False) -> int:
    """The exit code a verdict of `level` must give (shared/DESIGN.md, "Commands"): 1 for FAIL,
    and for WARN under --strict; 0 otherwise."""
    return 1 if level == "fail" or (strict and level == "warn") else 0


def verdict_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """A `verdict`/`cluster --json` run's report, asserting that its exit code is the one its
    own verdict calls for (a test that cannot know the disk's level still knows this)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    v = data["verdict"]
    assert proc.returncode == verdict_exit_code(v["level"], v["strict"]), (proc.returncode, v["level"], proc.stderr)
    return data
