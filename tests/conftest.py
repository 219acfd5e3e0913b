"""Shared fixtures: real filesystems made per test, removed by name afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
