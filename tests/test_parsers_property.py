"""Property tests: the size/duration parsers and the report loader never fail other than cleanly.

A user's typo and a corrupt file must end as one line and exit 2 (shared/DESIGN.md, "Commands"):
in the core that means the parsers raise only ValueError and the report loader only
`codec.DecodeError` (a ValueError); anything else (KeyError, TypeError, AttributeError)
would escape `handle_errors` as a traceback.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from fsyncprobe.errors import FsyncprobeError
from fsyncprobe.pipeline import node_of_report
from fsyncprobe.report import codec
from fsyncprobe.report.types import Report
from fsyncprobe.ring import model as ring
from fsyncprobe.units import format_duration_ns, format_size, parse_duration_ns, parse_size

SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
}

# Text that looks almost like a size or a duration: digits, dots, signs, unit letters in any
# case, and the Unicode characters that case-insensitive matching folds onto ASCII letters
# (U+017F long s ~ s, U+212A Kelvin ~ k, Greek capital mu ~ micro sign).
NEAR_MISS = st.text(
    alphabet=st.sampled_from(list("0123456789.-+ eEkKmMgGtTpPiIbBnNsSuUhH µ\u017f\u212a\u039c\u03bc\u0663\t_,x")),
    max_size=12,
)
SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(n=st.integers(min_value=0, max_value=10**15), unit=st.sampled_from(sorted(SIZE_UNITS)),
       suffix=st.sampled_from(["", "b", "ib", "B", "iB"]), upper=st.booleans())
def test_size_of_an_integer_and_a_unit_is_exact(n: int, unit: str, suffix: str, upper: bool) -> None:
    u = unit.upper() if upper else unit
    if unit == "":
        suffix = suffix if suffix in ("", "b", "B") else ""
    assert parse_size(f"{n}{u}{suffix}") == n * SIZE_UNITS[unit]


@SETTINGS
@given(k=st.integers(min_value=1, max_value=1023), power=st.integers(min_value=0, max_value=5))
def test_format_size_round_trips_whole_multiples(k: int, power: int) -> None:
    n = k * 1024**power
    assert parse_size(format_size(n)) == n


@SETTINGS
@given(n=st.integers(min_value=1024, max_value=1 << 50))
def test_format_size_is_within_its_rounding_or_refused_as_fractional(n: int) -> None:
    text = format_size(n)
    try:
        back = parse_size(text)
    except ValueError as exc:  # "1.1 KiB" is not a whole number of bytes: refused, said so
        assert "whole number of bytes" in str(exc)
    else:
        assert abs(back - n) <= 0.05 * n + 1, (n, text, back)


@SETTINGS
@given(n=st.integers(min_value=0, max_value=10**12), unit=st.sampled_from(sorted(DURATION_UNITS)))
def test_duration_of_an_integer_and_a_unit_is_exact(n: int, unit: str) -> None:
    assert parse_duration_ns(f"{n}{unit}") == n * DURATION_UNITS[unit]


@SETTINGS
@given(ns=st.integers(min_value=0, max_value=10**15))
def test_format_duration_round_trips_to_three_significant_digits(ns: int) -> None:
    text = format_duration_ns(ns)
    back = parse_duration_ns(text)
    # three significant digits (or whole seconds above 1000 s): half a unit in the last place
    assert abs(back - ns) <= max(0.005 * ns, 0.5) + 1, (ns, text, back)


@SETTINGS
@given(text=st.one_of(NEAR_MISS, st.text(max_size=20)))
@example(text="1\u017f")  # long s: re.IGNORECASE matches it to `s`
@example(text="1\u039cs")  # Greek capital mu: matches `µ` case-insensitively
@example(text="1\u212a")  # Kelvin sign ~ k
@example(text="9" * 400 + "e")
@example(text="1e400")
@example(text="nan")
@example(text="inf")
@example(text="-0")
def test_garbage_only_ever_raises_value_error(text: str) -> None:
    for parse in (parse_size, parse_duration_ns):
        try:
            value = parse(text)
        except ValueError:
            continue
        assert isinstance(value, int) and value >= 0, (parse.__name__, text, value)


# --- the report loader ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Real reports written by the real CLI: a bench (with the scheduling probe) and a model."""
    target = tmp_path_factory.mktemp("bench")
    out = []
    for args in (
        ["bench", str(target), "-w", "sqlite", "--ops", "40", "--warmup", "0", "--json", "--no-progress"],
        ["model", "--latency-ms", "1,2,3,40", "--no-corosync-conf", "--json"],
    ):
        proc = subprocess.run([sys.executable, "-m", "fsyncprobe", *args], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        out.append(json.loads(proc.stdout))
    return out


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON tree (the root is the empty path)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A valid report with one to three edits: a value replaced, a key deleted, a list emptied or grown."""
    doc: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "duplicate", "negate"]))
        if not path:
            doc = draw(JSON_VALUE) if action == "replace" else doc
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        if action == "replace":
            parent[key] = draw(JSON_VALUE)
        elif action == "delete":
            del parent[key]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif action == "negate" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = -parent[key] - 1
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_report_is_loaded_or_refused_with_a_decode_error(
    valid_reports: list[dict[str, Any]], data: st.DataObject
) -> None:
    base = data.draw(st.sampled_from(valid_reports))
    doc = data.draw(mutated(base))
    try:
        report = codec.from_jsonable(Report, doc, "report")
    except ValueError:  # codec.DecodeError is one, and so is what a dataclass check raises
        return
    assert isinstance(report, Report)
    # What `fsyncprobe model --from-report` does next with a report that decoded: only the
    # errors the CLI turns into one line may come out.
    if report.benches:
        try:
            node_of_report(report)
        except FsyncprobeError:
            pass


@settings(max_examples=100, deadline=None)
@given(doc=JSON_VALUE)
def test_arbitrary_json_is_refused_with_a_decode_error(doc: Any) -> None:
    assume(not isinstance(doc, dict) or doc)
    with pytest.raises(ValueError):
        codec.from_jsonable(Report, doc, "report")


def test_valid_reports_load(valid_reports: list[dict[str, Any]], tmp_path: Path) -> None:
    for doc in valid_reports:
        report = codec.from_jsonable(Report, doc, "report")
        assert codec.to_jsonable(report) == json.loads(json.dumps(doc))


# --- the snapshot loader and the model on decodable but odd numbers ---------------------------

SNAPSHOTS = sorted((Path(__file__).parent / "snapshots").glob("*.json"))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_mutated_snapshot_is_classified_or_refused_with_an_input_error(data: st.DataObject) -> None:
    # `device --from-snapshot`: the public snapshot format (shared/DESIGN.md) read back and
    # classified; only InputError (exit 2, one line) may come out.
    from fsyncprobe.device import classify
    from fsyncprobe.device.facts import snapshot_from_json
    from fsyncprobe.errors import InputError

    base = json.loads(data.draw(st.sampled_from(SNAPSHOTS)).read_text())
    doc = data.draw(mutated(base))
    try:
        snap = snapshot_from_json(doc)
    except InputError:
        return
    classify(snap)


def _numeric_paths(node: Any) -> list[tuple[Any, ...]]:
    out = []
    for path in _paths(node):
        value = node
        for step in path:
            value = value[step]
        if path and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(path)
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_report_with_odd_numbers_goes_through_the_model_or_is_refused(
    valid_reports: list[dict[str, Any]], data: st.DataObject
) -> None:
    # Numbers of the right type but absurd value (negative counts, 2**64, 0) get past the
    # type-checking loader; `model --from-report` must still end in a result or a one-line error.
    base = valid_reports[0]
    doc = copy.deepcopy(base)
    numeric = _numeric_paths(doc)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        path = data.draw(st.sampled_from(numeric))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(st.one_of(
            st.sampled_from([0, -1, 1, 2**62, 2**64]), st.integers(min_value=-(2**63), max_value=2**64),
            st.floats(allow_nan=False, allow_infinity=False),
        ))
    try:
        report = codec.from_jsonable(Report, doc, "report")
    except ValueError:
        return
    try:
        ring.run_model([node_of_report(report)], ring.ModelParams())
    except FsyncprobeError:
        pass


@pytest.mark.parametrize("count", [2**64, 2**63, 2**53])
def test_a_histogram_count_no_run_can_have_is_an_input_error(valid_reports: list[dict[str, Any]], count: int) -> None:
    # Found by the property test above: a count past the signed 64-bit counters raised
    # OverflowError (a traceback) from `model --from-report`.
    doc = copy.deepcopy(valid_reports[0])
    doc["benches"][0]["histogram"]["buckets"][0][1] = count
    report = codec.from_jsonable(Report, doc, "report")
    with pytest.raises(FsyncprobeError, match="not a measured run"):
        node_of_report(report)
