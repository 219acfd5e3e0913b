"""`--format prometheus`: the Prometheus text exposition format, for node_exporter's textfile collector.

Write the output to `<textfile dir>/fsyncprobe.prom` (node_exporter `--collector.textfile.directory`,
default `/var/lib/prometheus/node-exporter` on Debian); `--output` writes atomically (temp file +
rename), which is what the collector's documentation asks for, so a scrape never sees half a file.

The rules this follows, and why (Prometheus docs, "Exposition formats", and node_exporter
`collector/textfile.go`, which parses with the Go `expfmt` text parser and then registers
everything in one registry):
- every family has one `# HELP` and one `# TYPE` line and its samples are contiguous;
- every sample of a family has the same label names (client_golang refuses a family with
  inconsistent label dimensions) and no two samples share name and labels (duplicates are refused);
- no sample timestamps (the textfile collector rejects them); the report's time is a gauge;
- label values escape `\\`, `"` and newlines; HELP text escapes `\\` and newlines; a label value
  from outside (a path, a host name) is first shown literally (`literal.shown`: no raw control
  character, no bytes that are not UTF-8, which the text format requires; issue 14);
- seconds and base units in names (`_seconds`, `_per_second`), as the naming guide asks.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable

from fsyncprobe.measure.types import BenchResult
from fsyncprobe.render.literal import shown
from fsyncprobe.report.types import Report
from fsyncprobe.watch.types import WatchReport

Labels = tuple[tuple[str, str], ...]


def escape_label(value: str) -> str:
    """A label value as the text format wants it, shown literally."""
    return shown(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class _Families:
    """Collects samples per family, keeping label names consistent and samples unique."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.meta: dict[str, tuple[str, str]] = {}
        self.samples: dict[str, list[tuple[str, Labels, float]]] = {}
        self.seen: set[tuple[str, Labels]] = set()

    def add(self, family: str, kind: str, help_text: str, value: float | None, labels: Labels = (),
            suffix: str = "") -> None:
        if value is None:
            return
        if family not in self.meta:
            self.order.append(family)
            self.meta[family] = (kind, help_text)
            self.samples[family] = []
        key = (family + suffix, labels)
        if key in self.seen:  # a second sample with the same labels would make the collector refuse the file
            return
        self.seen.add(key)
        self.samples[family].append((family + suffix, labels, float(value)))

    def text(self) -> str:
        out: list[str] = []
        for fam in self.order:
            kind, help_text = self.meta[fam]
            out.append(f"# HELP {fam} {_escape_help(help_text)}")
            out.append(f"# TYPE {fam} {kind}")
            for name, labels, value in self.samples[fam]:
                lab = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
                out.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")
        return "\n".join(out) + "\n"


def _bench_labels(b: BenchResult, runs: bool = False) -> Labels:
    # A report with named runs (a profile running one workload twice, with and without a
    # background writer) gives every bench a `run` label, so their series stay apart and every
    # series of a family has the same label names (a scraper refuses a family whose label names
    # differ: client_golang's "inconsistent label dimensions"); other reports keep their labels.
    run = (("run", b.params.run_name),) if runs else ()
    return (("workload", b.params.workload.value), ("sync", b.params.sync.value), ("path", b.params.path),
            ("fstype", b.fstype), *run)


def _timestamp(created_utc: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(created_utc).timestamp()
    except ValueError:
        return None


def render(report: Report) -> str:
    """The report as node_exporter textfile collector metrics."""
    f = _Families()
    runs = any(b.params.label for b in report.benches)
    host = report.hostname
    profile = report.verdict.profile if report.verdict is not None else ""
    f.add("fsyncprobe_info", "gauge", "Which fsyncprobe report these metrics come from (always 1).", 1,
          (("command", report.command), ("version", report.tool_version), ("hostname", host),
           ("path", report.path or ""), ("profile", profile)))
    f.add("fsyncprobe_report_timestamp_seconds", "gauge", "When the report was made, seconds since the Unix epoch.",
          _timestamp(report.created_utc))
    f.add("fsyncprobe_schema_version", "gauge", "Version of the report format.", report.schema_version)

    v = report.verdict
    if v is not None:
        f.add("fsyncprobe_verdict_level", "gauge", "Verdict: 0 PASS, 1 WARN, 2 FAIL.", v.level.rank)
        for lv in ("pass", "warn", "fail"):
            f.add("fsyncprobe_verdict", "gauge", "1 for the verdict's level, 0 for the others.",
                  1 if v.level.value == lv else 0, (("level", lv),))
        f.add("fsyncprobe_verdict_strict", "gauge", "1 when --strict was given (WARN exits 1).", int(v.strict))
        for lv in ("pass", "warn", "fail"):
            f.add("fsyncprobe_findings", "gauge", "Number of findings at each level.",
                  sum(1 for x in v.findings if x.level.value == lv), (("level", lv),))
        # Findings sorted worst first: the first sample of a (rule, node) pair is its worst.
        for x in v.findings:
            labels = (("rule", x.rule), ("node", x.node or host))
            f.add("fsyncprobe_finding_level", "gauge", "Each rule's level: 0 PASS, 1 WARN, 2 FAIL.",
                  x.level.rank, labels)
        for x in v.findings:
            if x.value is not None:
                f.add("fsyncprobe_finding_value", "gauge",
                      "The value each rule measured, in the unit of the `unit` label.", x.value,
                      (("rule", x.rule), ("node", x.node or host), ("unit", x.unit or "")))
        for n in v.nodes:
            f.add("fsyncprobe_node_verdict_level", "gauge", "Each node's own level in a cluster verdict.",
                  n.level.rank, (("node", n.hostname),))
        if v.bottleneck_node is not None:
            f.add("fsyncprobe_bottleneck_node", "gauge", "The node that holds the ring back (always 1).", 1,
                  (("node", v.bottleneck_node),))

    for b in report.benches:
        lab = _bench_labels(b, runs)
        f.add("fsyncprobe_sync_ops_per_second", "gauge", "Sync-write operations per second.", b.ops_per_s, lab)
    for b in report.benches:
        lab = _bench_labels(b, runs)
        for q, ns in (("0.5", b.latency.p50_ns), ("0.9", b.latency.p90_ns), ("0.99", b.latency.p99_ns),
                      ("0.999", b.latency.p999_ns)):
            f.add("fsyncprobe_sync_latency_seconds", "summary", "Latency of one sync-write operation.", ns / 1e9,
                  (*lab, ("quantile", q)))
        f.add("fsyncprobe_sync_latency_seconds", "summary", "", b.latency.mean_ns * b.latency.count / 1e9, lab,
              suffix="_sum")
        f.add("fsyncprobe_sync_latency_seconds", "summary", "", b.latency.count, lab, suffix="_count")
    for b in report.benches:
        f.add("fsyncprobe_sync_latency_max_seconds", "gauge", "Slowest sync-write operation.",
              b.latency.max_ns / 1e9, _bench_labels(b, runs))
    for b in report.benches:
        f.add("fsyncprobe_sync_stalls", "gauge", "Operations slower than the stall threshold.", b.stalls.count,
              _bench_labels(b, runs))
    for b in report.benches:
        f.add("fsyncprobe_partial", "gauge", "1 when the run was cut short.", int(b.partial), _bench_labels(b, runs))
    for b in report.benches:
        for w in b.device_writes:
            f.add("fsyncprobe_device_write_requests", "gauge",
                  "Write requests the block device completed during the run.", w.write_ops,
                  (*_bench_labels(b, runs), ("device", w.device), ("role", w.role)))
    for b in report.benches:
        for w in b.device_writes:
            if w.flush_ops is not None:
                f.add("fsyncprobe_device_flush_requests", "gauge",
                      "Flush requests the block device completed during the run (/proc/diskstats).", w.flush_ops,
                      (*_bench_labels(b, runs), ("device", w.device), ("role", w.role)))
    for b in report.benches:
        for w in b.device_writes:
            if w.flush_time_ns is not None:
                f.add("fsyncprobe_device_flush_seconds", "gauge",
                      "Time the block device spent on those flushes (kernel counts whole ms).", w.flush_time_ns / 1e9,
                      (*_bench_labels(b, runs), ("device", w.device), ("role", w.role)))
    for b in report.benches:
        for w in b.device_writes:
            if w.write_cache is not None:
                f.add("fsyncprobe_device_write_back_cache", "gauge",
                      "1 when queue/write_cache says write back (flushes needed), 0 for write through.",
                      int(w.write_cache == "write back"),
                      (*_bench_labels(b, runs), ("device", w.device), ("role", w.role)))
    for b in report.benches:
        if b.pacing is not None:
            f.add("fsyncprobe_paced_rate_per_second", "gauge",
                  "Rate a paced (open-loop) run asked for; absent for a back-to-back run.", b.pacing.rate_per_s,
                  _bench_labels(b, runs))
    for b in report.benches:
        if b.pacing is not None:
            f.add("fsyncprobe_paced_late_operations", "gauge",
                  "Operations of a paced run started late: the one before was still running at their due time.",
                  b.pacing.late_ops, _bench_labels(b, runs))
    for b in report.benches:
        if b.pacing is not None:
            for q, ns in (("0.5", b.pacing.lag.p50_ns), ("1", b.pacing.lag.max_ns)):
                f.add("fsyncprobe_paced_schedule_lag_seconds", "gauge",
                      "How long after its due time an operation of a paced run started (quantile 1 = max).",
                      ns / 1e9, (*_bench_labels(b, runs), ("quantile", q)))
    for b in report.benches:
        pw = b.probe_windows
        if pw is not None and pw.probe_ns > 0:
            f.add("fsyncprobe_sync_beside_probe_ops_per_second", "gauge",
                  "Sync-write operations per second in the probe windows (not in the headline rate).",
                  pw.beside_probe_ops_per_s, _bench_labels(b))
        sp = b.sched_probe
        if sp is not None:
            for q, ns in (("0.99", sp.lateness.p99_ns), ("1", sp.lateness.max_ns)):
                f.add("fsyncprobe_sched_lateness_seconds", "gauge",
                      "How late a real-time sleeper woke beside the workload (quantile 1 = max).", ns / 1e9,
                      (*_bench_labels(b, runs), ("quantile", q)))

    for b in report.benches:
        bw = b.background_write
        if bw is not None:
            f.add("fsyncprobe_background_write_bytes_per_second", "gauge",
                  "Rate the backup-like background writer achieved beside the workload.", bw.written_bytes_per_s,
                  _bench_labels(b, runs))
    for b in report.benches:
        bw = b.background_write
        if bw is not None and bw.dirty_max_bytes is not None:
            f.add("fsyncprobe_background_dirty_max_bytes", "gauge",
                  "Largest system Dirty: (/proc/meminfo) while the background writer ran.", bw.dirty_max_bytes,
                  _bench_labels(b, runs))

    d = report.device
    if d is not None:
        f.add("fsyncprobe_device_class_info", "gauge", "Class of the device holding the path (always 1).", 1,
              (("path", d.path), ("class", d.device_class.value), ("confidence", d.confidence.value),
               ("fstype", d.mount.fstype)))

    if report.watch is not None:
        _watch_families(f, report.watch)

    m = report.model
    if m is not None:
        g = [
            ("fsyncprobe_model_nodes", "Nodes in the modelled ring.", m.nodes),
            ("fsyncprobe_model_effective_token_seconds", "Effective totem token T.", m.effective_token_ms / 1e3),
            ("fsyncprobe_model_stall_tolerance_seconds", "Shortest corosync stall that re-forms the ring.",
             m.stall_tolerance_ms / 1e3),
            ("fsyncprobe_model_false_losses_per_year", "Expected false membership changes per year.",
             m.false_losses_per_year),
            ("fsyncprobe_model_min_safe_token_seconds",
             "Smallest effective token meeting the target at the interval's upper end, before the evidence floor.",
             None if m.min_safe_token_ms is None else m.min_safe_token_ms / 1e3),
            ("fsyncprobe_model_max_safe_nodes", "Largest ring meeting the target at the interval's upper end, "
             "before the evidence bound.", m.max_safe_nodes),
            ("fsyncprobe_model_ha_headroom_seconds", "HA budget headroom under the watchdog (negative: may fence).",
             m.ha_ceiling.headroom_ms / 1e3),
        ]
        a = m.answers
        if a is not None:  # the recommendation, bounded by the evidence (absent: not determined)
            g += [
                ("fsyncprobe_answer_token_min_seconds", "Lower end of the token window this node supports.",
                 None if a.token_min_ms is None else a.token_min_ms / 1e3),
                ("fsyncprobe_answer_token_max_seconds", "Upper end of the token window (the HA ceiling).",
                 a.token_max_ms / 1e3),
                ("fsyncprobe_answer_largest_ring_nodes", "Largest ring this node can join, within the evidence.",
                 a.max_nodes),
                ("fsyncprobe_answer_evidence_seconds", "Stall data behind the answers.", a.evidence.observed_s),
                ("fsyncprobe_answer_evidence_covered", "1 when the evidence covers the target.",
                 int(a.evidence.covered)),
            ]
        for name, help_text, value in g:
            f.add(name, "gauge", help_text, value)
    return f.text()


def _watch_families(f: _Families, w: WatchReport) -> None:
    """A watch: what was watched for how long, and per process and kind of call the same summary
    as a bench's sync latency (quantiles, _sum, _count) and the max."""
    f.add("fsyncprobe_watch_info", "gauge", "Which watch these metrics come from (always 1).", 1,
          (("stopped_by", w.stopped_by.value), ("bpftrace", w.bpftrace_version)))
    f.add("fsyncprobe_watch_observed_seconds", "gauge", "Wall time the watch observed.", w.observed_ns / 1e9)
    for p in w.processes:
        f.add("fsyncprobe_watch_processes", "gauge", "Processes of each watched command name.", len(p.pids),
              (("process", p.name),))
    for p in w.processes:
        f.add("fsyncprobe_watch_exited_processes", "gauge", "Watched processes that exited during the watch.",
              len(p.exited_pids), (("process", p.name),))
    for p in w.processes:
        f.add("fsyncprobe_watch_restarts", "gauge",
              "Times every process of the name exited and a new one was watched in its place.",
              sum(1 for r in w.restarts if r.name == p.name), (("process", p.name),))
    for p in w.processes:
        for c in p.calls:
            lab = (("process", p.name), ("call", c.kind.value))
            for q, ns in (("0.5", c.latency.p50_ns), ("0.9", c.latency.p90_ns), ("0.99", c.latency.p99_ns),
                          ("0.999", c.latency.p999_ns)):
                f.add("fsyncprobe_watch_latency_seconds", "summary",
                      "Latency of each observed call (run_delay: wake-up to running; blocked: main thread in a call).",
                      ns / 1e9, (*lab, ("quantile", q)))
            f.add("fsyncprobe_watch_latency_seconds", "summary", "", c.histogram.sum_ns / 1e9, lab, suffix="_sum")
            f.add("fsyncprobe_watch_latency_seconds", "summary", "", c.latency.count, lab, suffix="_count")
    for p in w.processes:
        for c in p.calls:
            f.add("fsyncprobe_watch_latency_max_seconds", "gauge", "Slowest observed call of each kind.",
                  c.latency.max_ns / 1e9, (("process", p.name), ("call", c.kind.value)))


def families(text: str) -> Iterable[str]:
    """Names of the families in rendered text (for tests and docs)."""
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            yield line.split()[2]
