"""Flushes per sync and the power-loss-protection hint (issue 13), pure: the builders of
tests/factories.py with flush counters added. The real flush counts are checked on a loop ext4 in
tests/test_measure_flushes.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fsyncprobe.device.types import DeviceClass
from fsyncprobe.measure.blockstats import parse_flushes
from fsyncprobe.measure.types import BenchResult, DeviceWrites, Workload
from fsyncprobe.verdict import plp, profiles, rules
from fsyncprobe.verdict.types import Finding, Level
from tests.factories import bench, device

US = 1_000
MS = 1_000_000


def _with_flushes(b: BenchResult, flushes: int, mean_ns: int, cache: str = "write back", name: str = "sdz",
                  role: str = "mounted") -> BenchResult:
    d = DeviceWrites(device=name, role=role, write_bytes=b.ops * 4096, write_ops=b.ops, write_cache=cache, fua=False,
                     flush_ops=flushes, flush_time_ns=flushes * mean_ns)
    return replace(b, device_writes=(d,))


def _rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def test_parse_flushes_reads_columns_19_and_20_and_skips_old_kernels() -> None:
    text = ("   7       0 loop0 13468 183 243324 2763 586490 651319 13304336 191909 1 165724 318816 12 0 1630216 2 "
            "364566 124140\n"
            "   8       0 sda 100 0 800 10 200 0 1600 20 0 30 30\n")  # Linux < 4.18: 11 counters, no flushes
    assert parse_flushes(text) == {"loop0": (364566, 124140)}


@pytest.mark.parametrize(("per_sync", "level"), [(0.3, Level.WARN), (0.05, Level.FAIL)])
def test_write_back_device_with_far_fewer_flushes_than_syncs(per_sync: float, level: Level) -> None:
    b = bench(Workload.APPEND, 2000.0)
    b = _with_flushes(b, int(b.ops * per_sync), 500 * US)
    (f,) = _rule(rules.flush_findings(device(DeviceClass.SATA_SSD), (b,)), "flushes-per-sync")
    assert f.level is level
    assert f.value == pytest.approx(per_sync, abs=0.01)
    assert "drops them" in f.reason and "nobarrier" in f.reason


def test_one_flush_per_sync_raises_nothing_about_flushes() -> None:
    b = bench(Workload.APPEND, 2000.0)
    b = _with_flushes(b, b.ops, 500 * US)
    assert not _rule(rules.flush_findings(device(DeviceClass.SATA_SSD), (b,)), "flushes-per-sync")


def test_sqlite_workload_is_not_counted_per_sync() -> None:
    b = _with_flushes(bench(Workload.SQLITE, 5000.0), 10, 500 * US)
    assert rules.flush_findings(device(DeviceClass.SATA_SSD), (b,)) == []


def test_write_through_logical_device_with_no_flushes_is_a_warning_that_says_why() -> None:
    b = _with_flushes(bench(Workload.APPEND, 5000.0), 0, 0, cache="write through", name="loop7")
    (f,) = _rule(rules.flush_findings(device(DeviceClass.VIRTUAL, name="vda"), (b,)), "flushes-write-through")
    assert f.level is Level.WARN
    assert "no flushes to loop7" in f.title and "write through" in f.title
    assert "not durable" in f.reason and f.advice and "write back" in f.advice


def test_write_through_nvme_leaf_is_a_statement_not_a_warning() -> None:
    b = _with_flushes(bench(Workload.APPEND, 20000.0), 0, 0, cache="write through", name="nvme0n1")
    findings = rules.flush_findings(device(DeviceClass.NVME, "write through", name="nvme0n1"), (b,))
    (f,) = _rule(findings, "flushes-write-through")
    assert f.level is Level.PASS and "power-loss protection say so honestly" in f.reason
    (p,) = _rule(findings, "power-loss-protection")
    assert p.level is Level.PASS and "consistent with PLP" in p.title and "NVMe" in p.title


@pytest.mark.parametrize(
    ("mean_ns", "hint", "level", "needle"),
    [
        (40 * US, plp.PlpHint.CONSISTENT, Level.PASS, "consistent with PLP"),
        (2 * MS, plp.PlpHint.NO_PLP, Level.WARN, "consumer-class"),
        (400 * US, plp.PlpHint.INCONCLUSIVE, Level.PASS, "between"),
    ],
)
def test_plp_hint_from_flush_latency(mean_ns: int, hint: plp.PlpHint, level: Level, needle: str) -> None:
    b = _with_flushes(bench(Workload.APPEND, 400.0), 0, 0)
    b = _with_flushes(b, b.ops, mean_ns)
    dev = device(DeviceClass.SATA_SSD)
    a = plp.assess(dev.leaves[0], b.device_writes[0], b, b.ops)
    assert a.hint is hint and needle in a.summary
    assert a.evidence[-1] == plp.PROOF and "power-cut test" in a.evidence[-1]
    (f,) = _rule(rules.flush_findings(dev, (b,)), "power-loss-protection")
    assert f.level is level and "pve.proxmox.com" in f.reason and "power-cut test" in f.reason


def test_plp_hint_from_the_rate_alone_is_weaker_and_does_not_warn() -> None:
    b = bench(Workload.PVEPERF, 400.0)  # no flush counters (Linux < 5.5)
    dev = device(DeviceClass.SATA_SSD)
    a = plp.assess(dev.leaves[0], None, b, b.ops)
    assert a.hint is plp.PlpHint.NO_PLP
    assert a.summary == "write back sata-ssd at 400 syncs/s: consumer-class, no PLP"
    (f,) = _rule(rules.flush_findings(dev, (b,)), "power-loss-protection")
    assert f.level is Level.PASS


def test_flushes_not_reaching_the_device_make_the_hint_inconclusive() -> None:
    b = bench(Workload.APPEND, 5000.0)
    b = _with_flushes(b, b.ops // 10, 40 * US)
    a = plp.assess(device(DeviceClass.NVME).leaves[0], b.device_writes[0], b, b.ops)
    assert a.hint is plp.PlpHint.INCONCLUSIVE and "do not reach" in a.summary


@pytest.mark.parametrize("cls", [DeviceClass.VIRTUAL, DeviceClass.NETWORK_BLOCK, DeviceClass.HDD])
def test_no_plp_finding_where_the_guest_sees_no_drive(cls: DeviceClass) -> None:
    b = _with_flushes(bench(Workload.APPEND, 5000.0), 20000, 40 * US)
    assert not _rule(rules.flush_findings(device(cls), (b,)), "power-loss-protection")
    assert plp.assess(device(cls).leaves[0], b.device_writes[0], b, b.ops).hint is plp.PlpHint.NOT_APPLICABLE


def test_flush_text() -> None:
    b = bench(Workload.APPEND, 1000.0)
    d = _with_flushes(b, b.ops, 350 * US).device_writes[0]
    assert plp.flush_text(d, b.ops) == f"{b.ops:,} flushes (1.00 per sync), mean 350 µs"
    none = _with_flushes(b, 0, 0, cache="write through").device_writes[0]
    assert plp.flush_text(none, b.ops) == "no flushes: the device says write through, so the kernel sends none"
    assert plp.flush_text(replace(d, flush_ops=None, flush_time_ns=None), b.ops) is None


def test_a_bench_report_shows_each_leafs_hint_and_its_limits() -> None:
    from fsyncprobe.render import markdown, table
    from fsyncprobe.report.types import Report

    b = bench(Workload.APPEND, 400.0)
    b = _with_flushes(b, b.ops, 2 * MS)
    report = Report(command="bench", tool_version="0", created_utc="2026-12-02T00:00:00+00:00", hostname="h",
                    benches=(b,), device=device(DeviceClass.SATA_SSD))
    for text in (table.render(report, width=400), markdown.render(report)):
        line = next(x for x in text.splitlines() if "power-loss protection" in x)
        assert "write back sata-ssd with 2.00 ms flushes: consumer-class" in line, line
        assert "only a power-cut test" in line
        assert "(1.00 per sync), mean 2.00 ms" in text
    verdict_like = replace(report, command="verdict",
                           verdict=rules.evaluate(profiles.load("etcd"), (b,), report.device, None))
    assert "  power-loss protection" not in table.render(verdict_like, width=400)  # a finding there instead


def test_write_through_virtual_disk_names_the_hypervisor_cache_mode() -> None:
    b = _with_flushes(bench(Workload.APPEND, 3000.0), 0, 0, cache="write through", name="vda")
    (f,) = _rule(rules.flush_findings(device(DeviceClass.VIRTUAL, "write through", name="vda"), (b,)),
                 "flushes-write-through")
    assert f.level is Level.PASS and "cache=writethrough" in f.reason
