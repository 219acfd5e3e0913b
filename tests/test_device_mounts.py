"""The mount lookup's chroot fallback (issue 15): when mountinfo lists no mount holding a path
(inside a chroot it omits the mounts outside the new root, proc(5)), the path's own st_dev and
statfs(2) type name its filesystem. Checked against this machine's real mountinfo."""

from __future__ import annotations

import os
from pathlib import Path

from fsyncprobe.device.mounts import MOUNTINFO, find_mount, mount_for, parse_mountinfo, unlisted_mount


def _entries() -> list:
    with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def test_fallback_names_the_filesystem_mountinfo_names(tmp_path: Path) -> None:
    """With mountinfo's lines withheld, as in a chroot, the fallback finds the same filesystem
    type and device as the real lookup, and a mount point on the same device above the path."""
    real = os.path.realpath(tmp_path)
    listed = find_mount(real, _entries())
    assert listed is not None
    guessed = unlisted_mount(real, [])
    assert guessed.fstype == listed.fstype
    assert guessed.major_minor == f"{os.major(os.stat(real).st_dev)}:{os.minor(os.stat(real).st_dev)}"
    assert real == guessed.mountpoint or real.startswith(guessed.mountpoint.rstrip("/") + "/")
    assert os.stat(guessed.mountpoint).st_dev == os.stat(real).st_dev
    parent = os.path.dirname(guessed.mountpoint)
    assert guessed.mountpoint == "/" or os.stat(parent).st_dev != os.stat(real).st_dev


def test_a_listed_twin_lends_type_and_source(tmp_path: Path) -> None:
    """A line for the same device elsewhere (a bind mount's source) gives its type and source;
    the mount point is still the one seen from the path."""
    real = os.path.realpath(tmp_path)
    listed = find_mount(real, _entries())
    assert listed is not None
    elsewhere = [e for e in _entries() if e.major_minor == listed.major_minor]
    moved = [type(e)(e.mount_id, e.parent_id, e.major_minor, e.root, "/nowhere/else", e.options, e.fstype,
                     e.source, e.super_options) for e in elsewhere]
    guessed = unlisted_mount(real, moved)
    assert (guessed.fstype, guessed.source) == (listed.fstype, listed.source)
    assert guessed.mountpoint != "/nowhere/else"


def test_mountinfo_wins_when_it_lists_the_path(tmp_path: Path) -> None:
    real = os.path.realpath(tmp_path)
    entries = _entries()
    assert mount_for(real, entries) == find_mount(real, entries)
