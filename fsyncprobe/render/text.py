"""Plain facts shared by the human-readable renderers (table and markdown), as rows of text.

One place decides which numbers a person sees and in what units; `table` and `markdown` only
lay them out.
"""

from __future__ import annotations

from fsyncprobe.report import BenchResult, LatencySummary
from fsyncprobe.units import format_duration_ns, format_size


def bench_title(b: BenchResult) -> str:
    """`pveperf on /var/lib (ext4 at /)`."""
    p = b.params
    sync = "" if p.workload.value in ("pveperf", "sqlite") and p.sync.value == "fsync" else f" + {p.sync.value}"
    size = "" if p.workload.value == "pveperf" else f" {format_size(p.block_size_bytes)}"
    partial = " — PARTIAL" if b.partial else ""
    return f"{p.workload.value}{size}{sync} on {p.path} ({b.fstype} at {b.mountpoint}){partial}"


def latency_rows(lat: LatencySummary) -> list[tuple[str, str]]:
    """(label, value) rows of a latency summary."""
    f = format_duration_ns
    return [
        ("mean ± σ", f"{f(lat.mean_ns)} ± {f(lat.stddev_ns)}"),
        ("min", f(lat.min_ns)),
        ("p50", f(lat.p50_ns)),
        ("p90", f(lat.p90_ns)),
        ("p99", f(lat.p99_ns)),
        ("p99.9", f(lat.p999_ns)),
        ("max", f(lat.max_ns)),
    ]


def bench_rows(b: BenchResult) -> list[tuple[str, str]]:
    """(label, value) rows for one measured workload."""
    rows = [
        ("rate", f"{b.ops_per_s:,.1f} ops/s"),
        ("operations", f"{b.ops:,} in {b.elapsed_ns / 1e9:.2f} s (+{b.warmup_ops:,} warm-up)"),
    ]
    rows += latency_rows(b.latency)
    rows.append(
        (
            "stalls",
            f"{b.stalls.count:,} over {format_duration_ns(b.stalls.threshold_ns)}"
            + (f" (longest {format_duration_ns(b.stalls.longest_ns)})" if b.stalls.count else ""),
        )
    )
    for d in b.device_writes:
        cache = f", cache: {d.write_cache}" if d.write_cache else ""
        fua = ", FUA" if d.fua else ""
        what = f"wrote {format_size(d.write_bytes)} in {d.write_ops:,} requests ({d.role}{cache}{fua})"
        rows.append((f"device {d.device}", what))
    if b.sched_probe is not None:
        sp = b.sched_probe
        rows.append(
            (
                "scheduling delay",
                f"p99 {format_duration_ns(sp.lateness.p99_ns)}, max {format_duration_ns(sp.lateness.max_ns)} "
                f"({sp.policy}, {format_duration_ns(sp.interval_ns)} sleeps)",
            )
        )
    if b.partial:
        rows.append(("partial", b.partial_reason or "the run was cut short"))
    return rows


def timeline_line(b: BenchResult, width: int = 60) -> str:
    """The per-second rate as a compact sparkline (one character a second, last `width`)."""
    marks = " ▁▂▃▄▅▆▇█"
    # The last second is usually cut short by the end of the run; drawing its low count would
    # show a dip that never happened, so only whole seconds are drawn.
    whole = int(b.elapsed_ns // 1_000_000_000)
    secs = (b.timeline[:whole] if whole else b.timeline)[-width:]
    if not secs:
        return ""
    top = max(s.ops for s in secs) or 1
    return "".join(marks[min(8, round(s.ops * 8 / top))] for s in secs)
