"""Mid-run faults the other fault tests leave out: the sqlite workload on a failing disk, and
the measured directory moved away while the tool works in it (issue 6).

Each case runs the real CLI in a subprocess: exit 3, one `fsyncprobe: error:` line and no
traceback, the cut-short run's JSON marked `partial: true`, and every pre-existing file unchanged.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import faultkit, realfs
from tests.conftest import requires_root

REPO = Path(__file__).resolve().parent.parent
QUICK = ("--warmup", "0", "--no-sched-probe", "--no-progress")

# fs/ext4/ext4.h: EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32), the "godown" ioctl xfstests use to
# make a filesystem fail every later operation with EIO, as a dead disk would;
# EXT4_GOING_FLAGS_NOLOGFLUSH = 2 stops without flushing the journal. (device-mapper's error
# target is not available: this kernel has no dm driver.)
EXT4_IOC_SHUTDOWN = 0x8004587D
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def start_bench(target: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fsyncprobe", "bench", str(target), "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )


def wait_for_tool_dir(target: Path, proc: subprocess.Popen[str], timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [n for n in realfs.leftovers(target) if n.startswith("fsyncprobe-")]
        if left:
            time.sleep(0.5)  # past preparing: measuring
            return target / left[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the tool never made its temp dir")


def wait_until_measuring(ready: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 20) -> None:
    """Return once `ready()` shows the workload past its set-up and doing measured operations, so
    a fault now cuts a run that has samples (a fixed sleep after the temp dir appeared was too
    short on a loaded CI machine: the disk died during set-up and the run had 0 ops)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the workload never got past its set-up")


def wal_over(tool_dir: Path, size: int) -> Callable[[], bool]:
    """The sqlite workload's set-up (schema, 9 rows of 4 KiB) leaves about 30 frames (~120 KiB) in
    the WAL and each measured transaction appends about 3 more: past `size` = measuring."""
    def ready() -> bool:
        try:
            return (tool_dir / "config.db-wal").stat().st_size > size
        except FileNotFoundError:
            return False
    return ready


def pveperf_measuring(tool_dir: Path) -> Callable[[], bool]:
    """The pveperf workload creates its tf_*.dat files only in the measured phase."""
    return lambda: any(tool_dir.glob("tf_*.dat"))


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def partial_bench(done: subprocess.CompletedProcess[str], reason: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(done.stdout)
    bench: dict[str, Any] = report["benches"][0]
    assert bench["partial"] is True, bench
    assert reason in bench["partial_reason"], bench["partial_reason"]
    assert bench["ops"] > 0 and bench["latency"]["count"] == bench["ops"]
    return bench


@requires_root
def test_sqlite_workload_on_a_disk_that_fails_is_an_io_error_not_a_traceback(ext4: realfs.LoopFs) -> None:
    # SQLite reports the failed write or fsync as sqlite3.OperationalError ("disk I/O error",
    # SQLITE_IOERR_*), not as an OSError: it must still end as one line, exit 3.
    fs = ext4.mountpoint
    faultkit.plant(fs)
    os.sync()  # the planted files are on disk before the disk "dies"
    before = faultkit.tree_digest(fs)
    proc = start_bench(fs, "-w", "sqlite", "-d", "20s", *QUICK)
    wait_until_measuring(wal_over(wait_for_tool_dir(fs, proc), 400 * 1024), proc)
    fd = os.open(fs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)
    done = finish(proc)
    line = faultkit.one_line_error(done, 3, str(fs), "I/O error", "SQLite: SQLITE_IOERR")
    partial_bench(done, "I/O error")
    # Remount (journal replay) and look: what the dead filesystem kept the tool from removing
    # is named in the error line; everything that was there before is unchanged.
    realfs.run("umount", str(fs))
    realfs.run("mount", ext4.device, str(fs))
    left = realfs.leftovers(fs)
    for name in left:
        assert str(fs / name) in line and "could not be removed" in line, (left, line)
        shutil.rmtree(fs / name)
    assert faultkit.tree_digest(fs) == before


def test_measured_directory_moved_away_mid_run_keeps_nothing_of_ours(tmp_path: Path) -> None:
    # The operator (or a cleanup job) renames the directory while the tool measures in it: the
    # next open by path fails (ENOENT). The temp dir travelled with the directory; the tool
    # removes it through its fd of the directory (openat(2)), so nothing is left there.
    target = tmp_path / "target"
    target.mkdir()
    faultkit.plant(target)
    before = faultkit.tree_digest(target)
    proc = start_bench(target, "-w", "pveperf", "-d", "20s", *QUICK)
    wait_until_measuring(pveperf_measuring(wait_for_tool_dir(target, proc)), proc)
    moved = tmp_path / "moved"
    target.rename(moved)
    done = finish(proc)
    faultkit.one_line_error(done, 3, str(target), "disappeared while measuring")
    partial_bench(done, "disappeared")
    assert not target.exists()  # nothing recreated at the old path
    faultkit.assert_untouched(moved, before)


@requires_root
def test_sqlite_full_disk_maps_to_the_no_space_line(tmp_path: Path) -> None:
    # SQLite turns ENOSPC into SQLITE_FULL ("database or disk is full"), an sqlite3 error, not
    # an OSError: a real one, from a real full tmpfs, must read like every other ENOSPC.
    import sqlite3

    from fsyncprobe.measure.failures import as_measure_error

    with realfs.tmpfs(tmp_path, size="256k", name="full") as fs:
        con = sqlite3.connect(fs / "t.db", isolation_level=None)
        con.execute("CREATE TABLE t (x BLOB)")
        try:
            for _ in range(1000):
                con.execute("INSERT INTO t VALUES (?)", (os.urandom(16384),))
        except sqlite3.Error as exc:
            err = exc
        else:
            raise AssertionError("a 256 KiB tmpfs took 16 MiB")
        finally:
            con.close()
    assert getattr(err, "sqlite_errorname", "").startswith("SQLITE_FULL"), err
    message = str(as_measure_error(err, "/some/path"))
    assert message.startswith("/some/path: no space left") and "SQLITE_FULL" in message, message


@requires_root
def test_device_under_the_filesystem_runs_out_of_space(tmp_path: Path) -> None:
    # A thin-provisioned disk: an ext4 on a loop device whose sparse 128 MiB image lives on a
    # 40 MiB tmpfs. Mid-run the tmpfs is filled; the ext4 still shows free space, but its writes
    # fail with ENOSPC from below (drivers/block/loop.c passes it up as BLK_STS_NOSPC). The line
    # must not claim the filesystem is full when it is not.
    with realfs.tmpfs(tmp_path, size="40m", name="pool") as pool, realfs.loop_ext4(pool, 128, "thin") as thin:
        fs = thin.mountpoint
        faultkit.plant(fs)
        os.sync()
        before = faultkit.tree_digest(fs)
        # `append` into a preallocated (unwritten) 64 MiB file: every operation lands on image
        # blocks never written before, so it needs new room in the pool. (pveperf's 300 small
        # files let ext4 reuse blocks already in the image, and the run could end untouched.)
        proc = start_bench(fs, "-w", "append", "-b", "64k", "--file-size", "64M", "-d", "20s", *QUICK)
        wait_for_tool_dir(fs, proc)
        filler = pool / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        try:
            done = finish(proc)
        finally:
            filler.unlink()
        line = faultkit.one_line_error(done, 3, str(fs), "no space left on the device under the filesystem")
        partial_bench(done, "device under the filesystem")
        for name in realfs.leftovers(fs):  # if the starved fs kept it, the line says where
            assert str(fs / name) in line and "could not be removed" in line, line
            shutil.rmtree(fs / name)
        assert faultkit.tree_digest(fs) == before
