"""The verdict as rows of text, shared by the table and markdown renderers."""

from __future__ import annotations

from fsyncprobe.verdict_model import Finding, Verdict


def headline(v: Verdict) -> str:
    """`FAIL (profile pmxcfs): 2 FAIL, 1 WARN, 5 PASS`."""
    counts = {lv: sum(1 for f in v.findings if f.level.value == lv) for lv in ("fail", "warn", "pass")}
    parts = ", ".join(f"{n} {lv.upper()}" for lv, n in counts.items() if n)
    strict = " --strict" if v.strict else ""
    held = f"; held back by {v.bottleneck_node}" if v.bottleneck_node else ""
    return f"{v.level.value.upper()} (profile {v.profile}{strict}): {parts or 'no findings'}{held}"


def finding_rows(v: Verdict) -> list[tuple[str, str, str, str]]:
    """(level, finding, measured / threshold, why / what to do) per finding, worst first."""
    return [_row(f) for f in v.findings]


def _row(f: Finding) -> tuple[str, str, str, str]:
    node = f"[{f.node}] " if f.node else ""
    measured = f.measured or "—"
    if f.threshold:
        measured += f" (limit: {f.threshold})"
    why = f.reason + (f" → {f.advice}" if f.advice else "")
    return (f.level.value.upper(), node + f.title, measured, why)


def node_rows(v: Verdict) -> list[tuple[str, str, str]]:
    """(node, level, report file) for a cluster verdict."""
    return [(n.hostname + (" ← holds the ring back" if n.hostname == v.bottleneck_node else ""),
             n.level.value.upper(), n.source) for n in v.nodes]
