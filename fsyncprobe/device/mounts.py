"""Which mount holds a path, from /proc/self/mountinfo.

Not `os.path.ismount` or st_dev: btrfs subvolumes and bind mounts give each subvolume its own
anonymous st_dev, and a bind mount shares st_dev with its source (proc(5), "/proc/pid/mountinfo").
The longest mount point that is a prefix of the resolved path wins; the last such line wins on
ties, because later mounts shadow earlier ones at the same point.
"""

from __future__ import annotations

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


def mount_of(path: str, mountinfo_path: str = MOUNTINFO) -> MountEntry:
    """The mount holding `path` on this machine (raises FileNotFoundError/OSError)."""
    real = os.path.realpath(path)
    with open(mountinfo_path, encoding="utf-8", errors="surrogateescape") as f:
        entries = parse_mountinfo(f.read())
    entry = find_mount(real, entries)
    if entry is None:
        raise OSError(f"no mount holds {real}")
    return entry


def mount_info(entry: MountEntry) -> MountInfo:
    """The report form of a mount entry."""
    return MountInfo(
        mountpoint=entry.mountpoint, fstype=entry.fstype, source=entry.source,
        major_minor=entry.major_minor,
    )
