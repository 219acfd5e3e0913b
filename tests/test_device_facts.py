"""Fact collection on this machine: pyudev and plain sysfs walk the same chain.

This project's machines have libudev but no udev daemon running (no /run/udev/data), as in
containers: the collector must then fall back to sysfs alone and say so, and pyudev, when handed a
context anyway, must give the same devices with at least the kernel's uevent properties. The path
with a real udevd and its records is tests/test_device_udev.py.
"""

from __future__ import annotations

import os

import pytest

from fsyncprobe.device import describe
from fsyncprobe.device.facts import _udev_context, collect_chain
from fsyncprobe.device.mounts import mount_of


def _root_block() -> str:
    entry = mount_of("/")
    return os.path.basename(os.path.realpath(f"/sys/dev/block/{entry.major_minor}"))


def test_pyudev_and_sysfs_walk_the_same_chain() -> None:
    pyudev = pytest.importorskip("pyudev")
    name = _root_block()
    via_udev = collect_chain(name, pyudev.Context())
    via_sysfs = collect_chain(name)
    assert via_sysfs, "the root block device has sysfs ancestors"
    assert [n.sys_name for n in via_udev] == [n.sys_name for n in via_sysfs]
    assert [n.driver for n in via_udev] == [n.driver for n in via_sysfs]
    assert [n.attributes for n in via_udev] == [n.attributes for n in via_sysfs]
    assert via_udev[0].properties["DEVTYPE"] == via_sysfs[0].properties["DEVTYPE"]
    if os.path.exists(f"/run/udev/data/b{mount_of('/').major_minor}"):
        # pyudev adds what udev recorded (at least SUBSYSTEM and USEC_INITIALIZED) to sysfs's uevent
        assert via_udev[0].properties["SUBSYSTEM"] == "block" and "USEC_INITIALIZED" in via_udev[0].properties
    else:
        # with no udev record, pyudev would only repeat the uevent: nothing is taken from it
        assert via_udev[0].properties == via_sysfs[0].properties


def test_no_udev_record_means_sysfs_only_and_the_report_says_so() -> None:
    report = describe("/")
    has_db = os.path.isdir("/run/udev/data")
    # udev counts only where it recorded the device (a database without its record adds nothing)
    recorded = os.path.exists(f"/run/udev/data/b{mount_of('/').major_minor}")
    assert (_udev_context() is not None) is has_db
    assert report.udev is recorded
    assert any("sysfs alone" in e for e in report.evidence) is not recorded


def test_a_run_keeps_going_when_the_device_cannot_be_described(tmp_path: os.PathLike[str]) -> None:
    from fsyncprobe.pipeline import Feedback, _device_of

    warnings: list[str] = []
    assert _device_of(os.path.join(tmp_path, "gone"), Feedback(warn=warnings.append)) == (None, None)
    assert len(warnings) == 1
    assert "device not identified" in warnings[0] and "no such file" in warnings[0]
    snap, found = _device_of(str(tmp_path), Feedback(warn=warnings.append))
    assert snap is not None and found is not None and found.path == str(tmp_path)
    assert len(warnings) == 1


def test_snapshot_file_errors_name_the_snapshot_option(tmp_path: os.PathLike[str]) -> None:
    from tests.cli_helpers import fsyncprobe

    proc = fsyncprobe("device", "/", "--snapshot", os.path.join(tmp_path, "no", "such", "dir", "s.json"))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("fsyncprobe: error: --snapshot ") and "nothing was written" in proc.stderr
    both = fsyncprobe("device", "/", "--snapshot", "-")
    assert both.returncode == 2 and both.stdout == ""
    assert "--snapshot -" in both.stderr
