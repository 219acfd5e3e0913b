"""The verdict as a person reads it: table and Markdown carry every finding, worst first."""

from __future__ import annotations

from fsyncprobe.device.types import DeviceClass
from fsyncprobe.render import render
from fsyncprobe.report.types import Report
from fsyncprobe.verdict import profiles, rules
from tests.factories import device, pmx_benches


def cluster_report() -> Report:
    prof = profiles.load("pmxcfs")
    nodes = [("pve[1]", "a.json", pmx_benches(rate=3000.0), device(DeviceClass.NVME)),
             ("pve2", "b.json", pmx_benches(rate=25.0), device(DeviceClass.USB))]
    v = rules.evaluate_cluster(prof, nodes, None)
    return Report(command="cluster", tool_version="0", created_utc="2026-01-01T00:00:00+00:00", hostname="h",
                  verdict=v)


def test_table_lists_findings_worst_first_with_node_tags() -> None:
    out = render(cluster_report(), "table")
    assert out.startswith("VERDICT: FAIL (profile pmxcfs)")
    assert "held back by pve2" in out
    lines = [ln for ln in out.splitlines() if ln[:4] in ("FAIL", "WARN", "PASS")]
    levels = [ln[:4] for ln in lines]
    assert levels == sorted(levels, key=["FAIL", "WARN", "PASS"].index)
    assert any(ln.startswith("FAIL  [pve2] ") and "usb" in ln for ln in lines)
    # a host name with brackets is shown as it is, not taken for rich markup
    assert "[pve[1]]" in out and "pve[1]" in out
    assert "do: install the system" in out


def test_markdown_has_the_verdict_and_a_findings_table() -> None:
    out = render(cluster_report(), "markdown")
    assert "**Verdict: FAIL (profile pmxcfs)" in out
    assert "| pve2 ← holds the ring back" in out
    assert "| FAIL    | \\[pve2\\] " in out  # brackets escaped: Markdown shows them as they are
