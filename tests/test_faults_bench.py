"""`fsyncprobe bench` against real failing filesystems the tests make (issue 6).

Every case runs the real CLI in a subprocess and checks what shared/DESIGN.md promises: the
exit code (2 usage, 3 could not measure), one `fsyncprobe: error:` line and no traceback, no
temp dir left behind (or, where the filesystem itself went read-only, the leftover named in
that line), every pre-existing file byte for byte unchanged, and a cut-short run's JSON marked
`partial: true`. SIGINT/SIGTERM in warm-up and mid-run are in test_measure_realfs.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import faultkit, realfs
from tests.cli_helpers import fsyncprobe
from tests.conftest import requires_root

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534
QUICK = ("--warmup", "0", "--no-sched-probe", "--no-progress")


def start_bench(target: Path, *args: str, fmt: str = "json") -> subprocess.Popen[str]:
    """`fsyncprobe bench TARGET ARGS --format FMT` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "fsyncprobe", "bench", str(target), "--format", fmt, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def tool_dir(target: Path, proc: subprocess.Popen[str], timeout: float = 30) -> Path:
    """The tool's private temp dir, once pveperf's workload is measuring in it (with no warm-up,
    the first written file means the first measured operation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in realfs.leftovers(target):
            d = target / name
            with contextlib.suppress(OSError):
                if name.startswith("fsyncprobe-") and any(os.stat(f).st_size for f in d.glob("tf_*.dat")):
                    time.sleep(0.2)  # a few hundred operations
                    return d
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the tool never started measuring")


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def partial_report(proc: subprocess.CompletedProcess[str], *reason: str) -> dict[str, Any]:
    """The JSON a cut-short run printed: one bench, marked partial, with what it measured."""
    report: dict[str, Any] = json.loads(proc.stdout)
    bench = report["benches"][0]
    assert bench["partial"] is True
    assert bench["ops"] > 0 and bench["latency"]["count"] == bench["ops"]
    for word in reason:
        assert word in bench["partial_reason"], bench["partial_reason"]
    assert any(w.startswith("partial run:") for w in report["warnings"])
    assert report["device"] is not None and report["device"]["mount"]["mountpoint"]  # what was measured
    return report


# --- paths that cannot hold our temp files --------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device-node", "file", "missing"])
def test_unsuitable_path(tmp_path: Path, kind: str) -> None:
    faultkit.plant(tmp_path)
    expect: tuple[int, str]
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
        expect = (3, "is a FIFO, not a directory")
    elif kind == "device-node":
        target = Path("/dev/null")
        expect = (3, "is a device node, not a directory")
    elif kind == "file":
        target = tmp_path / faultkit.PREEXISTING
        expect = (3, "is a file, not a directory")
    else:
        target = tmp_path / "no" / "such"
        expect = (2, "no such file or directory")
    before = faultkit.tree_digest(tmp_path)
    proc = fsyncprobe("bench", str(target), "--json", "-d", "1s", *QUICK, timeout=30)
    faultkit.one_line_error(proc, expect[0], str(target), expect[1])
    assert proc.stdout == ""
    faultkit.assert_untouched(tmp_path, before)
    if kind == "device-node":
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _kernel_interface_dirs() -> list[tuple[str, str]]:
    """(directory, fstype) of this machine's mounted kernel interfaces the tests may point at:
    /proc, /sys and the first cgroup hierarchy (cgroup v1 or v2, whichever this kernel mounts)."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            mountpoint, fstype = fields[4], fields[fields.index("-") + 1]
            if fstype in ("proc", "sysfs") and mountpoint in ("/proc", "/sys"):
                found.setdefault(fstype, mountpoint)
            elif fstype in ("cgroup", "cgroup2"):
                found.setdefault("cgroup", mountpoint)
    return [(d, t) for t, d in sorted(found.items())]


@pytest.mark.parametrize("command", ["bench", "verdict"])
def test_kernel_interface_is_refused_before_writing(command: str) -> None:
    # mkdir in a cgroup filesystem creates a cgroup (cgroups(7)): the refusal must come before
    # the tool makes its private directory there, not after.
    targets = _kernel_interface_dirs()
    assert {t for _, t in targets} >= {"proc", "sysfs"} and len(targets) == 3, targets
    for directory, _ in targets:
        before = sorted(os.listdir(directory))
        extra = ("--no-corosync-conf",) if command == "verdict" else ()
        proc = fsyncprobe(command, directory, "--json", "-d", "1s", *QUICK, *extra, timeout=30)
        line = faultkit.one_line_error(proc, 2, directory, "a kernel interface, not a disk")
        assert "on cgroup" in line or "on proc" in line or "on sysfs" in line, line
        assert proc.stdout == ""
        assert not [n for n in os.listdir(directory) if n.startswith("fsyncprobe-")]
        if directory != "/proc":  # /proc's pid directories come and go on their own
            assert sorted(os.listdir(directory)) == before


# --- no space ---------------------------------------------------------------------------------


@requires_root
def test_no_space_up_front_is_refused_before_writing(tmp_path: Path) -> None:
    with realfs.tmpfs(tmp_path, size="2m", name="tiny") as fs:
        faultkit.plant(fs)
        before = faultkit.tree_digest(fs)
        proc = fsyncprobe("bench", str(fs), "-w", "append", "--file-size", "64m", "-d", "1s", *QUICK, timeout=30)
        faultkit.one_line_error(proc, 3, "not enough free space", "needs 65.0 MiB", "--file-size")
        assert proc.stdout == ""
        faultkit.assert_untouched(fs, before)


@requires_root
def test_disk_fills_up_mid_run(tmp_path: Path) -> None:
    # tmpfs size= caps the pages it may hold (Documentation/filesystems/tmpfs.rst). pveperf's
    # workload truncates and rewrites its files, so each operation gives a page back and takes
    # one again; another writer grabbing every free page makes the next write fail with ENOSPC.
    # The stall probe stays on here: its process must go too on this error path.
    with realfs.tmpfs(tmp_path, size="8m", name="filling") as fs:
        faultkit.plant(fs)
        before = faultkit.tree_digest(fs)
        proc = start_bench(fs, "-w", "pveperf", "-d", "20s", "--warmup", "0", "--no-progress")
        tool_dir(fs, proc)
        filler = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    os.write(filler, b"x" * 4096)
                except OSError:
                    time.sleep(0.0002)
        finally:
            os.close(filler)
        done = finish(proc)
        (fs / "filler").unlink()
        faultkit.one_line_error(done, 3, str(fs), "no space left")
        partial_report(done, "no space left")
        faultkit.assert_untouched(fs, before)


# --- read-only and failing filesystems --------------------------------------------------------


@requires_root
def test_read_only_before_the_run(ext4: realfs.LoopFs) -> None:
    fs = ext4.mountpoint
    faultkit.plant(fs)
    before = faultkit.tree_digest(fs)
    realfs.run("mount", "-o", "remount,ro", str(fs))
    try:
        proc = fsyncprobe("bench", str(fs), "--json", "-d", "1s", *QUICK, timeout=30)
    finally:
        realfs.run("mount", "-o", "remount,rw", str(fs))
    faultkit.one_line_error(proc, 3, str(fs), "read-only")
    assert proc.stdout == ""
    faultkit.assert_untouched(fs, before)


def _leftovers_named(line: str, fs: Path) -> list[str]:
    """Temp dirs the tool could not remove must be named in its error line; return them."""
    left = realfs.leftovers(fs)
    for name in left:
        assert str(fs / name) in line and "could not be removed" in line, (left, line)
    return left


@requires_root
def test_remounted_read_only_mid_run(ext4: realfs.LoopFs) -> None:
    # An administrator's `mount -o remount,ro`: refused (EBUSY) while a file is open for
    # writing, so it is retried until it lands between two of pveperf's open/write/close.
    fs = ext4.mountpoint
    faultkit.plant(fs)
    before = faultkit.tree_digest(fs)
    proc = start_bench(fs, "-w", "pveperf", "-d", "20s", *QUICK)
    tool_dir(fs, proc)
    try:
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if realfs.run("mount", "-o", "remount,ro", str(fs), check=False).returncode == 0:
                break
        done = finish(proc)
    finally:
        realfs.run("mount", "-o", "remount,rw", str(fs), check=False)
    line = faultkit.one_line_error(done, 3, str(fs), "read-only")
    partial_report(done, "read-only")
    # The tool cannot delete on a read-only filesystem: it must say where its leftover is.
    for name in _leftovers_named(line, fs):
        shutil.rmtree(fs / name)
    faultkit.assert_untouched(fs, before)


@contextlib.contextmanager
def _ext4_errors_remount_ro(base: Path) -> Iterator[tuple[Path, str]]:
    image = base / "erring.img"
    with open(image, "wb") as f:
        f.truncate(48 << 20)
    try:
        with realfs.loop_device(image) as dev:
            realfs.run("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev)
            with realfs.mounted(dev, base / "erring-mnt", options="errors=remount-ro") as mnt:
                yield mnt, dev
    finally:
        image.unlink(missing_ok=True)


@requires_root
def test_filesystem_error_turns_it_read_only_mid_run(tmp_path: Path) -> None:
    # ext4 reports a filesystem error (written to /sys/fs/ext4/DEV/trigger_fs_error, the
    # kernel's own test hook, fs/ext4/sysfs.c) and, mounted errors=remount-ro, stops writing.
    with _ext4_errors_remount_ro(tmp_path) as (fs, dev):
        hook = Path("/sys/fs/ext4") / os.path.basename(dev) / "trigger_fs_error"
        assert hook.exists(), f"{hook} missing: this kernel's ext4 has no error hook"
        faultkit.plant(fs)
        before = faultkit.tree_digest(fs)
        proc = start_bench(fs, "-w", "pveperf", "-d", "20s", *QUICK)
        tool_dir(fs, proc)
        hook.write_text("fsyncprobe fault test: simulated filesystem error\n")
        done = finish(proc)
        line = faultkit.one_line_error(done, 3, str(fs))
        assert "read-only" in line or "I/O error" in line, line
        report = partial_report(done)
        assert report["benches"][0]["partial_reason"] in line
        # The filesystem stays read-only until unmounted; whatever the tool could not remove is
        # named; everything that was there before is unchanged.
        left = _leftovers_named(line, fs)
        after = faultkit.tree_digest(fs)
        assert {k: v for k, v in after.items() if k.split("/")[0] not in left} == before


@requires_root
def test_device_write_errors_mid_run_are_io_errors(tmp_path: Path) -> None:
    # A real EIO from the block layer, without device-mapper: the ext4 under test sits on a
    # loop device whose backing image lives on another (outer) ext4. Mid-run the image is
    # made immutable (chattr +i): the loop driver's writes to it fail with EPERM, which the
    # block layer turns into BLK_STS_IOERR (errno_to_blk_status, block/blk-core.c), so the
    # filesystem under test sees EIO on writeback and fsync returns it.
    with realfs.loop_ext4(tmp_path, 96, "outer") as outer:
        inner_image = outer.mountpoint / "inner.img"
        try:
            with realfs.loop_ext4(outer.mountpoint, 48, "inner") as inner:
                fs = inner.mountpoint
                faultkit.plant(fs)
                before = faultkit.tree_digest(fs)
                proc = start_bench(fs, "-w", "pveperf", "-d", "20s", *QUICK)
                tool_dir(fs, proc)
                realfs.run("chattr", "+i", str(inner_image))
                try:
                    done = finish(proc)
                finally:
                    realfs.run("chattr", "-i", str(inner_image))
                line = faultkit.one_line_error(done, 3, str(fs))
                assert "I/O error" in line or "read-only" in line, line
                partial_report(done)
                left = _leftovers_named(line, fs)
                after = faultkit.tree_digest(fs)
                assert {k: v for k, v in after.items() if k.split("/")[0] not in left} == before
        finally:
            if inner_image.exists():
                realfs.run("chattr", "-i", str(inner_image), check=False)


# --- a path that disappears, a planted symlink -------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "table", "markdown"])
def test_temp_dir_deleted_under_the_tool(tmp_path: Path, fmt: str) -> None:
    faultkit.plant(tmp_path)
    before = faultkit.tree_digest(tmp_path)
    proc = start_bench(tmp_path, "-w", "pveperf", "-d", "20s", *QUICK, fmt=fmt)
    # Moved out of the way in one step, then deleted: an rmtree alone races the tool, which may
    # create its next file (pveperf opens with O_CREAT, as Perl's open does) between rmtree's
    # unlinks, so the directory would survive and the run would never notice.
    gone = tmp_path.parent / f"{tmp_path.name}-gone"
    os.rename(tool_dir(tmp_path, proc), gone)
    done = finish(proc)
    shutil.rmtree(gone)
    line = faultkit.one_line_error(done, 3, str(tmp_path), "disappeared while measuring")
    if fmt == "json":
        partial_report(done, "disappeared")
    else:  # the human formats say so in the title and in a row of their own
        assert "PARTIAL" in done.stdout and "partial" in done.stdout, done.stdout
        assert "disappeared while measuring" in done.stdout and line
    faultkit.assert_untouched(tmp_path, before)


def _can_run_as_nobody() -> bool:
    """Whether uid 65534 can run this interpreter and import the package from the tree (it
    cannot when the interpreter lives under a private home like /root/.pyenv)."""
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c",
         "import fsyncprobe.cli"],
        capture_output=True, cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return proc.returncode == 0


def unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without any right to write where uid 65534 may not.

    Preferably the real thing, uid/gid 65534 (`setpriv --reuid`). Where that user cannot run
    the interpreter, uid 0 with every capability dropped (bounding set empty, so none come back
    on exec: capabilities(7)): without CAP_DAC_OVERRIDE root obeys file modes like anyone,
    and a directory owned by 65534 with mode 0755 is as closed to it as to any other user.
    """
    if _can_run_as_nobody():
        return ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    return ("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp dirs are 0700), removed afterwards."""
    if not realfs.is_root():
        pytest.skip("needs root to run a command as another user")
    d = Path(tempfile.mkdtemp(prefix="fsyncprobe-faults-", dir="/tmp"))
    try:
        d.chmod(0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _closed_dir(parent: Path, name: str) -> Path:
    """A directory the unprivileged runner may read but not write: owned by 65534, mode 0555
    (no write even for its owner), or owned by root 0755 when the runner is 65534 itself."""
    d = parent / name
    d.mkdir()
    faultkit.plant(d)
    os.chown(d, NOBODY, NOBODY)
    d.chmod(0o555)
    return d


@requires_root
def test_symlink_planted_among_the_tools_files_is_not_followed(tmp_path: Path, public_dir: Path) -> None:
    # The temp dir is mkdtemp's (0700, root's): another user cannot put anything in it. Root
    # can, so play the attacker who got that far: swap every file pveperf rotates through for a
    # symlink to a victim file. open(O_NOFOLLOW) refuses them (ELOOP); the victim is untouched.
    target = public_dir
    faultkit.plant(target)
    victim = tmp_path / "victim"
    victim.write_text("must never be truncated or written\n")
    victim_before = victim.read_bytes()
    before = faultkit.tree_digest(target)
    proc = start_bench(target, "-w", "pveperf", "-d", "20s", *QUICK)
    private = tool_dir(target, proc)
    st = os.stat(private)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0
    outsider = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "ln", "-s", str(victim),
         str(private / "evil")],
        capture_output=True, text=True,
    )
    assert outsider.returncode != 0 and "Permission denied" in outsider.stderr, outsider.stderr
    # One file, swapped atomically (the symlink is made outside and renamed over it), then left
    # alone: pveperf rotates through all 300 files, so it reaches this one within a lap.
    staged = target / "staged-link"
    staged.symlink_to(victim)
    os.replace(staged, private / "tf_150.dat")
    done = finish(proc)
    faultkit.one_line_error(done, 3, str(target), "symlink", "not followed")
    partial_report(done, "symlink")
    assert victim.read_bytes() == victim_before
    faultkit.assert_untouched(target, before)


@requires_root
def test_no_write_permission_as_unprivileged_user(public_dir: Path) -> None:
    target = _closed_dir(public_dir, "closed")
    before = faultkit.tree_digest(target)
    proc = subprocess.run(
        [*unprivileged(), sys.executable, "-m", "fsyncprobe", "bench", str(target), "--json", "-d", "1s", *QUICK],
        capture_output=True, text=True, cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
    )
    faultkit.one_line_error(proc, 3, str(target), "permission denied")
    assert proc.stdout == ""
    faultkit.assert_untouched(target, before)


# --- where the report goes -----------------------------------------------------------------------


@requires_root
def test_full_output_filesystem_keeps_the_old_report(tmp_path: Path) -> None:
    measured = tmp_path / "measured"
    measured.mkdir()
    with realfs.tmpfs(tmp_path, size="1m", name="outfs") as out_fs:
        old = out_fs / "report.json"
        old.write_text('{"an": "older report the user keeps"}\n')
        fd = os.open(out_fs / "filler", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x" * 4096)
        finally:
            os.close(fd)
        before = faultkit.tree_digest(out_fs)
        proc = fsyncprobe("bench", str(measured), "-w", "overwrite", "--file-size", "64k", "--ops", "50",
                          "--json", "-o", str(old), *QUICK, timeout=60)
        faultkit.one_line_error(proc, 3, f"--output {old}", "No space left", "existing file is unchanged")
        assert faultkit.tree_digest(out_fs) == before  # old report intact, no temp file left
        assert realfs.leftovers(measured) == []


def test_output_into_missing_directory(tmp_path: Path) -> None:
    faultkit.plant(tmp_path)
    before = faultkit.tree_digest(tmp_path)
    dest = tmp_path / "no-such-dir" / "r.json"
    proc = fsyncprobe("bench", str(tmp_path), "-w", "overwrite", "--file-size", "64k", "--ops", "20",
                      "-o", str(dest), *QUICK, timeout=60)
    faultkit.one_line_error(proc, 3, f"--output {dest}", "No such file or directory", "nothing was written")
    faultkit.assert_untouched(tmp_path, before)


@requires_root
def test_output_into_unwritable_directory_as_unprivileged_user(public_dir: Path) -> None:
    measured = public_dir / "measured"
    measured.mkdir()
    os.chown(measured, NOBODY, NOBODY)
    measured.chmod(0o777)
    closed = _closed_dir(public_dir, "reports")
    before = faultkit.tree_digest(closed)
    dest = closed / "r.json"
    proc = subprocess.run(
        [*unprivileged(), sys.executable, "-m", "fsyncprobe", "bench", str(measured), "-w", "overwrite",
         "--file-size", "64k", "--ops", "20", "-o", str(dest), *QUICK],
        capture_output=True, text=True, cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
    )
    faultkit.one_line_error(proc, 3, f"--output {dest}", "Permission denied")
    faultkit.assert_untouched(closed, before)
    assert realfs.leftovers(measured) == []
