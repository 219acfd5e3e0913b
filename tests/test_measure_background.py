"""The background writer (`--background-write`, the `pmxcfs-backup` profile; issue 16): its
parsing and bounds, profiles with named runs, the finding that names the load, what it does to
the pmxcfs workloads on a real loop ext4, and that nothing of it outlives the tool on any exit
path (normal end, an error, SIGINT, SIGTERM, SIGKILL).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fsyncprobe.cli import main
from fsyncprobe.errors import InputError, MeasureError, UsageError
from fsyncprobe.measure import background
from fsyncprobe.measure.types import BackgroundWrite, BackgroundWriteResult, Workload
from fsyncprobe.pipeline import new_report
from fsyncprobe.render import Format, render
from fsyncprobe.verdict import profiles, rules
from fsyncprobe.verdict.types import Level
from tests import factories, faultkit, realfs
from tests.cli_helpers import cli_runner
from tests.conftest import requires_root

REPO = Path(__file__).resolve().parent.parent
MS = 1_000_000

# --- Pure parts -------------------------------------------------------------------------------


def test_rates_parse_and_bad_ones_are_usage_errors() -> None:
    assert background.parse_rate("max") == BackgroundWrite(None)
    assert background.parse_rate("MAX") == BackgroundWrite(None)
    assert background.parse_rate("50M") == BackgroundWrite(50 << 20)
    assert background.parse_rate("50M/s") == BackgroundWrite(50 << 20)
    for bad in ("", "fast", "-5M", "0", "1k", "2T", "1.5"):
        with pytest.raises(UsageError):
            background.parse_rate(bad)


def test_meminfo_dirty_and_writeback_in_bytes() -> None:
    text = "MemTotal:  100 kB\nDirty:     2048 kB\nWriteback:   12 kB\nWritebackTmp: 7 kB\n"
    assert background.meminfo_bytes(text) == (2048 * 1024, 12 * 1024)
    assert background.meminfo_bytes("MemTotal: 1 kB\n") == (None, None)


def test_cap_is_half_the_free_space_after_the_workload_in_whole_writes(tmp_path: Path) -> None:
    vfs = os.statvfs(tmp_path)
    free = vfs.f_bavail * vfs.f_frsize
    cap = background.cap_bytes(str(tmp_path), 0)
    assert cap % background.WRITE_SIZE_BYTES == 0
    assert background.MIN_CAP_BYTES <= cap <= background.MAX_CAP_BYTES
    assert cap <= (free - background.FREE_MARGIN_BYTES) // 2
    with pytest.raises(MeasureError, match=r"not enough free space .* --background-write"):
        background.cap_bytes(str(tmp_path), free)  # the workload's files would leave no room


def test_bad_background_write_values_are_one_line_usage_errors(tmp_path: Path) -> None:
    for bad in ("fast", "0", "-1M"):
        res = cli_runner().invoke(main, ["bench", str(tmp_path), "--background-write", bad, "-d", "10ms"])
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "--background-write" in lines[0] and "Traceback" not in res.stderr
    assert os.listdir(tmp_path) == []


def _profile(tmp_path: Path, text: str) -> profiles.Profile:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return profiles.load(str(path))


RUNS = """
[[workload]]
workload = "sqlite"
[[workload]]
name = "sqlite-busy"
workload = "sqlite"
background_write = "20M"
[[threshold]]
rule = "r"
workload = "sqlite-busy"
metric = "p99"
fail = "1s"
reason = "x"
advice = "y"
"""


def test_profile_runs_have_names_and_thresholds_name_runs(tmp_path: Path) -> None:
    p = _profile(tmp_path, RUNS)
    assert [(w.run_name, w.background_write) for w in p.workloads] == [
        ("sqlite", None), ("sqlite-busy", BackgroundWrite(20 << 20))]
    assert p.thresholds[0].workload == "sqlite-busy"
    for text, needles in [
        (RUNS.replace('name = "sqlite-busy"\n', ""), ["workload[1].workload", "'sqlite' is already"]),
        (RUNS.replace('"sqlite-busy"\nworkload', '"sqlite"\nworkload'), ["workload[1].name", "already"]),
        (RUNS.replace('"20M"', '"lots"'), ["workload[1].background_write", "'lots' is not a size"]),
        (RUNS.replace('workload = "sqlite-busy"\nmetric', 'workload = "nope"\nmetric'),
         ["threshold[0].workload", "'nope' names no run"]),
    ]:
        with pytest.raises(InputError) as err:
            _profile(tmp_path, text)
        for needle in needles:
            assert needle in str(err.value), str(err.value)


def test_shipped_profiles_read_as_before_and_pmxcfs_backup_judges_the_loaded_runs() -> None:
    for name in profiles.available():
        p = profiles.load(name)
        if name != "pmxcfs-backup":
            assert all(w.background_write is None for w in p.workloads)
            # Names only where one workload runs twice (pmxcfs's paced run)
            assert all(w.name is None for w in p.workloads if w.rate_per_s is None)
    p = profiles.load("pmxcfs-backup")
    runs = {w.run_name: w for w in p.workloads}
    assert {w.workload for w in p.workloads} == {Workload.SQLITE, Workload.PVEPERF_DURABLE}
    loaded = {n for n, w in runs.items() if w.background_write is not None}
    assert len(loaded) == 2 and len(runs) == 4
    assert {t.workload for t in p.thresholds} == loaded
    # The runs without the writer come first (its leftover writeback must not reach them); the
    # whole verdict stays short: 4 runs, about 15 s with set-up.
    assert all(w.background_write is None for w in p.workloads[:2])
    assert sum(w.duration_ns + w.warmup_ns for w in p.workloads) <= 12_000_000_000


def test_the_background_finding_states_p99_with_and_without_the_writer() -> None:
    alone = factories.bench(Workload.SQLITE, p99_ns=2 * MS)
    busy = factories.bench(Workload.SQLITE, p99_ns=30 * MS)
    result = BackgroundWriteResult(
        rate_asked_bytes_per_s=None, write_size_bytes=1 << 20, cap_bytes=1 << 30, written_bytes=300 << 20,
        duration_ns=3_000_000_000, written_bytes_per_s=100 * (1 << 20), restarts=0, dirty_max_bytes=512 << 20,
        writeback_max_bytes=8 << 20, dirty_mean_bytes=300.0 * (1 << 20))
    busy = replace(busy, params=replace(busy.params, label="sqlite-backup", background_write=BackgroundWrite(None)),
                   background_write=result)
    found = rules.background_findings((alone, busy))
    assert len(found) == 1
    f = found[0]
    assert f.rule == "background-write" and f.level is Level.PASS and f.value == 30 * MS
    assert "30.0 ms" in f.title and "2.00 ms without" in f.title and "(15.0x)" in f.title, f.title
    assert "100.0 MiB/s" in f.title and "Dirty up to 512.0 MiB" in (f.measured or "")
    assert rules.background_findings((alone,)) == []


def test_every_renderer_shows_what_the_writer_did() -> None:
    alone = factories.bench(Workload.SQLITE, p99_ns=2 * MS)
    busy = replace(factories.bench(Workload.SQLITE, p99_ns=30 * MS), background_write=BackgroundWriteResult(
        rate_asked_bytes_per_s=50 << 20, write_size_bytes=1 << 20, cap_bytes=1 << 30, written_bytes=150 << 20,
        duration_ns=3_000_000_000, written_bytes_per_s=50.0 * (1 << 20), restarts=2, dirty_max_bytes=256 << 20,
        writeback_max_bytes=8 << 20, dirty_mean_bytes=100.0 * (1 << 20)))
    busy = replace(busy, params=replace(busy.params, label="sqlite-backup", background_write=BackgroundWrite(50 << 20)))
    report = new_report("verdict", "/x", (alone, busy))
    for fmt in (Format.TABLE, Format.MARKDOWN):
        text = render(report, fmt)
        assert "sqlite-backup: sqlite 4.0 KiB on /x (ext4 at /) under background write 50.0 MiB/s" in text, text
        assert "wrote 150.0 MiB at 50.0 MiB/s (asked 50.0 MiB/s)" in text and "restarted 2x" in text, text
        assert "Dirty up to 256.0 MiB" in text and "Writeback up to 8.0 MiB" in text, text
    data = json.loads(render(report, Format.JSON))
    assert data["benches"][1]["background_write"]["written_bytes"] == 150 << 20
    assert data["benches"][1]["params"]["background_write"] == {"rate_bytes_per_s": 50 << 20}
    assert data["benches"][0]["background_write"] is None and data["benches"][0]["params"]["label"] is None
    prom = render(report, Format.PROMETHEUS)
    assert 'fsyncprobe_background_write_bytes_per_second{workload="sqlite"' in prom
    assert 'run="sqlite-backup"} 52428800' in prom and 'run="sqlite"}' in prom, prom
    # two runs of one workload stay two series
    rates = [ln for ln in prom.splitlines() if ln.startswith("fsyncprobe_sync_ops_per_second{")]
    assert len(rates) == 2 and len(set(r.rsplit(" ", 1)[0] for r in rates)) == 2, rates


# --- On real filesystems ----------------------------------------------------------------------


@requires_root
def test_a_backup_beside_raises_the_pmxcfs_p99_and_the_verdict_names_it(tmp_path: Path) -> None:
    # A loop ext4 throttled to 100 write IOPS and 16 MB/s whose dirty-page limit is scaled down to
    # 4 MiB (realfs.dirty_limit): the writer fills it, writeback holds the disk, and the
    # pmxcfs-shaped commits wait behind it. The profile runs each workload without the writer first.
    # (With the IOPS limit alone the rise was 12-30x in most runs but 1.4x in one of eight.)
    with realfs.loop_ext4(tmp_path, 256) as fs, realfs.write_iops_limit(fs, 100), \
            realfs.write_bps_limit(fs, 16_000_000), realfs.dirty_limit(fs, 4 << 20):
        res = cli_runner().invoke(main, ["verdict", str(fs.mountpoint), "--profile", "pmxcfs-backup", "--duration",
                                         "1500ms", "--warmup", "300ms", "--no-corosync-conf", "--no-live-ring",
                                         "--no-ring-id", "--allow-concurrent", "--json", "--no-progress"])
        assert realfs.leftovers(fs.mountpoint) == []
    assert res.exit_code in (0, 1), res.stderr
    report = json.loads(res.stdout)
    runs = {b["params"]["label"] or b["params"]["workload"]: b for b in report["benches"]}
    alone, busy = runs["sqlite"], runs["sqlite-backup"]
    side_by_side = {n: (b["latency"]["p50_ns"] / MS, b["latency"]["p99_ns"] / MS) for n, b in runs.items()}
    print("p50, p99 ms:", side_by_side)
    assert alone["background_write"] is None and busy["background_write"]["written_bytes"] > 4 << 20
    assert busy["background_write"]["dirty_max_bytes"] is not None
    # Twice, not more: a WAL checkpoint (about every 1,000 pages) that lands in the run without the
    # writer puts its p99 at 30-35 ms on this 100-IOPS disk (1 run in 4 here); loaded p99s were
    # 93-425 ms, against 0.35-0.55 ms without the writer when no checkpoint landed.
    assert busy["latency"]["p99_ns"] >= 2 * alone["latency"]["p99_ns"], side_by_side
    found = {f["title"] for f in report["verdict"]["findings"] if f["rule"] == "background-write"}
    assert len(found) == 2 and any(t.startswith("sqlite p99") and "without it" in t for t in found), found


def _writers(under: Path) -> list[int]:
    """Pids of background writers whose directory is under `under` (from /proc/PID/cmdline)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"fsyncprobe.measure.background" in argv and any(a.startswith(bytes(under)) for a in argv):
            pids.append(int(entry))
    return pids


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # dead, waiting for its parent (or init) to reap it: it writes nothing more
            return True
        time.sleep(0.02)
    return False


def _free(path: Path, sync: bool = False) -> int:
    """Free bytes on `path`'s filesystem; with `sync`, after syncfs(2) of that filesystem alone (ext4
    returns freed blocks when the journal commits), never os.sync(): others' writes are not ours."""
    if sync:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0
        finally:
            os.close(fd)
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


@requires_root
@pytest.mark.parametrize("how", ["end", "error", "SIGINT", "SIGTERM", "SIGKILL"])
def test_the_writer_and_its_file_never_outlive_the_tool(tmp_path: Path, how: str) -> None:
    # The writer's file is unnamed (O_TMPFILE): its blocks come back when the writer's descriptor
    # closes, whichever way it ends. Free space (ext4 counts delayed allocations at once) shows it.
    with realfs.loop_ext4(tmp_path, 256) as fs:
        target = fs.mountpoint / "target"
        target.mkdir()
        free_before = _free(fs.mountpoint)
        duration = "2s" if how == "end" else "60s"
        proc = subprocess.Popen(
            [sys.executable, "-m", "fsyncprobe", "bench", str(target), "-d", duration, "--warmup", "0",
             "--background-write", "40M", "--no-sched-probe", "--no-ring-id", "--allow-concurrent", "--json",
             "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            deadline = time.monotonic() + 20
            while not (pids := _writers(target)) or _free(fs.mountpoint) > free_before - (16 << 20):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
            (writer,) = pids
            if how == "error":  # the measured directory moved away: the workload fails (exit 3)
                target.rename(fs.mountpoint / "moved")
            elif how != "end":
                proc.send_signal(getattr(signal, how))
            if how == "SIGKILL":
                assert _gone_within(writer, 2), "the writer outlived a SIGKILLed tool"
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert _gone_within(writer, 2)
        assert _writers(fs.mountpoint) == []
        if how == "end":
            assert proc.returncode == 0, err
            bw = json.loads(out)["benches"][0]["background_write"]
            assert bw["written_bytes"] >= 16 << 20 and bw["cap_bytes"] <= _free(fs.mountpoint) // 2
        elif how == "error":
            faultkit.one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 3,
                                    "disappeared")
            assert os.listdir(fs.mountpoint / "moved") == []
        elif how in ("SIGINT", "SIGTERM"):
            assert proc.returncode == 128 + getattr(signal, how), err
            assert json.loads(out)["benches"][0]["partial"] is True
        if how == "SIGKILL":
            # The tool could not remove its temp dir: it holds the workload's files, never the
            # writer's (unnamed, freed with the writer). Remove the rest as a user would.
            # (pveperf's files, and its warm-up's in their own directory)
            (left,) = realfs.leftovers(target)
            names = [str(p.relative_to(target / left)) for p in (target / left).rglob("*")]
            assert all(n.split("/")[-1].startswith("tf_") or n == "warmup" for n in names), names
            shutil.rmtree(target / left)
        else:
            assert realfs.leftovers(fs.mountpoint) == [] and realfs.leftovers(target if target.exists() else
                                                                              fs.mountpoint / "moved") == []
        assert _free(fs.mountpoint, sync=True) >= free_before - (4 << 20), (free_before, _free(fs.mountpoint))
