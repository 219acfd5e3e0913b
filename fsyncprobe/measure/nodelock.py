"""One measurement at a time per node (issue 14): two runs at once measure each other.

An advisory lock, flock(2) `LOCK_EX | LOCK_NB`, on one file per node, held for as long as a run
measures. flock locks belong to the open file description and go when the process dies, however
it dies (flock(2), "NOTES"), so a crashed run never leaves a stale lock behind; the holder writes
its pid and command line into the file so that a second run can say who it waits for.

The file is `/run/fsyncprobe.lock` (/run is the node's runtime state, a tmpfs cleared at boot:
FHS 3.0, 3.15), else, where /run is not writable (an unprivileged user), the same name in the
temp directory. `$FSYNCPROBE_LOCK_FILE` names another file: containers of one node that do not
share /run can share one, and tests use their own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator

from fsyncprobe.errors import MeasureError

LOCK_NAME = "fsyncprobe.lock"
RUN_DIR = "/run"
ENV_LOCK_FILE = "FSYNCPROBE_LOCK_FILE"


class ConcurrentRunError(MeasureError):
    """Another run holds the node's lock (exit 3: this run could not measure)."""


def lock_path() -> str:
    """The node's lock file: `$FSYNCPROBE_LOCK_FILE`, else /run's, else the temp directory's."""
    given = os.environ.get(ENV_LOCK_FILE)
    if given:
        return given
    if os.access(RUN_DIR, os.W_OK) or os.path.exists(os.path.join(RUN_DIR, LOCK_NAME)):
        return os.path.join(RUN_DIR, LOCK_NAME)
    return os.path.join(tempfile.gettempdir(), LOCK_NAME)


def _open(path: str) -> tuple[int, bool]:
    """An fd of the lock file and whether it is writable. O_NOFOLLOW: a symlink planted at the
    name (in a shared temp directory) is not followed into someone else's file. flock works on a
    read-only fd, so a user who may not write root's lock file still takes part in the lock."""
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        try:
            return os.open(path, flags | os.O_RDWR | os.O_CREAT, 0o644), True
        except PermissionError:  # root's file, or fs.protected_regular in a sticky directory
            return os.open(path, flags | os.O_RDONLY), False
    except OSError as exc:
        raise MeasureError(f"cannot open the lock file {path}: {exc.strerror or exc} "
                           "(give --allow-concurrent to measure without it)") from None


def _holder(fd: int) -> str:
    """What the holder wrote: `pid N: command`, or that it is not known."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid, _, cmd = text.partition(" ")
    if not pid.isdigit():
        return "a process that did not say who it is"
    return f"pid {pid}: {cmd}" if cmd else f"pid {pid}"


def _own_command() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return " ".join(a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a)
    except OSError:
        return "fsyncprobe"


@contextlib.contextmanager
def hold(allow_concurrent: bool = False) -> Iterator[str | None]:
    """Hold the node's measurement lock while the block runs; yield the lock file (None with
    `allow_concurrent`, which takes no lock). Raise ConcurrentRunError naming the holder."""
    if allow_concurrent:
        yield None
        return
    path = lock_path()
    fd, writable = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise MeasureError(f"cannot lock {path}: {exc.strerror or exc}") from None
            raise ConcurrentRunError(
                f"another measurement is running on this node ({_holder(fd)}; lock {path}): two runs at once "
                "measure each other; wait for it to finish, or give --allow-concurrent"
            ) from None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {_own_command()}\n".encode(), 0)
        try:
            yield path
        finally:
            if writable:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def holder_pid(path: str | None = None) -> int | None:
    """The pid of the process holding the node's lock now, or None; read from /proc/locks, never
    by taking the lock: a long `watch` that asked by trying the lock would, for that instant,
    make a `bench` starting beside it refuse. /proc/locks prints a flock as `FLOCK ADVISORY WRITE
    PID MAJ:MIN:INODE` (fs/locks.c, lock_get_status: major and minor in hex, the inode in decimal)."""
    try:
        st = os.stat(path or lock_path())
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK" or "->" in parts:
            continue  # "->" marks a waiter, not the holder
        try:
            pid = int(parts[4])
            maj, mnr, ino = parts[5].split(":")
            if (int(maj, 16), int(mnr, 16), int(ino)) == want:
                return pid
        except ValueError:
            continue
    return None
