"""The live-ring reader (`fsyncprobe.ring.live`) on real `corosync-cmapctl` output, and its use by the model.

tests/data/cmap/ holds what corosync 3.1.7 printed inside node 1's namespace of two real 4-node
rings (tests/record_cmap.py): `ring4-bridge` (token 1000, default coefficient: T = 2300 ms) and
`ring4-hub20ms-schedmiss` (token 1000, coefficient 125: T = 1250 ms; 20 ms one-way through the delay
hub; node 1's corosync stopped for 2.5 s, so corosync recorded a schedmiss and the links went down
once). The failure cases run the real cmapctl where there is no corosync to answer.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from fsyncprobe.render import Format, render
from fsyncprobe.report.types import Report
from fsyncprobe.ring import conf, corosync, live
from fsyncprobe.ring import model as ring_model
from fsyncprobe.ring.inputs import node_from_latencies
from tests import ringkit

DATA = Path(__file__).parent / "data" / "cmap"


def recorded(name: str) -> live.LiveRing:
    r = live.live_ring_from_cmap((DATA / f"{name}.icmap.txt").read_text(), (DATA / f"{name}.stats.txt").read_text())
    assert r is not None
    return r


def test_parse_cmap_lines() -> None:
    text = ("runtime.members.1.ip (str) = r(0) ip(10.213.240.1) \n"
            "stats.schedmiss.0.delay (flt) = 2554.032715\n"
            "some.binary (bin)\n"
            "garbage line\n")
    assert live.parse_cmap(text) == {"runtime.members.1.ip": "r(0) ip(10.213.240.1)",
                                     "stats.schedmiss.0.delay": "2554.032715"}


def test_bridge_ring_timers_members_and_links() -> None:
    r = recorded("ring4-bridge")
    assert (r.nodelist_nodes, r.members, r.local_nodeid) == (4, (1, 2, 3, 4), 1)
    assert r.nodelist_names == ("n1", "n2", "n3", "n4")
    # runtime.config.totem.token is the effective T: 1000 + (4 - 2) x 650.
    assert (r.token_ms, r.consensus_ms, r.token_retransmit_ms, r.hold_ms) == (2300, 2760, 547, 427)
    assert (r.knet_ping_interval_ms, r.knet_ping_timeout_ms) == (575, 1150)
    assert r.settings.token_ms == 1000 and r.settings.token_coefficient_ms is None and r.settings.nodes == 4
    # Our own entry (node 1, no samples) is left out; the peers' round trips are in microseconds.
    assert [ln.nodeid for ln in r.links] == [2, 3, 4]
    assert all(ln.connected and 0 < ln.latency_ave_us < 5000 and ln.down_count == 1 for ln in r.links)
    assert r.schedmiss == () and r.mtt_rx_token_ms is not None
    assert live.live_notes(r) == []


def test_hub_ring_latency_is_half_the_round_trip_and_schedmiss_is_read() -> None:
    r = recorded("ring4-hub20ms-schedmiss")
    assert (r.token_ms, r.consensus_ms, r.hold_ms) == (1250, 1500, 227)
    assert r.settings.token_coefficient_ms == 125
    # The hub delays every frame by 20 ms, so knet's ping round trip is about 40 ms and the
    # one-way latency the model takes about 20 ms.
    assert all(40_000 <= ln.latency_ave_us <= 43_000 for ln in r.links)
    assert r.one_way_latency_ms is not None and 20.0 <= r.one_way_latency_ms <= 21.5
    assert r.jitter_ms is not None and 0 <= r.jitter_ms < 1.0
    assert len(r.schedmiss) == 1
    assert 2500 <= r.schedmiss[0].delay_ms <= 2700 and r.schedmiss[0].timestamp_ms > 1_700_000_000_000
    assert all(ln.down_count == 2 for ln in r.links)  # down once more after the stop
    notes = live.live_notes(r)
    assert any("stats.schedmiss" in n and "2554 ms" in n for n in notes)
    assert any("went down" in n for n in notes)


@pytest.mark.parametrize("name", ["ring4-bridge", "ring4-hub20ms-schedmiss"])
def test_derivation_agrees_with_the_running_ring(name: str) -> None:
    # corosync.derive_timers from the settings corosync loaded gives what corosync runs.
    r = recorded(name)
    assert corosync.derive_timers(r.settings, r.nodelist_nodes) == live.live_timers(r)


def test_outside_strings_lose_control_characters() -> None:
    assert live.parse_cmap("nodelist.node.0.name (str) = n1\x1b[2J\x07\n") == {"nodelist.node.0.name": "n1?[2J?"}


@pytest.mark.parametrize("fmt", [Format.TABLE, Format.MARKDOWN, Format.JSON])
def test_the_report_shows_the_live_ring(fmt: Format) -> None:
    lr = recorded("ring4-hub20ms-schedmiss")
    text = render(Report(command="verdict", tool_version="0", created_utc="2026-12-02T00:00:00+00:00",
                         hostname="n1", live_ring=lr), fmt)
    if fmt is Format.JSON:
        back = json.loads(text)["live_ring"]
        assert back["token_ms"] == 1250 and len(back["links"]) == 3 and back["schedmiss"][0]["delay_ms"] > 2500
    else:
        assert "Live ring" in text and "T 1,250 ms" in text and "round trip 41.16 ms" in text
        assert "2,554 ms" in text


def test_no_runtime_totem_is_no_live_ring() -> None:
    assert live.live_ring_from_cmap("nodelist.node.0.nodeid (u32) = 1\n", "") is None


def test_model_takes_the_live_ring_over_conf_and_defaults() -> None:
    r = recorded("ring4-hub20ms-schedmiss")
    on_disk = conf.settings_from_conf(conf.parse_conf(
        "totem {\n token: 5000\n}\nnodelist {\n node {\n nodeid: 1\n }\n}\n"), "/etc/corosync/corosync.conf")
    lin = live.model_inputs(r, on_disk, conf_named=False, nodes_given=None, token_given=False)
    assert lin.settings == r.settings and lin.timers == live.live_timers(r)
    assert any("says token 5000, the running corosync 1000" in n for n in lin.notes)
    params = ring_model.params_from_settings(
        lin.settings, 4, network_latency_ms=lin.network_latency_ms, jitter_ms=lin.jitter_ms,
        live_timers=lin.timers, live_rotation_ms=lin.rotation_ms, value_sources=lin.sources)
    m = ring_model.run_model([node_from_latencies("n1", [0.5] * 2000)], params)
    assert (m.nodes, m.effective_token_ms, m.consensus_ms, m.hold_ms) == (4, 1250, 1500, 227)
    src = {a.name: a.source for a in m.assumptions}
    for name in ("nodes", "token", "effective token T", "consensus", "hold", "network_latency", "jitter",
                 "knet_ping_timeout"):
        assert src[name].startswith("live ring"), (name, src[name])
    # 4 hops of about 20.6 ms one way + jitter on top of the 227 ms hold.
    assert m.rotation_ms >= 227 + 4 * 20.5
    assert m.rotation_ms >= (r.mtt_rx_token_ms or 0)


def test_command_line_and_a_named_conf_ask_about_another_ring() -> None:
    r = recorded("ring4-bridge")
    named = conf.settings_from_conf(conf.parse_conf("totem {\n token: 5000\n}\n"), "planned.conf")
    lin = live.model_inputs(r, named, conf_named=True, nodes_given=None, token_given=False)
    assert lin.settings == named and lin.timers is None and lin.rotation_ms is None
    assert not any(n == "token" for n, _ in lin.sources)
    assert lin.network_latency_ms == r.one_way_latency_ms  # the link is still this node's
    assert live.model_inputs(r, named, False, None, token_given=True).timers is None
    assert live.model_inputs(r, named, False, 6, False).timers is None
    assert live.model_inputs(r, named, False, 4, False).timers is not None


def _runner(prefix: Sequence[str]) -> live.Runner:
    def run(cmd: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=timeout_s, check=False)
    return run


def test_missing_cmapctl_is_no_live_ring_and_no_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert live.read_live_ring() == live.LiveRead(None, None)


def test_unrunnable_cmapctl_is_a_note(tmp_path: Path) -> None:
    found = live.read_live_ring(cmapctl=str(tmp_path / "corosync-cmapctl"))
    assert found.ring is None and found.note is not None and found.note.startswith("live ring not read:")


def test_timeout_is_a_note() -> None:
    # A corosync that does not answer (stopped) keeps cmapctl waiting: a real process that waits.
    def slow(cmd: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sleep", "5"], capture_output=True, text=True, timeout=0.2, check=False)
    found = live.read_live_ring(run=slow, cmapctl="/bin/true")
    assert found.ring is None and found.note is not None and "did not answer" in found.note


@pytest.mark.root
def test_no_corosync_in_this_namespace_is_no_live_ring_and_no_note() -> None:
    # The real cmapctl in a fresh network namespace: no corosync's socket there (CS_ERR_LIBRARY).
    ringkit.need()
    ns = f"fsp{os.getpid()}nolive"
    ringkit.run("ip", "netns", "add", ns)
    try:
        assert live.read_live_ring(run=_runner(["ip", "netns", "exec", ns])) == live.LiveRead(None, None)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

