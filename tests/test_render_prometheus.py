"""`--format prometheus`, read back by a real node_exporter textfile collector over loopback.

No Prometheus client library is a dependency, so the parser is the real one: Debian's
`prometheus-node-exporter` (Go `expfmt`), started on 127.0.0.1 with only the textfile collector,
scraped with urllib. A file it cannot parse shows as `node_textfile_scrape_error 1`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsyncprobe.measure.types import BackgroundWrite, BackgroundWriteResult, Workload
from fsyncprobe.pipeline import new_report
from fsyncprobe.render import render
from fsyncprobe.render.prometheus import escape_label, families
from fsyncprobe.report.codec import from_jsonable
from fsyncprobe.report.types import Report
from tests import factories
from tests.cli_helpers import fsyncprobe, verdict_exit_code, verdict_json

EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Exporter:
    """A node_exporter reading one textfile directory, on a loopback port."""

    def __init__(self, textfile_dir: Path) -> None:
        self.dir = textfile_dir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert EXPORTER is not None
        self.proc = subprocess.Popen(
            [EXPORTER, f"--web.listen-address=127.0.0.1:{self.port}", "--collector.disable-defaults",
             "--collector.textfile", f"--collector.textfile.directory={self.dir}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.scrape()
                return
            except OSError as exc:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"node_exporter exited: {err!r}") from exc
                time.sleep(0.05)
        raise RuntimeError("node_exporter did not answer within 10 s")

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            body: bytes = r.read()
            return body.decode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    if EXPORTER is None:
        pytest.skip("prometheus-node-exporter is not installed (tools/test.sh installs it)")
    d = tmp_path / "textfile"
    d.mkdir()
    e = Exporter(d)
    e.start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="module")
def verdict_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One short real verdict (JSON) on the test's temp dir; --min-ops makes a rule repeat per workload."""
    d = tmp_path_factory.mktemp("promv")
    proc = fsyncprobe("verdict", str(d), "--duration", "300ms", "--warmup", "0s", "--min-ops", "1",
                      "--json", "--no-progress")
    return from_jsonable(Report, verdict_json(proc))


def _samples(scraped: str, family: str) -> dict[str, float]:
    out = {}
    for line in scraped.splitlines():
        if line.startswith(family + "{") or line.startswith(family + " "):
            name_labels, value = line.rsplit(" ", 1)
            out[name_labels] = float(value)
    return out


def test_escape_label() -> None:
    # The value a scraper reads back is the literal form (literal.shown): `a"b\\c\nd` with the
    # backslash doubled and the newline written as backslash-n, never a raw newline (issue 14).
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\\\\\c\\\\nd'
    assert escape_label("x\x1b[31my") == "x\\\\x1b[31my"


def test_verdict_metrics_survive_the_real_textfile_collector(exporter: Exporter, verdict_report: Report) -> None:
    text = render(verdict_report, "prometheus")
    (exporter.dir / "fsyncprobe.prom").write_text(text)
    scraped = exporter.scrape()
    assert 'node_textfile_scrape_error 0' in scraped, scraped[-2000:]
    for fam in families(text):
        assert re.search(rf"^{fam}(_sum|_count)?[{{ ]", scraped, re.M), f"{fam} missing from the scrape"
    v = verdict_report.verdict
    assert v is not None
    level = _samples(scraped, "fsyncprobe_verdict_level")
    assert list(level.values()) == [{"pass": 0, "warn": 1, "fail": 2}[v.level.value]]
    rates = _samples(scraped, "fsyncprobe_sync_ops_per_second")
    assert len(rates) == len(verdict_report.benches)
    for b in verdict_report.benches:
        (got,) = [val for k, val in rates.items() if f'workload="{b.params.workload.value}"' in k]
        assert got == pytest.approx(b.ops_per_s)
    # gate-min-ops appears once per closed-loop run in the verdict, once in the metrics.
    closed = [b for b in verdict_report.benches if b.params.rate_per_s is None]
    assert sum(1 for f in v.findings if f.rule == "gate-min-ops") == len(closed) >= 2
    # The paced run is a run of its own (label `run`), with its rate and schedule beside it.
    (paced,) = [b for b in verdict_report.benches if b.pacing is not None]
    assert paced.pacing is not None
    assert list(_samples(scraped, "fsyncprobe_paced_rate_per_second").values()) == [paced.pacing.rate_per_s]
    assert [k for k in rates if f'run="{paced.params.label}"' in k]
    assert len(_samples(scraped, "fsyncprobe_paced_schedule_lag_seconds")) == 2
    late = _samples(scraped, "fsyncprobe_paced_late_operations")
    assert list(late.values()) == [paced.pacing.late_ops]
    gate = [k for k in _samples(scraped, "fsyncprobe_finding_level") if 'rule="gate-min-ops"' in k]
    assert len(gate) == 1


def test_flush_counters_are_metrics(exporter: Exporter) -> None:
    """Flushes per sync and the flush time (issue 13) reach a scraper: requests, seconds and the
    write-cache mode of each device, beside its write requests; a device whose kernel does not
    count flushes (None) has no flush sample rather than a 0 that would read as "dropped"."""
    b = factories.bench(writes=600)
    counted = dataclasses.replace(b.device_writes[0], flush_ops=500, flush_time_ns=1_250_000_000)
    uncounted = dataclasses.replace(b.device_writes[0], device="sdy", role="leaf", write_cache="write through")
    b = dataclasses.replace(b, device_writes=(counted, uncounted))
    r = new_report("bench", "/x", (b,))
    (exporter.dir / "fsyncprobe.prom").write_text(render(r, "prometheus"))
    scraped = exporter.scrape()
    assert "node_textfile_scrape_error 0" in scraped
    flushes = _samples(scraped, "fsyncprobe_device_flush_requests")
    assert list(flushes.values()) == [500] and 'device="sdz"' in next(iter(flushes))
    assert list(_samples(scraped, "fsyncprobe_device_flush_seconds").values()) == [1.25]
    cache = {k.split('device="')[1].split('"')[0]: v
             for k, v in _samples(scraped, "fsyncprobe_device_write_back_cache").items()}
    assert cache == {"sdz": 1, "sdy": 0}


def test_two_runs_of_one_workload_are_two_series_a_scraper_takes(exporter: Exporter) -> None:
    """A profile running one workload alone and under a background writer (pmxcfs-backup, issue 16):
    every bench gets a `run` label (all series of a family keep the same label names, or the
    collector refuses the file), and the writer's rate is a metric of the loaded run."""
    alone = factories.bench(Workload.SQLITE)
    busy = factories.bench(Workload.SQLITE, p99_ns=40_000_000)
    busy = dataclasses.replace(busy, params=dataclasses.replace(
        busy.params, label="sqlite-backup", background_write=BackgroundWrite(None)),
        background_write=BackgroundWriteResult(
            rate_asked_bytes_per_s=None, write_size_bytes=1 << 20, cap_bytes=1 << 30, written_bytes=1 << 30,
            duration_ns=4_000_000_000, written_bytes_per_s=2.0**28, restarts=0, dirty_max_bytes=1 << 29,
            writeback_max_bytes=1 << 24, dirty_mean_bytes=2.0**28))
    r = new_report("verdict", "/x", (alone, busy))
    (exporter.dir / "fsyncprobe.prom").write_text(render(r, "prometheus"))
    scraped = exporter.scrape()
    assert "node_textfile_scrape_error 0" in scraped
    rates = _samples(scraped, "fsyncprobe_sync_ops_per_second")
    assert sorted(k.split('run="')[1].split('"')[0] for k in rates) == ["sqlite", "sqlite-backup"], rates
    writer = _samples(scraped, "fsyncprobe_background_write_bytes_per_second")
    assert list(writer.values()) == [2.0**28] and 'run="sqlite-backup"' in next(iter(writer))
    assert list(_samples(scraped, "fsyncprobe_background_dirty_max_bytes").values()) == [1 << 29]
    # a report without named runs keeps the labels it always had
    assert 'run="' not in render(new_report("bench", "/x", (alone,)), "prometheus")


def test_awkward_label_values_parse(exporter: Exporter, verdict_report: Report) -> None:
    host = 'node "7"\\eu\nwest\x1b[31m\udcff\u202e'  # control characters and a byte that is not UTF-8 too
    r = dataclasses.replace(verdict_report, hostname=host, path='/var/lib/"odd" dir')
    (exporter.dir / "odd.prom").write_text(render(r, "prometheus"))
    scraped = exporter.scrape()
    assert "node_textfile_scrape_error 0" in scraped
    info = [k for k in _samples(scraped, "fsyncprobe_info")]
    assert len(info) == 1 and f'hostname="{escape_label(host)}"' in info[0]
    assert "\x1b" not in scraped and "\\\\x1b[31m\\\\xff\\\\u202e" in info[0]  # as node_exporter re-escapes it


def test_a_broken_file_is_noticed(exporter: Exporter) -> None:
    """The check above could fail: a file with a duplicate sample is refused by this collector."""
    (exporter.dir / "bad.prom").write_text("# TYPE x gauge\nx 1\nx 2\n")
    assert "node_textfile_scrape_error 1" in exporter.scrape()


def test_cli_writes_prometheus_atomically_to_the_textfile_dir(exporter: Exporter) -> None:
    target = exporter.dir / "fsyncprobe.prom"
    work = exporter.dir.parent / "work"
    work.mkdir()
    proc = fsyncprobe("verdict", str(work), "--duration", "200ms", "--warmup", "0s", "--no-sched-probe",
                      "--format", "prometheus", "--output", str(target), "--no-progress")
    assert "Traceback" not in proc.stderr
    assert [p.name for p in exporter.dir.iterdir()] == ["fsyncprobe.prom"]  # no temp file left behind
    scraped = exporter.scrape()
    assert "node_textfile_scrape_error 0" in scraped
    (level,) = _samples(scraped, "fsyncprobe_verdict_level").values()
    assert proc.returncode == verdict_exit_code(["pass", "warn", "fail"][int(level)]), proc.stderr
    # the answers, bounded by the evidence: 200 ms of data keep the default token (3.65 s for 3 nodes)
    # and determine no ring size, so that gauge is absent rather than a guess
    assert _samples(scraped, "fsyncprobe_answer_evidence_covered") == {"fsyncprobe_answer_evidence_covered": 0}
    (low,) = _samples(scraped, "fsyncprobe_answer_token_min_seconds").values() or [None]
    assert low is None or low >= 3.65
    assert not _samples(scraped, "fsyncprobe_answer_largest_ring_nodes")
    assert os.path.getsize(target) > 0


def test_cluster_metrics_name_every_node(exporter: Exporter, verdict_report: Report, tmp_path: Path) -> None:
    from fsyncprobe.report.codec import to_jsonable

    files = []
    for host in ("pve1", "pve2"):
        p = tmp_path / f"{host}.json"
        p.write_text(json.dumps(to_jsonable(dataclasses.replace(verdict_report, hostname=host))))
        files.append(str(p))
    proc = fsyncprobe("cluster", *files, "--no-corosync-conf", "--format", "prometheus",
                      "--output", str(exporter.dir / "cluster.prom"))
    scraped = exporter.scrape()
    assert "node_textfile_scrape_error 0" in scraped
    (level,) = _samples(scraped, "fsyncprobe_verdict_level").values()
    assert proc.returncode == verdict_exit_code(["pass", "warn", "fail"][int(level)]), proc.stderr
    nodes = _samples(scraped, "fsyncprobe_node_verdict_level")
    assert sorted(re.search(r'node="([^"]+)"', k).group(1) for k in nodes) == ["pve1", "pve2"]  # type: ignore[union-attr]
    assert len(_samples(scraped, "fsyncprobe_bottleneck_node")) == 1
    levels = _samples(scraped, "fsyncprobe_finding_level")
    assert any('node="pve1"' in k for k in levels) and any('node="pve2"' in k for k in levels)
