"""`--output` onto things that are not plain files: a device node, a FIFO, a symlink (issue 6).

write_output writes a temp file and renames it over the target, so a full disk never leaves half
a report. Renamed over a device node it would replace the node itself: run as root,
`fsyncprobe bench ... -o /dev/full` turned /dev/full into a regular file. These tests use nodes
they make themselves (mknod in a pytest tmp dir), never the system's.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from tests import faultkit, realfs
from tests.cli_helpers import fsyncprobe
from tests.conftest import requires_root

QUICK = ("-w", "overwrite", "--file-size", "64k", "--ops", "20", "--warmup", "0", "--no-sched-probe", "--no-progress")


def _node(path: Path, major: int, minor: int) -> Path:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    return path


def _same_node(path: Path, major: int, minor: int) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == major and os.minor(st.st_rdev) == minor


@requires_root
@pytest.mark.parametrize(("name", "major", "minor"), [("full", 1, 7), ("null", 1, 3)])
def test_output_to_a_device_node_writes_into_it_and_keeps_the_node(
    tmp_path: Path, name: str, major: int, minor: int
) -> None:
    measured = tmp_path / "measured"
    measured.mkdir()
    node = _node(tmp_path / name, major, minor)  # the kernel's full / null device, our own node
    proc = fsyncprobe("bench", str(measured), "--json", "-o", str(node), *QUICK, timeout=60)
    if name == "full":  # writes to /dev/full fail with ENOSPC (drivers/char/mem.c)
        faultkit.one_line_error(proc, 3, f"--output {node}", "No space left", "the report was not written")
    else:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert _same_node(node, major, minor), "the device node was replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["measured", name])  # no temp file
    assert realfs.leftovers(measured) == []


def test_output_to_a_fifo_feeds_the_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = fsyncprobe("bench", str(tmp_path), "--json", "-o", str(fifo), *QUICK, timeout=60)
    reader.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(got[0])["benches"][0]["ops"] == 20
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_output_through_a_symlink_replaces_the_file_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "reports" / "node1.json"
    real.parent.mkdir()
    real.write_text("{}\n")
    real.chmod(0o644)
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    measured = tmp_path / "measured"
    measured.mkdir()
    proc = fsyncprobe("bench", str(measured), "--json", "-o", str(link), *QUICK, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["benches"][0]["ops"] == 20
    assert stat.S_IMODE(real.stat().st_mode) == 0o644  # the report keeps the mode it had
    assert sorted(p.name for p in real.parent.iterdir()) == ["node1.json"]  # no temp file left


def _bench_with_stdout(measured: Path, stdout: int | None, close_stdout: bool = False) -> tuple[int, str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "fsyncprobe", "bench", str(measured), "--json", *QUICK],
        stdout=stdout if stdout is not None else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )
    return proc.returncode, proc.stderr


@requires_root
def test_report_to_a_full_stdout_is_one_line(tmp_path: Path) -> None:
    measured = tmp_path / "measured"
    measured.mkdir()
    node = _node(tmp_path / "full", 1, 7)
    fd = os.open(node, os.O_WRONLY)
    try:
        code, err = _bench_with_stdout(measured, fd)
    finally:
        os.close(fd)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and lines == ["fsyncprobe: error: standard output: No space left on device; "
                                   "the report was not written"], (code, err)
    assert realfs.leftovers(measured) == []


def test_report_to_a_closed_stdout_is_one_line(tmp_path: Path) -> None:
    code, err = _bench_with_stdout(tmp_path, None, close_stdout=True)
    assert code == 3 and "standard output is closed" in err and "Traceback" not in err, (code, err)
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert realfs.leftovers(tmp_path) == []
