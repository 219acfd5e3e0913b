"""Which mount holds a path, from /proc/self/mountinfo.

Not `os.path.ismount` or st_dev: btrfs subvolumes and bind mounts give each subvolume its own
anonymous st_dev, and a bind mount shares st_dev with its source (proc(5), "/proc/pid/mountinfo").
The longest mount point that is a prefix of the resolved path wins; the last such line wins on
ties, because later mounts shadow earlier ones at the same point.

Inside a chroot, mountinfo lists only the mounts reachable from the process's root: "mount
point: mount point relative to the process's root directory", and the kernel skips a mount whose
path does not resolve under that root (proc(5); fs/proc_namespace.c `show_mountinfo` returns
SEQ_SKIP when `seq_path_root` fails). The filesystem the chroot itself lives on is then missing,
and no line holds `/var/tmp` (issue 15). `mount_for` falls back to what the path itself says:
its st_dev names the device (stat(2); /sys/dev/block/MAJ:MIN names the block device,
Documentation/ABI/testing/sysfs-dev), statfs(2)'s f_type names the filesystem type (the magic
numbers of include/uapi/linux/magic.h), and the mount point is the highest directory up from
the path that is still on the same st_dev (in a chroot, its root).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

from fsyncprobe.device.types import MountInfo

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo."""

    mount_id: int
    parent_id: int
    major_minor: str
    root: str
    mountpoint: str
    options: str
    fstype: str
    source: str
    super_options: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040 \011 \012 \134 (fs/proc_namespace.c)
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1 : i + 4]) == 3 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
            entries.append(
                MountEntry(
                    mount_id=int(parts[0]),
                    parent_id=int(parts[1]),
                    major_minor=parts[2],
                    root=_unescape(parts[3]),
                    mountpoint=_unescape(parts[4]),
                    options=parts[5],
                    fstype=parts[sep + 1],
                    source=_unescape(parts[sep + 2]),
                    super_options=parts[sep + 3] if len(parts) > sep + 3 else "",
                )
            )
        except (ValueError, IndexError):
            continue
    return entries


def find_mount(path: str, entries: list[MountEntry]) -> MountEntry | None:
    """The entry whose mount point is the longest prefix of `path` (already resolved)."""
    best: MountEntry | None = None
    for e in entries:
        mp = e.mountpoint
        if (path == mp or mp == "/" or path.startswith(mp.rstrip("/") + "/")) and (
            best is None or len(mp) >= len(best.mountpoint)
        ):
            best = e
    return best


_FS_MAGIC = {
    0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x2FC12FC1: "zfs", 0xF2F52010: "f2fs",
    0x01021994: "tmpfs", 0x858458F6: "ramfs", 0x794C7630: "overlay", 0x6969: "nfs", 0xFF534D42: "cifs",
    0xFE534D42: "smb3", 0x00C36400: "ceph", 0x01021997: "9p", 0x6A656A63: "virtiofs", 0x65735546: "fuse",
    0x9FA0: "proc", 0x62656572: "sysfs", 0x63677270: "cgroup2", 0x27E0EB: "cgroup", 0x4D44: "vfat",
    0x5346544E: "ntfs", 0x3153464A: "jfs", 0x52654973: "reiserfs", 0xCA451A4E: "bcachefs",
}
"""statfs(2) f_type -> the name mountinfo would show (include/uapi/linux/magic.h; ZFS's from
openzfs include/sys/fs/zfs.h `ZFS_SUPER_MAGIC`, virtiofs reports FUSE's magic, so "fuse" covers
both). ext2, ext3 and ext4 share 0xEF53: an ext4-driven filesystem has /sys/fs/ext4/<dev>."""


def _statfs_type(path: str) -> str | None:
    """The filesystem type of `path` from statfs(2) (None when unknown or the call fails)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if libc.statfs(os.fsencode(path), buf) != 0:
        return None
    magic = ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF
    return _FS_MAGIC.get(magic)


def _same_device_top(path: str, dev: int) -> str:
    """The highest directory from `path` up that is still on device `dev` (its mount point as
    far as this root can see)."""
    top = path
    while top != "/":
        parent = os.path.dirname(top)
        if os.stat(parent).st_dev != dev:
            break
        top = parent
    return top


def unlisted_mount(path: str, entries: list[MountEntry], sys_root: str = "/sys") -> MountEntry:
    """The mount holding `path` (already resolved) when mountinfo lists none: from st_dev and
    statfs(2) (see the module's docstring). A mount of the same device elsewhere in mountinfo (a
    bind mount) lends its type and source."""
    dev = os.stat(path).st_dev
    major_minor = f"{os.major(dev)}:{os.minor(dev)}"
    mountpoint = _same_device_top(path, dev)
    twin = next((e for e in reversed(entries) if e.major_minor == major_minor), None)
    if twin is not None:
        return MountEntry(twin.mount_id, twin.parent_id, major_minor, twin.root, mountpoint, twin.options,
                          twin.fstype, twin.source, twin.super_options)
    link = os.path.join(sys_root, "dev", "block", major_minor)
    block = os.path.basename(os.path.realpath(link)) if os.path.exists(link) else None
    fstype = _statfs_type(path) or "unknown"
    if fstype == "ext4" and block is not None and not os.path.isdir(os.path.join(sys_root, "fs", "ext4", block)):
        fstype = "ext3"
    source = f"/dev/{block}" if block is not None else "none"
    return MountEntry(-1, -1, major_minor, "/", mountpoint, "", fstype, source, "")


def mount_for(path: str, entries: list[MountEntry]) -> MountEntry:
    """The mount holding `path` (already resolved): mountinfo's longest prefix, else (in a chroot)
    the st_dev fallback."""
    return find_mount(path, entries) or unlisted_mount(path, entries)


def mount_of(path: str, mountinfo_path: str = MOUNTINFO) -> MountEntry:
    """The mount holding `path` on this machine (raises FileNotFoundError/OSError)."""
    real = os.path.realpath(path)
    with open(mountinfo_path, encoding="utf-8", errors="surrogateescape") as f:
        entries = parse_mountinfo(f.read())
    return mount_for(real, entries)


def mount_info(entry: MountEntry) -> MountInfo:
    """The report form of a mount entry."""
    return MountInfo(
        mountpoint=entry.mountpoint, fstype=entry.fstype, source=entry.source,
        major_minor=entry.major_minor,
    )
