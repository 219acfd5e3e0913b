"""When the token-ring model cannot run, the verdict still comes, and a finding says why.

The model has no known failure on real input, so the failure is injected (the one stand-in in
these tests); the measurement is real, on the test's own temp directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsyncprobe.cli import main
from fsyncprobe.ring import model as ring
from fsyncprobe.ring.types import ModelReport
from tests.cli_helpers import cli_runner, verdict_exit_code


def test_verdict_without_the_model_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kw: object) -> ModelReport:
        raise ValueError("tail fit did not converge")

    monkeypatch.setattr(ring, "run_model", broken)
    res = cli_runner().invoke(main, ["verdict", str(tmp_path), "--json", "--no-corosync-conf", "--duration",
                                    "200ms", "--warmup", "0s", "--no-sched-probe"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception  # exit 0 shows as None
    data = json.loads(res.stdout)
    assert res.exit_code == verdict_exit_code(data["verdict"]["level"]), res.stderr
    assert data["model"] is None
    (f,) = [f for f in data["verdict"]["findings"] if f["rule"] == "model"]
    assert f["level"] == "warn" and "tail fit did not converge" in f["reason"]
    assert "model not run: tail fit did not converge" in res.stderr
    assert [b["params"]["workload"] for b in data["benches"]] == ["sqlite", "pveperf-durable", "overwrite"]
