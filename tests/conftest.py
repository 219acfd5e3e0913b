"""Shared fixtures: real filesystems made per test, removed by name afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fsyncprobe.measure.nodelock import ENV_LOCK_FILE
from tests import realfs, ringkit

requires_root = pytest.mark.skipif(not realfs.is_root(), reason="needs root for loop devices, mounts and cgroups")


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[realfs.LoopFs]:
    """A 64 MiB loop-mounted ext4 (root only)."""
    if not realfs.is_root():
        pytest.skip("needs root for loop devices and mounts")
    with realfs.loop_ext4(tmp_path) as fs:
        yield fs


@pytest.fixture
def slow_ext4(tmp_path: Path) -> Iterator[realfs.LoopFs]:
    """A loop-mounted ext4 throttled to 50 write IOPS: a "USB stick" (root only)."""
    if not realfs.is_root():
        pytest.skip("needs root for loop devices, mounts and the blkio throttle")
    with realfs.loop_ext4(tmp_path, name="slow") as fs, realfs.write_iops_limit(fs, 50):
        yield fs


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A private tmpfs (root only)."""
    if not realfs.is_root():
        pytest.skip("needs root to mount tmpfs")
    with realfs.tmpfs(tmp_path) as mnt:
        yield mnt


@pytest.fixture
def make_ring(tmp_path: Path) -> Iterator[Callable[..., ringkit.Ring]]:
    """Start real Corosync rings in network namespaces (tests/ringkit.py); all removed afterwards."""
    yield from ringkit.make_ring_fixture(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _sigint_not_ignored() -> Iterator[None]:
    """The runs the suite starts can be stopped with SIGINT, however the suite was started. bash
    starts a background command of a non-interactive shell (`cmd &` in a script) with SIGINT
    ignored, children inherit an ignored signal across exec (signal(7)), and Python then installs
    no KeyboardInterrupt handler (signal module docs): the tool keeps an ignored SIGINT ignored, as
    a program should, and the tests that stop it with SIGINT waited 30 s and left it holding the
    node lock for the next 40 tests. A handled SIGINT here is reset to the default in children."""
    saved = signal.getsignal(signal.SIGINT)
    if saved is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if saved is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(autouse=True, scope="session")
def _private_node_lock() -> Iterator[None]:
    """Every run the suite starts takes the one-measurement-per-node lock in a file of this test
    session's (fsyncprobe/measure/nodelock.py, `$FSYNCPROBE_LOCK_FILE`), not /run's: the suite writes
    nothing outside its temp dirs, and two suites on one machine do not turn each other's runs
    into "another measurement is running" (the tests of the lock name their own files)."""
    # Outside pytest's 0700 base directory: the runs the faults suite starts as an unprivileged
    # user must reach the lock too (they share it read-only, as on a node).
    lock_dir = tempfile.mkdtemp(prefix="fsp-test-lock-")
    os.chmod(lock_dir, 0o755)
    lock = os.path.join(lock_dir, "fsyncprobe.lock")
    with open(lock, "w"):
        pass
    os.chmod(lock, 0o644)
    saved = os.environ.get(ENV_LOCK_FILE)
    os.environ[ENV_LOCK_FILE] = lock
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_LOCK_FILE, None)
        else:
            os.environ[ENV_LOCK_FILE] = saved
        shutil.rmtree(lock_dir, ignore_errors=True)
