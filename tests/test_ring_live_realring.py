"""`fsyncprobe verdict` inside one node's namespaces of a real 4-node Corosync ring (tests/ringkit.py).

The ring's corosync.conf is in the test's temp directory (`corosync -c`), not at a default path, and
this machine's /etc/corosync/corosync.conf (Debian's, one node) says something else: only the live
ring (`corosync-cmapctl`, which reaches the node's corosync through its abstract unix socket, per
network namespace) can tell the tool that the ring has 4 nodes and runs T = 2300 ms. Then the delay
hub adds one-way latency, and the knet latency in the report and the model's rotation rise with it.
Without a corosync in the namespace the report is the same as with `--no-live-ring`.

Root only; CI runs as root. Everything is removed by name and pid (the `make_ring` fixture).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fsyncprobe.ring import live
from tests.ringkit import Ring, need, run

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
NODES = 4


def fsyncprobe_in(ns: str, *args: str) -> dict[str, Any]:
    """`python3 -m fsyncprobe ARGS` (a JSON report) run inside network namespace `ns` (this tree's package)."""
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "fsyncprobe", *args, "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def verdict_in(ns: str, path: Path, *extra: str) -> dict[str, Any]:
    """`fsyncprobe verdict PATH --json`, short, inside `ns`."""
    return fsyncprobe_in(ns, "verdict", str(path), "--json", "--duration", "300ms", "--warmup", "0s", *extra)


def sources(report: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["source"] for a in report["model"]["assumptions"]}


def value(report: dict[str, Any], name: str) -> float:
    return float(next(a["value"] for a in report["model"]["assumptions"] if a["name"] == name))


def peer_latency_us(r: Ring) -> list[int]:
    out = r.cmap(1, "-m", "stats", "stats.knet.node")
    return [int(line.rsplit("=", 1)[1]) for line in out.splitlines()
            if ".latency_ave " in line and not line.startswith("stats.knet.node1.")]


def test_verdict_reads_the_live_ring_and_its_latency(make_ring: Callable[..., Ring], tmp_path: Path) -> None:
    need()
    r = make_ring("lv", "hub", nodes=NODES)
    r.wait_formed(timeout_s=40)
    time.sleep(2)
    runtime_token = int(r.cmap(1, "-g", "runtime.config.totem.token").rsplit("=", 1)[1])
    assert runtime_token == 1000 + (NODES - 2) * 650  # ringkit's token, corosync's default coefficient

    work = tmp_path / "work"
    work.mkdir()
    before = verdict_in(r.ns(1), work)
    m = before["model"]
    assert m["nodes"] == NODES
    assert m["effective_token_ms"] == runtime_token
    src = sources(before)
    assert src["nodes"].startswith("live ring") and src["effective token T"].startswith("live ring"), src
    assert src["network_latency"].startswith("live ring"), src
    answered = {what: where for what, where in m["answers"]["sources"]}  # the summary at the top says so too
    assert answered["timers"].startswith("live ring") and "live ring" in answered["network latency"], answered
    lr = before["live_ring"]
    assert lr["nodelist_nodes"] == NODES and lr["members"] == [1, 2, 3, 4] and lr["token_ms"] == runtime_token
    assert [ln["nodeid"] for ln in lr["links"]] == [2, 3, 4]
    assert value(before, "network_latency") == pytest.approx(lr["one_way_latency_ms"], rel=1e-3)

    # 20 ms more one way through the hub; knet's mean round trip follows ping by ping.
    r.set_delay(20)
    deadline = time.monotonic() + 40
    while min(peer_latency_us(r)) < 12_000:
        assert time.monotonic() < deadline, peer_latency_us(r)
        time.sleep(1)
    after = verdict_in(r.ns(1), work)
    la, lb = before["live_ring"]["one_way_latency_ms"], after["live_ring"]["one_way_latency_ms"]
    ra, rb = before["model"]["rotation_ms"], after["model"]["rotation_ms"]
    print(f"\nknet one-way latency {la:.2f} -> {lb:.2f} ms; modelled rotation {ra:.1f} -> {rb:.1f} ms")
    assert lb >= la + 5.0
    assert value(after, "network_latency") == pytest.approx(lb, rel=1e-3)
    # Each of the 4 hops carries the added latency (the rotation may be floored by the live
    # token interval before, which only makes the rise smaller).
    assert rb - ra >= 0.5 * NODES * (lb - la), (ra, rb, la, lb)
    assert after["model"]["effective_token_ms"] == runtime_token

    # `model --latency-ms` asks about this node's ring: the live ring too.
    given = fsyncprobe_in(r.ns(1), "model", "--latency-ms", "0.5,0.7,1.2", "--json")
    assert given["live_ring"] is not None and given["model"]["nodes"] == NODES
    # `cluster` asks the local corosync only for reports of this host or of hosts in the running
    # nodelist; else it takes the live ring a node recorded in its own report.
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps(after))
    foreign, recorded = [], []
    for name in ("other-a", "other-b"):
        f, g = tmp_path / f"{name}.json", tmp_path / f"{name}-live.json"
        f.write_text(json.dumps({**after, "hostname": name, "live_ring": None}))
        g.write_text(json.dumps({**after, "hostname": name}))
        foreign.append(str(f))
        recorded.append(str(g))
    alien = fsyncprobe_in(r.ns(1), "cluster", *foreign, "--json")
    assert alien["live_ring"] is None and alien["model"]["nodes"] == 2
    mixed = fsyncprobe_in(r.ns(1), "cluster", str(ours), foreign[0], "--json")
    assert mixed["live_ring"] is not None and mixed["model"]["nodes"] == NODES
    saved = fsyncprobe_in(r.ns(1), "cluster", *recorded, "--json")
    assert saved["live_ring"] == after["live_ring"] and saved["model"]["nodes"] == NODES
    assert any("report recorded it" in w for w in saved["warnings"])


def test_a_stopped_or_forbidding_corosync_is_a_note(make_ring: Callable[..., Ring]) -> None:
    need()
    r = make_ring("lx")
    r.wait_formed()

    def runner(ns: str, *prefix: str) -> live.Runner:
        def run_in(cmd: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", ns, *prefix, *cmd], capture_output=True, text=True,
                                  timeout=timeout_s, check=False)
        return run_in

    assert live.read_live_ring(run=runner(r.ns(1))).ring is not None
    nobody = live.read_live_ring(run=runner(r.ns(1), "setpriv", "--reuid", "65534", "--regid", "65534",
                                            "--clear-groups"))
    assert nobody.ring is None and nobody.note is not None and "CS_ERR_ACCESS" in nobody.note, nobody
    os.kill(r.procs[2].pid, signal.SIGSTOP)
    try:
        stopped = live.read_live_ring(run=runner(r.ns(2)))
    finally:
        os.kill(r.procs[2].pid, signal.SIGCONT)
    assert stopped.ring is None and stopped.note is not None and "did not answer" in stopped.note, stopped


def test_without_corosync_the_report_is_as_before(tmp_path: Path) -> None:
    need()
    ns = f"fsp{os.getpid()}nocs"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        asked = verdict_in(ns, tmp_path)
        not_asked = verdict_in(ns, tmp_path, "--no-live-ring")
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert asked["live_ring"] is None and not_asked["live_ring"] is None
    assert asked["model"]["assumptions"] == not_asked["model"]["assumptions"]
    assert not any("live ring" in a["source"] for a in asked["model"]["assumptions"])
    assert not any("live ring" in w for w in asked["warnings"])
    assert asked["model"]["nodes"] == not_asked["model"]["nodes"]
    assert asked["model"]["effective_token_ms"] == not_asked["model"]["effective_token_ms"]
