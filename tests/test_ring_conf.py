"""Corosync facts (corosync.conf(5), exec/totemconfig.c) and the corosync.conf parser.

The expected timer values are the man page's own numbers and what a running corosync 3.1.7 ring
reported in `corosync-cmapctl runtime.config.totem.` (tests/test_ring_realring.py checks the same
against a live ring every CI run).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fsyncprobe.errors import InputError
from fsyncprobe.ring import corosync
from fsyncprobe.ring.conf import node_count, parse_conf, read_conf, settings_from_conf
from fsyncprobe.ring.corosync import (
    CorosyncSettings,
    derive_timers,
    effective_token_ms,
)
from tests.cli_helpers import fsyncprobe

PROXMOX_CONF = textwrap.dedent("""\
    logging {
      debug: off
      to_syslog: yes
    }

    nodelist {
      node {
        name: pve1
        nodeid: 1
        quorum_votes: 1
        ring0_addr: 10.0.0.1
        ring1_addr: fe80::1
      }
      node {
        name: pve2
        nodeid: 2
        quorum_votes: 1
        ring0_addr: 10.0.0.2
      }
      node {
        name: pve3
        nodeid: 3
        quorum_votes: 1
        ring0_addr: 10.0.0.3
      }
    }

    quorum {
      provider: corosync_votequorum
    }

    totem {
      cluster_name: lab
      config_version: 3
      interface {
        linknumber: 0
      }
      ip_version: ipv4-6
      link_mode: passive
      secauth: on
      version: 2
    }
""")


def test_effective_token_formula_from_the_man_page() -> None:
    # corosync.conf(5) token_coefficient: token + (number_of_nodes - 2) * token_coefficient, only
    # with at least 3 nodes in the nodelist.
    assert effective_token_ms(3000, 2, 650) == 3000
    assert effective_token_ms(3000, 3, 650) == 3650
    assert effective_token_ms(3000, 5, 650) == 4950
    assert effective_token_ms(3000, 16, 125) == 4750
    assert effective_token_ms(1000, 3, 0) == 1000


def test_defaults_are_corosync_3_1() -> None:
    assert corosync.TOKEN_MS_DEFAULT == 3000  # conf(5): "The default is 3000 milliseconds"
    assert corosync.TOKEN_COEFFICIENT_MS_DEFAULT == 650
    assert corosync.KNET_PONG_COUNT_DEFAULT == 2
    t = derive_timers(CorosyncSettings(), nodes=2)
    assert (t.token_ms, t.consensus_ms, t.token_retransmit_ms, t.hold_ms) == (3000, 3600, 714, 561)
    # conf(5) consensus: "The default is 3600 milliseconds" (1.2 x 3000).
    assert t.token_warning_ms == 2250


def test_man_page_two_node_figures_for_a_1000_ms_token() -> None:
    # conf(5) token_retransmit: "The default is 238 milliseconds for two nodes cluster" and hold
    # "The default is 180 milliseconds": both are the 1000 ms token's (1000 / 4.2; 238 x 0.8 - 10).
    t = derive_timers(CorosyncSettings(token_ms=1000), nodes=2)
    assert t.token_retransmit_ms == 238
    assert t.hold_ms == 180


def test_three_nodes_token_1000_matches_a_running_ring() -> None:
    # corosync-cmapctl runtime.config.totem. on a 3-node 3.1.7 knet ring with token: 1000.
    t = derive_timers(CorosyncSettings(token_ms=1000), nodes=3)
    assert t.token_ms == 1650
    assert t.consensus_ms == 1980
    assert t.token_retransmit_ms == 392
    assert t.hold_ms == 303
    assert t.token_warning_ms == 1237  # "Token has not been received in 1237 ms"
    assert t.knet_ping_interval_ms == 412
    assert t.knet_ping_timeout_ms == 825
    assert t.knet_pong_count == 2


def test_explicit_settings_win_and_udp_has_no_knet_timers() -> None:
    t = derive_timers(CorosyncSettings(token_ms=2000, consensus_ms=5000, hold_ms=100, knet_pong_count=4,
                                       knet_ping_timeout_ms=700), nodes=3)
    assert t.consensus_ms == 5000 and t.hold_ms == 100
    assert t.knet_ping_timeout_ms == 700
    assert t.knet_ping_interval_ms == 2650 // 8
    u = derive_timers(CorosyncSettings(transport="udpu"), nodes=3)
    assert u.knet_ping_timeout_ms is None and u.knet_ping_interval_ms is None


def test_parser_reads_a_proxmox_conf() -> None:
    root = parse_conf(PROXMOX_CONF)
    s = settings_from_conf(root)
    assert s.nodes == 3
    assert s.token_ms is None and s.token_coefficient_ms is None  # Proxmox writes no token
    totem = root.find("totem")[0]
    # Unknown keys are kept, in order; values keep their colons.
    assert ("link_mode", "passive") in totem.items
    assert root.find("nodelist")[0].find("node")[0].get("ring1_addr") == "fe80::1"
    assert root.find("logging")[0].line == 1
    t = derive_timers(s)
    assert t.token_ms == 3650


def test_parser_nested_sections_comments_and_knet_interface() -> None:
    text = textwrap.dedent("""\
        # a comment
        totem {
            token: 5000
            token_coefficient: 125
            # another
            interface {
                linknumber: 1
                knet_ping_interval: 100
            }
            interface {
                linknumber: 0
                knet_ping_interval: 200
                knet_ping_timeout: 400
                knet_pong_count: 3
            }
            newfangled_key: 42
        }
        nodelist {
            node { nodeid: 1 }
            node {
                nodeid: 2 }
        }
    """)
    s = settings_from_conf(parse_conf(text))
    assert (s.token_ms, s.token_coefficient_ms, s.nodes) == (5000, 125, 2)
    assert (s.knet_ping_interval_ms, s.knet_ping_timeout_ms, s.knet_pong_count) == (200, 400, 3)
    assert settings_from_conf(parse_conf("totem {\n  token: 5 \t\n}\n")).token_ms == 5


@pytest.mark.parametrize(("text", "message"), [
    ("totem {\n token: 1\n", "never closed"),
    ("}\n", "without an open section"),
    ("totem {\n just words\n}\n", "expected 'key: value'"),
    ("totem {\n token: soon\n}\n", "expected an integer"),
    ("totem {\n token: -5\n}\n", "negative"),
    ("a b {\n}\n", "bad section name"),
])
def test_parser_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        settings_from_conf(parse_conf(text, "x.conf"), "x.conf")


def test_read_conf_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_conf(str(tmp_path / "nope.conf"))


def test_cli_model_takes_nodes_and_token_from_the_conf(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text(PROXMOX_CONF.replace("  version: 2\n", "  version: 2\n  token: 2000\n  token_coefficient: 125\n"))
    res = fsyncprobe("model", "--latency-ms", "1,2,3,2,1,5,2,3,1,2,4,2", "--corosync-conf", str(conf), "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["model"]
    assert m["nodes"] == 3
    assert m["effective_token_ms"] == 2125
    assumptions = {a["name"]: a for a in m["assumptions"]}
    assert assumptions["token"]["value"] == "2000"
    assert str(conf) in assumptions["token"]["source"]
    # A flag wins over the file.
    res = fsyncprobe("model", "--latency-ms", "1,2", "--corosync-conf", str(conf), "--token", "1000", "--nodes", "5",
                     "--json")
    m = json.loads(res.stdout)["model"]
    assert (m["nodes"], m["effective_token_ms"]) == (5, 1375)


def test_cli_model_bad_conf_is_one_line_exit_2(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text("totem {\n token: 1000\n")
    res = fsyncprobe("model", "--latency-ms", "1", "--corosync-conf", str(conf))
    assert res.returncode == 2
    assert "never closed" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


ONE_NODE_CONF = textwrap.dedent("""\
    nodelist {
      node {
        name: pve1
        nodeid: 1
        ring0_addr: 10.0.0.1
      }
    }

    totem {
      cluster_name: lab
      version: 2
    }
""")


def test_node_count_passes_over_a_one_node_nodelist() -> None:
    one = settings_from_conf(parse_conf(ONE_NODE_CONF), "one.conf")
    three = settings_from_conf(parse_conf(PROXMOX_CONF), "three.conf")
    assert (one.nodes, three.nodes) == (1, 3)
    assert node_count(three, None, 7) == (3, None)
    assert node_count(three, 5, 7) == (5, None)  # --nodes wins
    assert node_count(one, 5, 7) == (5, None)  # ... and leaves nothing to warn about
    n, why = node_count(one, None, 7)
    assert n == 7 and why == "one.conf lists 1 node: node count not taken from it"
    no_list = settings_from_conf(parse_conf("totem {\n token: 1000\n}\n"), "bare.conf")
    assert node_count(no_list, None, 7) == (7, None)


@pytest.mark.parametrize("command", ["model", "cluster"])
def test_one_node_conf_is_treated_alike_by_model_and_cluster(tmp_path: Path, command: str) -> None:
    # Before the redesign `model` warned and `verdict`/`cluster` passed over the nodelist silently.
    conf = tmp_path / "corosync.conf"
    conf.write_text(ONE_NODE_CONF)
    if command == "model":
        args = ["model", "--latency-ms", "1,2,3,2,1,5,2,3,1,2,4,2"]
    else:
        base = json.loads((Path(__file__).parent / "data" / "reports" / "verdict.json").read_text())
        for name in ("pve1", "pve2", "pve3"):
            (tmp_path / f"{name}.json").write_text(json.dumps({**base, "hostname": name}))
        args = ["cluster", *(str(tmp_path / f"pve{i}.json") for i in (1, 2, 3))]
    res = fsyncprobe(*args, "--corosync-conf", str(conf), "--json")
    report = json.loads(res.stdout)
    level = report["verdict"]["level"] if report["verdict"] else "pass"
    assert res.returncode == (1 if level == "fail" else 0), res.stderr
    assert report["model"]["nodes"] == 3
    warning = f"{conf} lists 1 node: node count not taken from it"
    assert warning in report["warnings"]
    assert warning in res.stderr
