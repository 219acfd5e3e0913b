"""Resolve a path to the physical devices that hold it, through any stack.

path -> mount (mountinfo, longest prefix) -> the block device(s) the filesystem sits on ->
down through partitions, device-mapper (LVM, LUKS, multipath), md RAID and bcache (all list their
lower devices in `slaves/`, Documentation/ABI/stable/sysfs-block), loop devices (to the
filesystem of `loop/backing_file`, recursively), btrfs multi-device (`/sys/fs/btrfs/<uuid>/devices/`,
Documentation/ABI/testing/sysfs-fs-btrfs), overlayfs (its `upperdir`, where writes land) and ZFS
(`zpool list -HPLv`), to the leaves. tmpfs/ramfs and network filesystems are leaves themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from fsyncprobe.device.facts import (
    SYS,
    Node,
    Snapshot,
    _udev_context,
    collect_chain,
    collect_node,
    has_udev_record,
    read_attribute,
)
from fsyncprobe.device.fstypes import NETWORK_FSTYPES, PSEUDO_FSTYPES, RAM_FSTYPES
from fsyncprobe.device.mounts import MOUNTINFO, MountEntry, find_mount, mount_for, mount_info, parse_mountinfo
from fsyncprobe.device.types import MountInfo

_MAX_DEPTH = 16  # a loop file on a loop file on ... deeper than this is a cycle


@dataclass
class _Walk:
    mounts: list[MountEntry]
    sys_root: str
    leaves: list[tuple[str, ...]]
    filesystems: list[MountInfo]
    warnings: list[str]


def _entry_for(path: str, walk: _Walk) -> MountEntry | None:
    return find_mount(os.path.realpath(path), walk.mounts)


def _block_name_for_dev(major_minor: str, sys_root: str) -> str | None:
    link = os.path.join(sys_root, "dev", "block", major_minor)
    return os.path.basename(os.path.realpath(link)) if os.path.exists(link) else None


def _block_name_for_source(source: str, sys_root: str) -> str | None:
    if not source.startswith("/dev/"):
        return None
    name = os.path.basename(os.path.realpath(source))  # /dev/mapper/vg-root -> dm-0
    return name if os.path.exists(os.path.join(sys_root, "class", "block", name)) else None


def _btrfs_devices(block: str | None, sys_root: str) -> list[str]:
    """All devices of the btrfs filesystem that `block` belongs to."""
    root = os.path.join(sys_root, "fs", "btrfs")
    if block is None or not os.path.isdir(root):
        return []
    for uuid in sorted(os.listdir(root)):
        devices_dir = os.path.join(root, uuid, "devices")
        try:
            names = sorted(os.listdir(devices_dir))
        except OSError:
            continue
        if block in names:
            return names
    return []


def _zpool_leaves(pool: str, walk: _Walk) -> list[str]:
    """Leaf block devices of a ZFS pool, from `zpool list -HPLv` (zpool(8): -P full paths,
    -L resolve symlinks, -v the vdevs)."""
    zpool = shutil.which("zpool")
    if zpool is None:
        walk.warnings.append(f"ZFS pool {pool}: the zpool command is not installed, so its disks could not be resolved")
        return []
    try:
        cmd = [zpool, "list", "-HPLv", pool]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        walk.warnings.append(f"ZFS pool {pool}: zpool list failed ({exc}), so its disks could not be resolved")
        return []
    names = []
    for line in out.splitlines():
        first = line.strip().split("\t")[0].strip()
        if first.startswith("/dev/"):
            name = _block_name_for_source(first, walk.sys_root)
            if name:
                names.append(name)
            else:
                walk.warnings.append(f"ZFS pool {pool}: vdev {first} is not a block device here")
    return names


def _top_of_mount(entry: MountEntry, walk: _Walk, depth: int) -> Iterator[tuple[str, ...]]:
    """Stacks (mounted device first) under one mount; non-block leaves go to walk.filesystems."""
    fstype = entry.fstype
    if fstype in RAM_FSTYPES or fstype in NETWORK_FSTYPES or fstype in PSEUDO_FSTYPES:
        walk.filesystems.append(mount_info(entry))
        return
    if fstype == "overlay":
        # Writes (and their syncs) land in the upper layer (Documentation/filesystems/overlayfs.rst).
        m = re.search(r"(?:^|,)upperdir=([^,]+)", entry.super_options)
        upper = _entry_for(m.group(1), walk) if m else None
        if upper is None:
            walk.warnings.append(f"overlayfs at {entry.mountpoint}: no upperdir found")
            return
        yield from _top_of_mount(upper, walk, depth + 1)
        return
    if fstype == "zfs":
        pool = entry.source.split("/", 1)[0]
        for name in _zpool_leaves(pool, walk):
            yield from _below(name, (), walk, depth)
        return
    block = _block_name_for_dev(entry.major_minor, walk.sys_root)
    if fstype == "btrfs" or block is None:
        # btrfs gives every filesystem an anonymous device number (0:NN), not a disk's.
        block = block or _block_name_for_source(entry.source, walk.sys_root)
        devices = _btrfs_devices(block, walk.sys_root) if fstype == "btrfs" else []
        if devices:
            for name in devices:
                yield from _below(name, (), walk, depth)
            return
    if block is None:
        walk.warnings.append(f"{entry.mountpoint} ({fstype} from {entry.source}): no block device found")
        walk.filesystems.append(mount_info(entry))
        return
    yield from _below(block, (), walk, depth)


def _below(name: str, above: tuple[str, ...], walk: _Walk, depth: int) -> Iterator[tuple[str, ...]]:
    """Stacks from `name` down to each leaf, prefixed by `above`."""
    if depth > _MAX_DEPTH or name in above:
        walk.warnings.append(f"stack too deep or cyclic at {name}")
        return
    here = (*above, name)
    d = os.path.join(walk.sys_root, "class", "block", name)
    try:
        slaves = sorted(os.listdir(os.path.join(d, "slaves")))
    except OSError:
        slaves = []
    if slaves:  # dm (LVM, LUKS, multipath), md, bcache
        for s in slaves:
            yield from _below(s, here, walk, depth)
        return
    backing = read_attribute(os.path.join(d, "loop", "backing_file"))
    if backing:
        # The kernel appends " (deleted)" when the file is gone (drivers/block/loop.c).
        path = backing.removesuffix(" (deleted)")
        entry = _entry_for(path, walk)
        if entry is None:
            walk.warnings.append(f"{name}: backing file {path} is on no known mount")
            yield here
            return
        for stack in _top_of_mount(entry, walk, depth + 1):
            yield (*here, *stack)
        return
    if os.path.exists(os.path.join(d, "partition")):
        disk = os.path.basename(os.path.dirname(os.path.realpath(d)))
        if disk != name and os.path.exists(os.path.join(walk.sys_root, "class", "block", disk)):
            # A partition of a stacked device (loop0p1, md0p1) descends further.
            parent = os.path.join(walk.sys_root, "class", "block", disk)
            stacked = os.path.exists(os.path.join(parent, "loop", "backing_file"))
            try:
                stacked = stacked or bool(os.listdir(os.path.join(parent, "slaves")))
            except OSError:
                pass
            if stacked:
                yield from _below(disk, here, walk, depth)
                return
            yield (*here, disk)
            return
    yield here


def resolve(path: str, mountinfo_path: str = MOUNTINFO, sys_root: str = SYS) -> Snapshot:
    """The facts about what holds `path` on this machine (OSError if the path or mounts are unreadable)."""
    real = os.path.realpath(path)
    os.stat(real)  # a missing path is FileNotFoundError here, not a wrong answer later
    with open(mountinfo_path, encoding="utf-8", errors="surrogateescape") as f:
        mounts = parse_mountinfo(f.read())
    entry = mount_for(real, mounts)
    walk = _Walk(mounts=mounts, sys_root=sys_root, leaves=[], filesystems=[], warnings=[])
    stacks = list(dict.fromkeys(_top_of_mount(entry, walk, 0)))
    context = _udev_context()
    chains = []
    kept = []
    layers = []
    for stack in stacks:
        # The chain starts at the lowest partition (so `partition` and the disk both show), as
        # `udevadm info -a /dev/sda2` walks it.
        start = stack[-2] if len(stack) >= 2 and _is_partition_of(stack[-2], stack[-1], sys_root) else stack[-1]
        chain = collect_chain(start, context, sys_root)
        if chain:
            chains.append(chain)
            kept.append(stack)
            layers.append(_layers(stack, chain, context, sys_root))
        else:
            walk.warnings.append(f"{stack[-1]}: not found in sysfs")
    return Snapshot(
        path=path,
        mount=mount_info(entry),
        chains=tuple(chains),
        stacks=tuple(kept),
        filesystems=tuple(dict.fromkeys(walk.filesystems)),
        # udev counts as present only where it recorded these devices: a /run/udev/data left by a
        # udevd that never saw them gives nothing but the uevent keys sysfs already has.
        udev=context is not None and any(has_udev_record(c) for c in chains),
        warnings=tuple(walk.warnings),
        layers=tuple(layers),
    )


def _layers(stack: tuple[str, ...], chain: tuple[Node, ...], context: object, sys_root: str) -> tuple[Node, ...]:
    """The stack's block devices above its chain (a loop device and its partition, dm, md), each
    collected on its own: their udev records (a loop device's `ID_FS_*`, a partition table) and
    `loop/backing_file` are evidence too, though the class is the leaf's."""
    on_chain = {n.sys_name for n in chain}
    out = []
    for name in stack:
        if name in on_chain:
            continue
        d = os.path.realpath(os.path.join(sys_root, "class", "block", name))
        if os.path.isdir(d):
            out.append(collect_node(d, context))
    return tuple(out)


def _is_partition_of(part: str, disk: str, sys_root: str) -> bool:
    d = os.path.join(sys_root, "class", "block", part)
    parent = os.path.basename(os.path.dirname(os.path.realpath(d)))
    return os.path.exists(os.path.join(d, "partition")) and parent == disk
