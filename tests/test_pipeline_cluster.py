"""`fsyncprobe cluster`: one ring verdict from real per-node reports.

Three real `verdict --json` runs on this machine stand for three nodes: two on an unthrottled
loop ext4, one on a loop ext4 throttled to 50 write IOPS. Each report's `hostname` is then set to
a node name (the only edit: one machine cannot have three host names), as if collected from
three hosts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fsyncprobe.cli import main
from tests import realfs
from tests.cli_helpers import cli_runner, fsyncprobe, verdict_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not realfs.is_root(), reason="needs root for loop devices, mounts and the blkio throttle"),
]

RUN = ("--json", "-q", "--no-corosync-conf", "--duration", "500ms", "--warmup", "100ms")


def verdict_report(path: Path, hostname: str, out: Path) -> Path:
    proc = fsyncprobe("verdict", str(path), *RUN)
    data = verdict_json(proc)
    data["hostname"] = hostname
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory laid out like `ansible.builtin.fetch` leaves it: DIR/<host>/fsyncprobe-verdict.json."""
    base = tmp_path_factory.mktemp("cluster")
    out = base / "collected"
    with realfs.loop_ext4(base, name="fast") as fast:
        verdict_report(fast.mountpoint, "pve1", out / "pve1" / "fsyncprobe-verdict.json")
        verdict_report(fast.mountpoint, "pve3", out / "pve3" / "fsyncprobe-verdict.json")
    with realfs.loop_ext4(base, name="slow") as slow, realfs.write_iops_limit(slow, 50):
        verdict_report(slow.mountpoint, "pve2", out / "pve2" / "fsyncprobe-verdict.json")
    yield out


def files(d: Path) -> list[str]:
    return sorted(str(p) for p in d.rglob("*.json"))


@pytest.mark.slow
def test_cluster_names_the_throttled_node(reports: Path) -> None:
    proc = fsyncprobe("cluster", *files(reports), "--json", "--no-corosync-conf")
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    v = data["verdict"]
    assert v["bottleneck_node"] == "pve2"
    assert v["level"] == "fail"
    assert {n["hostname"]: n["level"] for n in v["nodes"]}["pve2"] == "fail"
    assert all(n["level"] != "fail" for n in v["nodes"] if n["hostname"] != "pve2")
    failing = [f for f in v["findings"] if f["level"] == "fail"]
    assert failing and {f["node"] for f in failing} <= {"pve2", "ring"}
    assert any(f["rule"] == "pveperf-rate" and f["node"] == "pve2" for f in failing)
    # the model ran over all three measured nodes
    m = data["model"]
    assert m["nodes"] == 3
    assert sorted(nm["hostname"] for nm in m["node_models"]) == ["pve1", "pve2", "pve3"]
    assert "holds the ring back" not in proc.stdout  # JSON carries data, not prose
    assert "held back by pve2" in proc.stderr


@pytest.mark.slow
def test_cluster_reads_a_fetched_directory_and_renders_markdown(reports: Path) -> None:
    proc = fsyncprobe("cluster", str(reports), "--format", "markdown", "--no-corosync-conf")
    assert proc.returncode == 1, proc.stderr
    assert "pve2 ← holds the ring back" in proc.stdout
    assert "**Verdict: FAIL" in proc.stdout
    table = fsyncprobe("cluster", str(reports), "--no-corosync-conf", "-q")
    assert "VERDICT: FAIL" in table.stdout and "held back by pve2" in table.stdout


def test_cluster_input_errors_exit_2(reports: Path, tmp_path: Path) -> None:
    def cluster(*args: str) -> tuple[int, str]:
        res = cli_runner().invoke(main, ["cluster", *args])
        assert isinstance(res.exception, SystemExit), res.exception  # an exit, not a crash
        return res.exit_code, res.stderr

    one = files(reports)[0]
    code, err = cluster(one, one)
    assert code == 2 and "two reports from host" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, err = cluster(one, str(bad))
    assert code == 2 and str(bad) in err
    empty = tmp_path / "model.json"
    data = json.loads(Path(one).read_text())
    data["benches"] = []
    empty.write_text(json.dumps(data))
    code, err = cluster(str(empty))
    assert code == 2 and "no measurements" in err
    (tmp_path / "emptydir").mkdir()
    for p in (tmp_path / "missing.json", tmp_path / "emptydir"):
        code, err = cluster(str(p))
        assert code == 2 and str(p) in err
