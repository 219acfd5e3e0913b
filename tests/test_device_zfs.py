"""ZFS resolution: a pool's disks come from `zpool list -HPLv POOL` (zpool(8)), else a warning.

zfsutils-linux is not installable here (Debian ships it in contrib, which this machine's sources
lack), so the command is a script that prints what zpool prints for a mirror: tab-separated with
-H, vdevs indented by a tab, full paths with -P. Its disk is this machine's real `/` disk, so the
rest of the path (sysfs, classification) is real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsyncprobe.device.classify import classify
from fsyncprobe.device.mounts import MOUNTINFO, find_mount, parse_mountinfo
from fsyncprobe.device.stack import resolve


def _root_disk() -> str:
    """The kernel name of the disk under `/` (vda on this project's machines)."""
    with open(MOUNTINFO, encoding="utf-8") as f:
        entry = find_mount("/", parse_mountinfo(f.read()))
    assert entry is not None
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{entry.major_minor}"))
    part = Path("/sys/class/block") / name / "partition"
    return os.path.basename(os.path.dirname(os.path.realpath(f"/sys/class/block/{name}"))) if part.exists() else name


def _mountinfo(tmp_path: Path, target: Path) -> Path:
    # One line as proc(5) shows a ZFS dataset: anonymous 0:NN device, fstype zfs, source POOL/DATASET.
    mi = tmp_path / "mountinfo"
    mi.write_text(f"1 0 0:50 / {target} rw,relatime shared:1 - zfs rpool/ROOT/pve-1 rw,xattr,posixacl\n")
    return mi


def test_zpool_missing_is_a_warning_not_a_guess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    snap = resolve(str(tmp_path), mountinfo_path=str(_mountinfo(tmp_path, tmp_path)))
    assert snap.chains == ()
    assert any("zpool command is not installed" in w for w in snap.warnings), snap.warnings
    report = classify(snap)
    assert report.device_class.value == "unknown"
    assert report.warnings == snap.warnings


def test_zpool_list_output_resolves_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = _root_disk()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    zpool = bindir / "zpool"
    args_seen = tmp_path / "args"
    zpool.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {args_seen}\n'
        "printf 'rpool\\t1.81T\\t1.2T\\t630G\\t-\\t-\\t12%%\\t66%%\\t1.00x\\tONLINE\\t-\\n'\n"
        "printf '\\tmirror-0\\t1.81T\\t1.2T\\t630G\\t-\\t-\\t12%%\\t66%%\\t-\\tONLINE\\n'\n"
        f"printf '\\t/dev/{disk}\\t-\\t-\\t-\\t-\\t-\\t-\\t-\\t-\\tONLINE\\n'\n"
        "printf '\\t/dev/nonexistent-disk\\t-\\t-\\t-\\t-\\t-\\t-\\t-\\t-\\tONLINE\\n'\n"
    )
    zpool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '')}")
    snap = resolve(str(tmp_path), mountinfo_path=str(_mountinfo(tmp_path, tmp_path)))
    assert args_seen.read_text().split() == ["list", "-HPLv", "rpool"]
    assert [s[-1] for s in snap.stacks] == [disk]
    assert any("/dev/nonexistent-disk" in w for w in snap.warnings), snap.warnings
    report = classify(snap)
    assert [leaf.name for leaf in report.leaves] == [disk]
    assert report.device_class is classify(resolve("/")).device_class
