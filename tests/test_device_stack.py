"""Where resolution stops: a mount with no block device under it (RAM, a network or host share)
is recorded as such and classified by its type, not looked for in sysfs. The mountinfo lines are
as proc(5) shows them for each type; the path and sysfs are this machine's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsyncprobe.device.classify import classify
from fsyncprobe.device.fstypes import NETWORK_FSTYPES, PSEUDO_FSTYPES, RAM_FSTYPES
from fsyncprobe.device.stack import resolve
from fsyncprobe.device.types import DeviceClass

# fstype -> (mountinfo source, major:minor, class): virtiofs and 9p name a tag, not a device
MOUNTS = {
    "virtiofs": ("hostshare", "0:41", DeviceClass.NETWORK_FS),
    "9p": ("hostshare", "0:42", DeviceClass.NETWORK_FS),
    "nfs4": ("nas:/export", "0:43", DeviceClass.NETWORK_FS),
    "hugetlbfs": ("hugetlbfs", "0:44", DeviceClass.UNKNOWN),  # a kernel interface: no disk, not RAM storage
    "devtmpfs": ("udev", "0:5", DeviceClass.UNKNOWN),
    "tmpfs": ("tmpfs", "0:45", DeviceClass.RAM),
}


@pytest.mark.parametrize("fstype", sorted(MOUNTS))
def test_resolution_stops_at_a_mount_without_a_block_device(tmp_path: Path, fstype: str) -> None:
    source, dev, expected = MOUNTS[fstype]
    assert fstype in NETWORK_FSTYPES | RAM_FSTYPES | PSEUDO_FSTYPES
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 1 {dev} / {tmp_path} rw,relatime shared:9 - {fstype} {source} rw\n")
    snap = resolve(str(tmp_path), mountinfo_path=str(mountinfo))
    assert snap.chains == () and snap.stacks == ()
    assert [m.fstype for m in snap.filesystems] == [fstype]
    assert not [w for w in snap.warnings if "sysfs" in w], snap.warnings  # not looked for as a disk
    report = classify(snap)
    assert report.device_class is expected, report
