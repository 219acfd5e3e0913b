"""The watch's generated bpftrace program and its reader, without a watched process: the
in-kernel bucket index equals `fsyncprobe.stats.histogram.bucket_index` (checked by running the
generated code in the real bpftrace), keys round-trip, bpftrace 0.17's JSON lines parse into the
same histogram the project's own code builds, and the model's node from a watch."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess

import pytest

from fsyncprobe.report.types import Report
from fsyncprobe.ring.inputs import node_from_watch
from fsyncprobe.stats.histogram import N_BUCKETS, Histogram, bucket_index
from fsyncprobe.stats.summary import SavedHistogram, summarize
from fsyncprobe.watch import runner, script
from fsyncprobe.watch.types import KIND_CODES, CallKind, CallStats, StopReason, WatchedProcess, WatchReport

BPFTRACE = shutil.which("bpftrace")


def _values() -> list[int]:
    vals = {0, 1, 2, 127, 128, 255, 256, 257, 383, 384, 511, 512, 513, 1000, 4095, 4096, 10**6, 10**9}
    for k in range(8, 48):
        vals |= {(1 << k) - 1, 1 << k, (1 << k) + 1, (3 << k) // 2}
    rng = random.Random(7)
    vals |= {rng.randrange(1 << rng.randrange(1, 46)) for _ in range(60)}
    return sorted(vals)


@pytest.mark.skipif(BPFTRACE is None or os.geteuid() != 0, reason="needs root and bpftrace (tools/test.sh installs it)")
def test_bucket_index_computed_by_bpftrace_equals_the_histogram_s() -> None:
    vals = _values()
    lines = ["BEGIN {"]
    for v in vals:
        lines.append(f"  $v = (uint64){v};")
        lines.append(script._bucket_code("$v").replace("\n", "\n  "))
        lines.append('  printf("%llu %lld\\n", $v, $i);')
    lines.append("  exit();\n}")
    out = subprocess.run([BPFTRACE or "bpftrace", "-e", "\n".join(lines)], capture_output=True, text=True,
                         timeout=120)
    got = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            got[int(parts[0])] = int(parts[1])
    assert len(got) == len(vals), out.stderr[-2000:]
    wrong = {v: (got[v], bucket_index(v)) for v in vals if got[v] != bucket_index(v)}
    assert wrong == {}
    assert max(got.values()) == N_BUCKETS - 1  # 2**47 is clamped into the top bucket, as in Python


@pytest.mark.parametrize("pid,kind,idx", [(1, 0, 0), (4194304, 15, N_BUCKETS - 1), (12345, 9, 777)])
def test_keys_round_trip(pid: int, kind: int, idx: int) -> None:
    assert script.split_hist_key(script.hist_key(pid, kind, idx)) == (pid, kind, idx)
    assert script.split_stat_key((pid << script.KIND_BITS) | kind) == (pid, kind)


def _feed_values(pid: int, kind: CallKind, values: list[int]) -> runner.Maps:
    """The JSON lines bpftrace 0.17 prints for these samples (format recorded from a real run:
    `{"type": "map", "data": {"@h": {"1414": 1, ...}}}`)."""
    import json
    code = KIND_CODES[kind]
    h: dict[str, int] = {}
    for v in values:
        k = str(script.hist_key(pid, code, bucket_index(v)))
        h[k] = h.get(k, 0) + 1
    sk = str((pid << script.KIND_BITS) | code)
    m = runner.Maps()
    m.feed('{"type": "attached_probes", "data": {"probes": 40}}')
    m.feed(json.dumps({"type": "printf", "data": script.READY + "\n"}))
    m.feed(json.dumps({"type": "map", "data": {"@h": h}}))
    m.feed(json.dumps({"type": "map", "data": {"@sum": {sk: sum(values)}}}))
    m.feed(json.dumps({"type": "map", "data": {"@max": {sk: max(values)}}}))
    m.feed("ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace.")  # ignored
    m.feed('{"type": "map", "data": {"@other": {"1": 2}}}')  # not ours: ignored
    return m


def test_reader_builds_the_same_histogram_as_the_project_s_own() -> None:
    rng = random.Random(3)
    values = [int(rng.lognormvariate(16, 1.2)) for _ in range(5000)]
    m = _feed_values(4321, CallKind.FDATASYNC, values)
    assert m.ready and m.attached_probes == 40
    hists = runner.histograms(m)
    own = Histogram()
    own.record_many(values)
    got = hists[(4321, CallKind.FDATASYNC)]
    # Exact count, sum (mean), max and the same buckets; the kernel keeps no sum of squares (it
    # would overflow 64 bits within hours) and no min, so those come from bucket midpoints.
    a, b = summarize(got), summarize(own)
    assert dataclasses.replace(a, stddev_ns=0, min_ns=0) == dataclasses.replace(b, stddev_ns=0, min_ns=0)
    assert a.stddev_ns == pytest.approx(b.stddev_ns, rel=0.004)
    assert a.min_ns == pytest.approx(b.min_ns, rel=0.004)
    p = runner.process_report("pmxcfs", (4321, 99), hists, scheduling=False)
    call = p.call(CallKind.FDATASYNC)
    assert call is not None and call.latency.count == 5000 and p.call(CallKind.FSYNC) is None
    assert call.histogram.to_histogram().percentile(99) == own.percentile(99)


def test_a_later_print_replaces_the_earlier_one() -> None:
    m = runner.Maps()
    m.feed('{"type": "map", "data": {"@h": {"5": 1}}}')
    m.feed('{"type": "map", "data": {"@h": {"5": 3, "6": 1}}}')
    assert m.maps["@h"] == {5: 3, 6: 1}


def test_generate_traces_only_what_the_kernel_has() -> None:
    s = script.generate([10, 11], [11], {"fsync", "fdatasync", "openat", "write", "close"}, 5, "x86_64",
                        {10: [7]})
    assert s.traced_syscalls == ("fsync", "fdatasync", "write", "openat")
    assert "sys_enter_rename" not in s.text and "sys_enter_open " not in s.text
    assert "/pid == 10 || pid == 11/" in s.text
    assert "@sfd[(10 << 20) | 7] = 1;" in s.text
    assert s.scheduling and s.blocking and "tracepoint:sched:sched_switch" in s.text
    assert "args->id != 232" in s.text  # epoll_wait is a wait, not blocking
    assert "interval:s:5" in s.text and "clear(@bt);" in s.text
    plain = script.generate([10], [], {"fsync"}, 1, "riscv64")
    assert not plain.scheduling and "sched_switch" not in plain.text and "@own" not in plain.text
    assert script.generate([10], [10], {"fsync"}, 1, "riscv64").blocking is False
    with pytest.raises(ValueError):
        script.generate([], [], {"fsync"}, 1, "x86_64")


@pytest.mark.parametrize("text,want", [("bpftrace v0.17.0", (0, 17, 0)), ("bpftrace v0.23.5", (0, 23, 5)),
                                       ("bpftrace 0.21.2-1", (0, 21, 2)), ("bpftrace", None)])
def test_parse_version(text: str, want: tuple[int, ...] | None) -> None:
    assert runner.parse_version(text) == want


def _watch_report(observed_s: float = 7200.0) -> WatchReport:
    def stats(kind: CallKind, values: list[int]) -> CallStats:
        h = Histogram()
        h.record_many(values)
        return CallStats(kind=kind, latency=summarize(h), histogram=SavedHistogram.of(h))

    return WatchReport(
        observed_ns=int(observed_s * 1e9), requested_ns=None, interval_ns=10**10, bpftrace_version="bpftrace v0.17.0",
        stopped_by=StopReason.SIGTERM,
        processes=(
            WatchedProcess("pmxcfs", (100,), (stats(CallKind.FDATASYNC, [2_000_000] * 90 + [40_000_000] * 10),
                                              stats(CallKind.FSYNC, [3_000_000] * 10),
                                              stats(CallKind.WRITE, [5_000] * 50)), scheduling=False),
            WatchedProcess("corosync", (200,), (stats(CallKind.RUN_DELAY, [20_000] * 1000 + [30_000_000]),),
                           scheduling=True),
        ))


def test_node_from_watch_takes_corosync_run_delay_as_stalls_and_pmxcfs_syncs_as_sync_latency() -> None:
    node = node_from_watch("pve1", _watch_report())
    assert node.stall_histogram is not None and node.sync_histogram is not None
    stall = node.stall_histogram
    assert isinstance(stall, SavedHistogram)
    assert stall.max_ns == 30_000_000 and sum(c for _, c in stall.buckets) == 1001
    sync = node.sync_histogram
    assert isinstance(sync, SavedHistogram)
    assert sum(c for _, c in sync.buckets) == 110  # fdatasync + fsync, not the writes
    assert node.measured_ns == node.stall_measured_ns == 7200 * 10**9
    assert node.commit_p999_ns is not None and node.commit_p999_ns >= 39_000_000
    assert node.stall_policy is not None and "observed by `fsyncprobe watch` over 2.0 h" in node.stall_policy
    assert node.evidence == "watched"


def test_watch_report_renders_in_every_format() -> None:
    from fsyncprobe import pipeline
    from fsyncprobe.render import render
    from fsyncprobe.render.prometheus import families
    report: Report = pipeline.new_report("watch", None, watch=_watch_report())
    table = render(report, "table")
    assert "Watch: 2.0 h observed (stopped by SIGTERM; bpftrace v0.17.0)" in table
    assert "run_delay" in table and "fdatasync" in table and "pmxcfs (100)" in table
    md = render(report, "markdown")
    assert "| pmxcfs (100)" in md and "| corosync (200)" in md
    prom = render(report, "prometheus")
    assert {"fsyncprobe_watch_latency_seconds", "fsyncprobe_watch_observed_seconds"} <= set(families(prom))
    assert 'fsyncprobe_watch_latency_seconds_count{process="pmxcfs",call="fdatasync"} 100' in prom
    assert 'fsyncprobe_watch_latency_max_seconds{process="corosync",call="run_delay"} 0.03' in prom
    import json
    data = json.loads(render(report, "json"))
    fd = data["watch"]["processes"][0]["calls"][0]
    assert fd["kind"] == "fdatasync" and set(fd["latency"]) >= {"count", "p50_ns", "p99_ns", "max_ns"}


@pytest.mark.parametrize("args,words", [
    (["--interval", "0s"], "0s is out of range"),
    (["--duration", "-1s"], "is negative"),
    (["--pid", "0"], "0 is not in the range"),
    (["--format", "xml"], "'xml' is not one of"),
])
def test_bad_watch_options_are_one_line_exit_2(args: list[str], words: str) -> None:
    import sys
    proc = subprocess.run([sys.executable, "-m", "fsyncprobe", "watch", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("fsyncprobe: error:")]) == 1
