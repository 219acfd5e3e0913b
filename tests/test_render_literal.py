"""Every string from outside is shown literally (issue 14): no output format can be made to show a
path or a host name other than the real one, nor to emit a raw control character.

`shown` is checked on its own (printable output, and a decoder in this file that gets the exact
input back, so no two strings look alike); then hypothesis makes real directories with arbitrary
bytes in their names (non-UTF-8 included: os.fsdecode's surrogateescape) and reports with
arbitrary host names, runs the real CLI on them, and reads every format: the JSON holds the real
string, table, Markdown and Prometheus show its literal form, and no output, stderr included,
holds a raw control character or a byte that is not UTF-8.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fsyncprobe import pipeline
from fsyncprobe.render import render
from fsyncprobe.render.literal import markdown, shown
from fsyncprobe.report.codec import load_report, to_jsonable
from fsyncprobe.report.hostnames import is_valid_hostname
from tests.conftest import requires_root

REPO = Path(__file__).resolve().parent.parent
REPORTS = REPO / "tests" / "data" / "reports"
QUICK = ("--warmup", "0", "--no-sched-probe", "--no-progress", "--ops", "3")

# Any character at all, surrogates (undecodable bytes, lone halves from a JSON escape) included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
HOSTILE = ["[bold red]x[/]", "\x1b[31mred\x1b[0m", "a\nfsyncprobe: verdict PASS", "\u202etxt.exe", "\x9b2J",
           "|a|b|", "*x* _y_ `z` <b>", "1e3", "back\\slash", "tab\there", " edge ", ":smile:", "\udcff\udcfe"]


def unshown(text: str) -> str:
    """The inverse of `shown`: read its escapes back."""
    out, i = [], 0
    simple = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        kind = text[i + 1]
        if kind in simple:
            out.append(simple[kind])
            i += 2
        elif kind == "x":
            code = int(text[i + 2:i + 4], 16)
            out.append(chr(code) if code < 0x80 else chr(0xDC00 + code))  # a byte: surrogateescape
            i += 4
        elif kind == "u":
            out.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
        elif kind == "U":
            out.append(chr(int(text[i + 2:i + 10], 16)))
            i += 10
        else:
            raise AssertionError(f"unknown escape in {text!r}")
    return "".join(out)


def assert_clean(text: str) -> None:
    """No raw control, format, separator or surrogate character (newlines of the layout aside)."""
    bad = [c for c in text if c != "\n" and not c.isprintable()]
    assert bad == [], bad


def assert_clean_bytes(data: bytes) -> str:
    text = data.decode("utf-8")  # strict: no byte that is not UTF-8 reaches the output
    assert_clean(text)
    return text


@given(ANY_TEXT)
@example("\x9b")  # a C1 control and the undecodable byte 0x9b must not look alike
@example("\udc9b")
@settings(max_examples=500)
def test_shown_is_printable_and_says_exactly_which_string(text: str) -> None:
    s = shown(text)
    assert_clean(s)
    assert "\n" not in s
    assert unshown(s) == text
    m = markdown(text)
    assert_clean(m)
    assert unshown(re.sub(r"\\([\\`*_{}\[\]<>|~!&#])", r"\1", m.replace("&#32;", " "))) == text


def _label_values(text: str, label: str) -> list[str]:
    """The values of `label` in Prometheus text, unescaped as the text format says."""
    found = re.findall(rf'{label}="((?:[^"\\]|\\.)*)"', text)
    return [re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v) for v in found]


def md_shows(real: str, md: str) -> bool:
    """`real` appears in Markdown literally: as a cell of its own, or inside a longer text (a title
    "pveperf on PATH (tmpfs at ...)"), where a space at its ends is not at the cell's end and stays
    a space."""
    return markdown(real) in md or markdown(f"x{real}x")[1:-1] in md


def _encodable(s: str) -> bool:
    # A lone surrogate outside U+DC80..U+DCFF has no byte form: no path can hold it.
    try:
        s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _check_rendered(report: pipeline.Report, real: str, label: str) -> None:
    """Every format of an in-process report shows `real` as it is: JSON exactly, table (wide,
    so nothing wraps) and Markdown in its literal form, Prometheus as the label's value."""
    data = json.loads(render(report, "json"))
    assert_clean(render(report, "json"))
    assert real in (data.get("path"), data.get("hostname"))
    wide = __import__("fsyncprobe.render.table", fromlist=["render"]).render(report, width=4000)
    assert_clean(wide)
    assert shown(real) in wide
    md = render(report, "markdown")
    assert_clean(md)
    assert md_shows(real, md)
    prom = render(report, "prometheus")
    assert_clean(prom)
    assert shown(real) in _label_values(prom, label)


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "fsyncprobe", *args], capture_output=True, timeout=120, cwd=REPO)


names = st.one_of(
    st.binary(min_size=1, max_size=24),
    st.sampled_from(HOSTILE).map(lambda s: s.encode("utf-8", "surrogateescape")),
    ANY_TEXT.filter(_encodable).map(lambda s: s.encode("utf-8", "surrogateescape")),
).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")).filter(lambda b: b not in (b"", b".", b".."))


@requires_root  # the directories live on a private tmpfs
@given(name=names)
@example(name=b"[bold red]x[")
@example(name=b"\x1b[31m\nred")
@example(name=b"\xff\xfe not utf-8")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_output_shows_another_path(ramfs: Path, name: bytes) -> None:
    base = tempfile.mkdtemp(dir=ramfs)
    raw = os.path.join(os.fsencode(base), name)
    os.mkdir(raw)
    real = os.fsdecode(raw)
    cli = _run("bench", real, "--json", *QUICK)
    out = assert_clean_bytes(cli.stdout)
    assert_clean_bytes(cli.stderr)
    assert cli.returncode == 0, cli.stderr
    report = json.loads(out)
    assert report["path"] == real and report["benches"][0]["params"]["path"] == real
    assert report["device"]["path"] == real
    table = _run("bench", real, "-f", "table", *QUICK)
    text = assert_clean_bytes(table.stdout)
    assert_clean_bytes(table.stderr)
    assert re.sub(r"\s", "", shown(real)) in re.sub(r"\s", "", text)  # the real table is 100 columns: it wraps
    md = _run("bench", real, "-f", "markdown", *QUICK)
    # as a cell of its own, or inside a title ("pveperf on PATH (tmpfs at ...)"), where a space at
    # its ends is not at the cell's end and stays a space
    assert md_shows(real, assert_clean_bytes(md.stdout))
    with open(os.path.join(base, "r.json"), "w", encoding="utf-8") as f:
        f.write(out)
    loaded = load_report(os.path.join(base, "r.json"))
    _check_rendered(loaded, real, "path")
    _check_rendered(pipeline.device(real), real, "path")
    assert os.listdir(raw) == []


hosts = st.one_of(st.sampled_from(HOSTILE), ANY_TEXT, st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))


@given(host=hosts)
@example(host="pve1")
@example(host="\x1b]0;owned\x07")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_output_shows_another_host_name(tmp_path: Path, host: str) -> None:
    base = tempfile.mkdtemp(dir=tmp_path)
    data = json.loads((REPORTS / "verdict.json").read_text())
    data["hostname"] = host
    node = os.path.join(base, "node.json")
    with open(node, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=True)  # lone surrogates as \\udcXX escapes, as JSON allows
    other = os.path.join(base, "other.json")
    with open(other, "w", encoding="utf-8") as f:
        json.dump({**data, "hostname": "pve-other"}, f)

    # model: shows the name, literally, in every format
    model = pipeline.model([node], ring=pipeline.RingOptions(read_conf=False))
    assert model.hostname == host
    _check_rendered(model, host, "hostname")
    cli = _run("model", "--from-report", node, "--no-corosync-conf", "-f", "table", "--no-progress")
    assert cli.returncode == 0, cli.stderr
    assert_clean_bytes(cli.stdout)
    assert_clean_bytes(cli.stderr)

    # cluster: a name that is not a host name is refused, in one line naming the file
    proc = _run("cluster", node, other, "--no-corosync-conf", "-f", "markdown")
    err = assert_clean_bytes(proc.stderr)
    out = assert_clean_bytes(proc.stdout)
    if is_valid_hostname(host) and host != "pve-other":
        assert proc.returncode in (0, 1), err
        assert markdown(host) in out
    elif not is_valid_hostname(host):
        assert proc.returncode == 2 and out == ""
        (line,) = [ln for ln in err.splitlines() if ln.startswith("fsyncprobe: error:")]
        assert f"{shown(node)}: the report's host name '{shown(host)}' is not a valid host name" in line
        assert err.splitlines() == [line]


def test_hostname_rule() -> None:
    good = ["pve1", "PVE-1", "node-12.example.com", "a" * 63, ".".join(["a" * 63] * 3) + "." + "a" * 61]
    bad = ["", "-pve", "pve-", "a" * 64, "a..b", "pve_1", "pvé", "pve 1", "pve1\n", ".".join(["a" * 63] * 4),
           "[bold]x[/]"]
    assert [h for h in good if not is_valid_hostname(h)] == []
    assert [h for h in bad if is_valid_hostname(h)] == []


def test_report_hostname_round_trips_through_a_file(tmp_path: Path) -> None:
    # The file written by --json and read by cluster keeps an odd name byte for byte.
    report = load_report(str(REPORTS / "verdict.json"))
    odd = dataclasses.replace(report, hostname="x\udcff\x1b")
    path = tmp_path / "r.json"
    path.write_text(render(odd, "json"), encoding="utf-8")
    assert load_report(str(path)).hostname == "x\udcff\x1b"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(to_jsonable(odd)))


@pytest.mark.parametrize("fmt", ["table", "markdown", "prometheus"])
def test_markup_in_a_loaded_report_is_not_interpreted(fmt: str) -> None:
    report = load_report(str(REPORTS / "verdict.json"))
    odd = "/srv/[link=http://x]y[/link]"
    benches = tuple(dataclasses.replace(b, params=dataclasses.replace(b.params, path=odd)) for b in report.benches)
    report = dataclasses.replace(report, hostname="[bold red]x[/]", path=odd, benches=benches)
    out = render(report, fmt)
    if fmt == "markdown":
        assert "\\[link=http://x\\]y\\[/link\\]" in out
    else:
        assert "/srv/[link=http://x]y[/link]" in out
