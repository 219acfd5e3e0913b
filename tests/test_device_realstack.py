"""Device resolution on real stacks built here: partitions, loop in loop, btrfs on two devices,
tmpfs, overlayfs, and `/` itself. Each must resolve to the right leaves and class.

This machine's kernel has no device-mapper or md driver (no /dev/mapper/control, no
/proc/mdstat), so LVM, LUKS and md RAID are covered by replaying snapshots of real machines
(tests/test_device_snapshots.py)."""

from __future__ import annotations

import json
import os
import stat
import struct
import time
from pathlib import Path

import pytest

from fsyncprobe.device import describe, snapshot
from fsyncprobe.device.types import DeviceClass
from fsyncprobe.measure.blockstats import BlockDevice, devices_of
from tests import realfs
from tests.cli_helpers import fsyncprobe

pytestmark = pytest.mark.skipif(not realfs.is_root(), reason="needs root for loop devices, dm and mounts")


def _root_class() -> DeviceClass:
    """The class `/` has on this machine (checked on its own in test_root_is_virtual_not_hdd)."""
    return describe("/").device_class


def _sparse(path: Path, size_mb: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    return path


def _dos_image(path: Path, size_mb: int, first_mb: int) -> Path:
    """A sparse image with a DOS partition table of two Linux partitions: `first_mb` MiB from 1 MiB,
    then the rest, as `sfdisk` makes for "label: dos / ,24M / ,". Written here rather than with
    sfdisk(8), which ends with sync(2): a sync of every filesystem on the machine, seen taking 85 s
    while other work wrote to the disk. The MBR layout: four 16-byte entries at byte 446 (boot flag,
    CHS start, type 0x83, CHS end, first LBA, sector count, little-endian) and 0x55AA at byte 510."""
    sectors = (size_mb << 20) // 512
    first = (1 << 20) // 512
    size1 = (first_mb << 20) // 512
    start2 = first + size1
    entries = b"".join(struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, count)
                       for start, count in ((first, size1), (start2, sectors - start2)))
    mbr = bytearray(512)
    mbr[440:444] = os.urandom(4)  # disk identifier
    mbr[446:446 + len(entries)] = entries
    mbr[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(mbr)
        f.truncate(size_mb << 20)
    return path


def _kname(dev: str) -> str:
    return os.path.basename(os.path.realpath(dev))


def test_root_is_virtual_not_hdd() -> None:
    report = describe("/")
    leaf = report.leaves[0]
    sys_path = os.path.realpath(f"/sys/class/block/{leaf.name}")
    assert os.path.exists(sys_path)
    if "/virtio" in sys_path:
        # virtio-blk says rotational=1 for any disk; that must not make it an HDD.
        assert leaf.device_class is DeviceClass.VIRTUAL, leaf
        assert any("virtio" in e for e in leaf.evidence)
        assert report.device_class is DeviceClass.VIRTUAL
    assert report.mount.mountpoint == "/"
    if not os.path.isdir("/run/udev/data"):
        assert not report.udev
        assert any("sysfs alone" in e for e in report.evidence)


def _partition_node(dev: str, number: int, where: Path) -> str:
    """A device node for partition `number` of `dev`. Without udev (this project's machines) the
    kernel lists the partition in sysfs but nobody creates /dev/loopNpM, so the test makes its own
    node in its temp dir from the partition's `dev` (MAJ:MIN) attribute."""
    name = f"{_kname(dev)}p{number}"
    sys_dev = Path(f"/sys/class/block/{name}/dev")
    for _ in range(20):  # partscan is asynchronous
        if sys_dev.exists():
            break
        time.sleep(0.05)
    else:
        # Seen here: `losetup --partscan` left the table unread; partx(8) -a adds the partitions
        # through the BLKPG ioctl.
        realfs.run("partx", "-a", dev)
    if Path(f"/dev/{name}").exists():
        return f"/dev/{name}"
    major, minor = (int(x) for x in sys_dev.read_text().split(":"))
    node = where / name
    os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
    return str(node)


def test_partitioned_loop_device(tmp_path: Path) -> None:
    image = _dos_image(tmp_path / "disk.img", 64, 24)  # two DOS partitions: 24 MiB, then the rest
    with realfs.loop_device(image, partscan=True) as dev:
        part = _partition_node(dev, 2, tmp_path)
        realfs.run("mkfs.ext4", "-q", "-F", part)
        with realfs.mounted(part, tmp_path / "mnt") as mnt:
            report = describe(str(mnt))
            loop = _kname(dev)
            (leaf,) = report.leaves
            assert leaf.stack[:2] == (f"{loop}p2", loop), leaf.stack
            # the image lives on `/`'s filesystem, so the leaf is `/`'s disk
            assert leaf.name == describe("/").leaves[0].name
            assert report.device_class is _root_class()
            devices = devices_of(snapshot(str(mnt)))
            assert devices[0] == BlockDevice(f"{loop}p2", "mounted")
            assert BlockDevice(leaf.name, "leaf") in devices


def test_loop_inside_a_loop_mounted_filesystem(tmp_path: Path) -> None:
    with (
        realfs.loop_ext4(tmp_path, size_mb=96, name="outer") as outer,
        realfs.loop_ext4(outer.mountpoint, size_mb=32, name="inner") as inner,
    ):
        report = describe(str(inner.mountpoint))
        (leaf,) = report.leaves
        assert leaf.stack[:2] == (inner.kernel_name, outer.kernel_name), leaf.stack
        assert leaf.name == describe("/").leaves[0].name
        assert any(" -> ".join(leaf.stack) in e for e in report.evidence)


def test_loop_file_on_tmpfs_is_ram(tmp_path: Path) -> None:
    with realfs.tmpfs(tmp_path, size="80m") as ram, realfs.loop_ext4(ram, size_mb=32) as fs:
        report = describe(str(fs.mountpoint))
        assert report.device_class is DeviceClass.RAM, report
        assert any(leaf.name == f"tmpfs:{ram}" for leaf in report.leaves)


def test_btrfs_over_two_loop_devices(tmp_path: Path) -> None:
    a, b = _sparse(tmp_path / "a.img", 160), _sparse(tmp_path / "b.img", 160)
    with realfs.loop_device(a) as da, realfs.loop_device(b) as db:
        realfs.run("mkfs.btrfs", "-q", "-f", "-d", "raid1", "-m", "raid1", da, db)
        realfs.run("btrfs", "device", "scan", da, db, check=False)
        with realfs.mounted(da, tmp_path / "mnt", fstype="btrfs") as mnt:
            report = describe(str(mnt))
            seconds = {leaf.stack[0] for leaf in report.leaves}
            # both member devices, though mountinfo names one and st_dev is anonymous
            assert seconds == {_kname(da), _kname(db)}, report.leaves
            assert report.mount.fstype == "btrfs"
            assert report.device_class is _root_class()


def test_tmpfs_is_ram(tmp_path: Path) -> None:
    with realfs.tmpfs(tmp_path) as mnt:
        report = describe(str(mnt))
        assert report.device_class is DeviceClass.RAM
        assert devices_of(snapshot(str(mnt))) == ()


def test_overlayfs_follows_its_upper_layer(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    with realfs.tmpfs(tmp_path, name="up") as up:
        (up / "upper").mkdir()
        (up / "work").mkdir()
        opts = f"lowerdir={lower},upperdir={up / 'upper'},workdir={up / 'work'}"
        with realfs.mounted("overlay", tmp_path / "merged", fstype="overlay", options=opts) as merged:
            report = describe(str(merged))
            assert report.mount.fstype == "overlay"
            assert report.device_class is DeviceClass.RAM, report


def test_cli_snapshot_round_trip(tmp_path: Path) -> None:
    with realfs.loop_ext4(tmp_path) as fs:
        snap = tmp_path / "snap.json"
        live = fsyncprobe("device", str(fs.mountpoint), "--snapshot", str(snap), "--json")
        assert live.returncode == 0, live.stderr
        saved = json.loads(snap.read_text())
        assert saved["snapshot_version"] == 1
        assert saved["stacks"][0][0] == fs.kernel_name
        assert saved["chains"][0][0]["subsystem"] == "block"
    replay = fsyncprobe("device", "--from-snapshot", str(snap), "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["device"] == json.loads(live.stdout)["device"]


def test_overlayfs_upper_on_a_loop_ext4_reaches_the_disk(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    with realfs.loop_ext4(tmp_path, size_mb=32, name="upperfs") as up:
        (up.mountpoint / "upper").mkdir()
        (up.mountpoint / "work").mkdir()
        opts = f"lowerdir={lower},upperdir={up.mountpoint / 'upper'},workdir={up.mountpoint / 'work'}"
        with realfs.mounted("overlay", tmp_path / "merged", fstype="overlay", options=opts) as merged:
            report = describe(str(merged))
            (leaf,) = report.leaves
            # writes land in the upper layer: its loop device, then the disk under the image
            assert leaf.stack[0] == up.kernel_name, leaf.stack
            assert leaf.name == describe("/").leaves[0].name
            assert devices_of(snapshot(str(merged)))[0] == BlockDevice(up.kernel_name, "mounted")


def test_loop_whose_backing_file_was_deleted(tmp_path: Path) -> None:
    # drivers/block/loop.c shows a removed backing file as "PATH (deleted)"; the file's
    # filesystem still holds the blocks, so the leaf is still the disk under it.
    with realfs.loop_ext4(tmp_path, size_mb=32, name="orphan") as fs:
        fs.image.unlink()
        backing = Path(f"/sys/class/block/{fs.kernel_name}/loop/backing_file").read_text().strip()
        assert backing.endswith(" (deleted)"), backing
        report = describe(str(fs.mountpoint))
        (leaf,) = report.leaves
        assert leaf.stack[0] == fs.kernel_name
        assert leaf.name == describe("/").leaves[0].name
        assert not report.warnings, report.warnings
