"""Every command's JSON report has the same fields as before the redesign (issue 11).

`tests/data/reports/*.json` were written by the commands of commit 969f30a, the last before the
package was split into stages (`bench`, `verdict --no-corosync-conf`, `device` on a directory of
/var/tmp; `model --from-report` that bench report; `cluster` of verdict reports). Each test runs
the same command now, in-process on its own temp directory, and compares the two reports' shapes:
at every object the same keys, recursively; lists compare the union of their items' shapes. A
value that is null on one side (a model not run, a probe not available) matches anything, so the
comparison holds on any machine while still catching a field added, renamed or dropped.

Fields added since, on purpose, are in the recorded files too, so the comparison stays exact:
`model.answers` (issue 17).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fsyncprobe.cli import main
from tests.cli_helpers import cli_runner, verdict_exit_code

RECORDED = Path(__file__).parent / "data" / "reports"
QUICK = ["--duration", "300ms", "--warmup", "0s", "--json"]


def merged(items: list[Any]) -> Any:
    """One value standing for every item of a list: dicts merged key by key, nulls dropped."""
    out: Any = None
    for item in items:
        if item is None:
            continue
        if isinstance(item, dict) and isinstance(out, dict):
            out = {k: merged([out.get(k), item.get(k)]) for k in out.keys() | item.keys()}
        elif isinstance(item, list) and isinstance(out, list):
            out = [merged(out + item)]
        else:
            out = item if out is None else out
    return out


def shape_differences(old: Any, new: Any, path: str = "$") -> list[str]:
    if old is None or new is None:
        return []
    if isinstance(old, dict) != isinstance(new, dict) or isinstance(old, list) != isinstance(new, list):
        return [f"{path}: {type(old).__name__} became {type(new).__name__}"]
    if isinstance(old, dict):
        diffs = [f"{path}.{k}: dropped" for k in sorted(old.keys() - new.keys())]
        diffs += [f"{path}.{k}: added" for k in sorted(new.keys() - old.keys())]
        for k in sorted(old.keys() & new.keys()):
            diffs += shape_differences(old[k], new[k], f"{path}.{k}")
        return diffs
    if isinstance(old, list):
        return shape_differences(merged(old), merged(new), f"{path}[]")
    return []


def run(*args: str) -> dict[str, Any]:
    res = cli_runner().invoke(main, list(args))
    report = json.loads(res.stdout)
    assert isinstance(report, dict)
    level = report["verdict"]["level"] if report["verdict"] else "pass"  # the disk decides; the code follows
    assert res.exit_code == verdict_exit_code(level), (res.exit_code, res.stderr)
    return report


def recorded(name: str) -> dict[str, Any]:
    report = json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))
    assert report["command"] == name
    return report


def test_shape_differences_sees_a_change() -> None:
    # The comparison itself: what the tests below rely on it to catch.
    old = {"a": 1, "b": {"c": [{"d": 1}, {"e": None}]}, "f": None}
    assert shape_differences(old, {"a": 2, "b": {"c": [{"d": 3, "e": 4}]}, "f": {"g": 1}}) == []
    assert shape_differences(old, {"a": 2, "b": {"c": [{"d": 3}]}, "f": None}) == ["$.b.c[].e: dropped"]
    assert shape_differences(old, {"a": 2, "b": {"c": [], "x": 1}, "f": None}) == ["$.b.x: added"]
    assert shape_differences(old, {"a": {}, "b": {"c": []}, "f": None}) == ["$.a: int became dict"]


def test_bench_report_fields(tmp_path: Path) -> None:
    new = run("bench", str(tmp_path), "--workload", "pveperf", *QUICK)
    assert new["benches"] and new["device"] is not None
    assert shape_differences(recorded("bench"), new) == []


def test_verdict_report_fields(tmp_path: Path) -> None:
    new = run("verdict", str(tmp_path), "--no-corosync-conf", *QUICK)
    assert len(new["benches"]) == 2 and new["model"] is not None and new["verdict"] is not None
    assert shape_differences(recorded("verdict"), new) == []


def test_device_report_fields(tmp_path: Path) -> None:
    new = run("device", str(tmp_path), "--json")
    assert shape_differences(recorded("device"), new) == []


def test_model_report_fields(tmp_path: Path) -> None:
    new = run("model", "--from-report", str(RECORDED / "bench.json"), "--json")
    assert new["model"] is not None
    assert shape_differences(recorded("model"), new) == []


def test_cluster_report_fields(tmp_path: Path) -> None:
    base, nodes = recorded("verdict"), 3
    for i in range(nodes):
        (tmp_path / f"pve{i}.json").write_text(json.dumps({**base, "hostname": f"pve{i}"}), encoding="utf-8")
    new = run("cluster", str(tmp_path), "--json")
    assert new["verdict"] is not None and len(new["verdict"]["nodes"]) == nodes
    assert shape_differences(recorded("cluster"), new) == []
