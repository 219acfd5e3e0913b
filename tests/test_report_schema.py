"""The JSON Schema shipped in the package describes every report kind the CLI writes.

`fsyncprobe/report/schema.json` is generated from the report dataclasses (type hints for
the shape, field docstrings for the descriptions), so it cannot drift from the code silently:
`test_shipped_schema_is_current` fails when a field changes and the schema was not regenerated.
Regenerate with:

    python -m tests.test_report_schema > fsyncprobe/report/schema.json
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest

from fsyncprobe.report.codec import to_jsonable
from fsyncprobe.report.types import Report
from tests.cli_helpers import fsyncprobe, verdict_json

SCHEMA_ID = "https://fsyncprobe.invalid/schema/report.schema.json"


def _field_docs(cls: type) -> dict[str, str]:
    """Field docstrings: the string literal right after each annotated field."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for a, b in itertools.pairwise(body):
        if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
            docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def _schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a, defs) for a in get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.value for m in tp]}
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema_of(args[0], defs)}
        return {"type": "array", "prefixItems": [_schema_of(a, defs) for a in args], "items": False,
                "minItems": len(args)}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = get_type_hints(tp)
            docs = _field_docs(tp)
            props = {}
            for f in dataclasses.fields(tp):
                s = _schema_of(hints[f.name], defs)
                if f.name in docs:
                    s = {"description": docs[f.name], **s}
                props[f.name] = s
            defs[name] = {
                "type": "object",
                "description": " ".join((tp.__doc__ or "").split()),
                "properties": props,
                "required": [f.name for f in dataclasses.fields(tp)],
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {tp!r}")


def generate() -> dict[str, Any]:
    """The JSON Schema of `Report` as `report.codec.to_jsonable` writes it."""
    defs: dict[str, Any] = {}
    root = _schema_of(Report, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "fsyncprobe report",
        "description": "The JSON report of every fsyncprobe command (`--format json`). Generated from "
                       "fsyncprobe/report/types.py by tests/test_report_schema.py; readers ignore unknown keys, this "
                       "schema describes exactly what this version writes.",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped() -> dict[str, Any]:
    text = resources.files("fsyncprobe").joinpath("report/schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def test_shipped_schema_is_current() -> None:
    assert shipped() == generate(), (
        "fsyncprobe/report/schema.json is stale: run "
        "`python -m tests.test_report_schema > fsyncprobe/report/schema.json`")


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(shipped())


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(shipped())


def _errors(doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(doc)]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real report of every kind: bench, device, model, verdict, cluster (short runs)."""
    d = tmp_path_factory.mktemp("schema")
    out: dict[str, Any] = {}

    def run(kind: str, *args: str) -> None:
        proc = fsyncprobe(*args, "--json", "--no-progress")
        if kind in ("verdict", "cluster"):
            out[kind] = verdict_json(proc)  # exit 0 or 1, as the verdict's own level says
        else:
            assert proc.returncode == 0, f"{kind}: {proc.stderr}"
            out[kind] = json.loads(proc.stdout)
        (d / f"{kind}.json").write_text(proc.stdout)

    run("bench", "bench", str(d), "--duration", "200ms", "--warmup", "0s")
    run("device", "device", str(d))
    run("model", "model", "--from-report", str(d / "bench.json"), "--no-corosync-conf")
    run("verdict", "verdict", str(d), "--duration", "200ms", "--warmup", "0s", "--no-corosync-conf")
    other = dict(out["verdict"], hostname="other-node")  # a second node: cluster wants one report per host
    (d / "other.json").write_text(json.dumps(other))
    run("cluster", "cluster", str(d / "verdict.json"), str(d / "other.json"), "--no-corosync-conf")
    return out


@pytest.mark.parametrize("kind", ["bench", "device", "model", "verdict", "cluster"])
def test_every_report_kind_validates(reports: dict[str, Any], kind: str) -> None:
    if kind not in reports:
        pytest.fail(f"no {kind} report was produced (command missing?)")
    assert _errors(reports[kind]) == []


def test_the_schema_rejects_what_is_wrong(reports: dict[str, Any]) -> None:
    """The checks above could fail: broken reports do not validate."""
    v = json.loads(json.dumps(reports["verdict"]))
    v["verdict"]["level"] = "maybe"
    assert any("maybe" in e for e in _errors(v))
    b = json.loads(json.dumps(reports["bench"]))
    b["benches"][0]["latency"]["p99_ns"] = "fast"
    assert _errors(b)
    del b["hostname"]
    assert any("hostname" in e for e in _errors(b))


def test_in_memory_report_matches_generated_schema() -> None:
    """A minimal Report built in code validates too (no disk needed)."""
    r = Report(command="bench", tool_version="0", created_utc="2026-01-01T00:00:00+00:00", hostname="h")
    assert _errors(to_jsonable(r)) == []


if __name__ == "__main__":
    sys.stdout.write(dumps(generate()))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(dumps(generate()), encoding="utf-8")
