"""What an OS or SQLite failure during a run means, in one line for the user (a `MeasureError`)."""

from __future__ import annotations

import errno
import os
import sqlite3

from fsyncprobe.errors import MeasureError

# SQLite reports an OS failure as its own result code (sqlite.org/rescode.html), never as an
# OSError: SQLITE_FULL for ENOSPC, SQLITE_IOERR_* for a failed read, write or fsync,
# SQLITE_READONLY* and SQLITE_CANTOPEN. Without this the sqlite workload met a full or failing
# disk with a traceback (tests/test_faults_midrun.py).
_SQLITE_ERRNO = (
    ("SQLITE_FULL", errno.ENOSPC),
    ("SQLITE_IOERR", errno.EIO),
    ("SQLITE_READONLY", errno.EROFS),
    ("SQLITE_CANTOPEN", errno.ENOENT),
    ("SQLITE_PERM", errno.EPERM),
)


def as_measure_error(exc: OSError | sqlite3.Error, where: str) -> MeasureError:
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        code = next((e for prefix, e in _SQLITE_ERRNO if name.startswith(prefix)), 0)
        plain = as_measure_error(OSError(code, str(exc)), where) if code else MeasureError(f"{where}: {exc}")
        return MeasureError(f"{plain} (SQLite: {name or exc})")
    reason = {
        errno.ENOSPC: "no space left on the filesystem",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "the filesystem is read-only",
        errno.EIO: "I/O error (the device failed a write or a flush)",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOENT: "the directory disappeared while measuring",
        # O_NOFOLLOW / O_EXCL refused a symlink or a file someone put among ours (open(2)):
        # nothing outside our temp dir was written.
        errno.ELOOP: "a symlink appeared among the tool's files; it was not followed",
        errno.EEXIST: "a file appeared where the tool creates its own; it was not used",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    if exc.errno == errno.ENOSPC and _has_room(where):
        # The filesystem has room but a write failed for space: the block device under it ran
        # out (a full thin pool, a loop image on a full filesystem; the loop driver passes the
        # backing file's ENOSPC up as BLK_STS_NOSPC, drivers/block/loop.c).
        reason = ("no space left on the device under the filesystem, though the filesystem has free "
                  "space (a full thin-provisioned volume or disk image?)")
    return MeasureError(f"{where}: {reason}")


def _has_room(path: str) -> bool:
    """Whether the filesystem holding `path` reports plenty of free space (>= 5 % and 16 MiB)."""
    try:
        vfs = os.statvfs(path)
    except OSError:
        return False
    free = vfs.f_bavail * vfs.f_frsize
    return free >= max(16 << 20, vfs.f_blocks * vfs.f_frsize // 20)
