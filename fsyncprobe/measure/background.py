"""The background writer: a backup's buffered writes beside the measured workload (issue 16).

The worst moments of a cluster node come when something else floods its system disk: a vzdump
backup to local storage, a VM disk, a restore. Such a writer makes large buffered write(2) calls
and never syncs; the page cache fills with its dirty data, the kernel's writeback threads push it
to the disk, and every sync of pmxcfs (and of our workload) queues behind that writeback and the
journal commits it brings (Documentation/admin-guide/sysctl/vm.rst, `dirty_background_ratio`,
`dirty_ratio`; mm/page-writeback.c `balance_dirty_pages`). `--background-write RATE|max` runs
such a writer on the measured filesystem while the workload runs.

It is a separate process (as the scheduling probe: `fsyncprobe.measure.sideprocess`), started
before the warm-up so that the measured part meets a page cache already holding dirty data and
writeback under way, as when a backup is running, and stopped after the measured part.

Bounded so that it can never fill the disk:
- its file is unnamed: opened with O_TMPFILE in the engine's private temp dir (open(2); created and
  unlinked at once where the filesystem lacks O_TMPFILE), so its blocks are freed when the writer's
  descriptor closes, whichever way the writer ends, and no path of it can be left behind;
- it never grows past a cap: half the free space (statvfs(3) f_bavail) left after the workload's
  files and a margin, at most `MAX_CAP_BYTES`; at the cap (or on ENOSPC) the writer truncates the
  file and starts again, as a backup job removes an old dump and writes the next.

It dies with the tool on every path: stdin EOF (the tool closed the pipe, or died: the kernel
closes a killed process's descriptors) stops it within one write call; prctl(PR_SET_PDEATHSIG,
SIGKILL) (prctl(2)) kills it at once when the tool is killed; Ctrl-C reaches it and is ignored
(the tool decides); the tool's `close()` kills it if it does not end in time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from fsyncprobe.errors import MeasureError, UsageError
from fsyncprobe.measure.sideprocess import SideProcess, SideProcessOwner, child_setup, say
from fsyncprobe.measure.types import BackgroundWrite, BackgroundWriteResult
from fsyncprobe.units import format_size, parse_size

WRITE_SIZE_BYTES = 1 << 20
"""Bytes per write(2): 1 MiB, the size of vzdump's and tar's large sequential writes (vzdump pipes
through zstd/gzip into a file written in large chunks)."""
MAX_CAP_BYTES = 8 << 30
"""The file never grows past 8 GiB, whatever the free space: enough that at the kernel's default
`dirty_ratio` (20 % of available memory) on most nodes the writer truncates a file whose dirty pages
were already written back, rather than dropping dirty data that would otherwise load the disk."""
MIN_CAP_BYTES = 8 * WRITE_SIZE_BYTES
"""Below 8 MiB of room the writer would only truncate and rewrite the page cache: refused (exit 3)."""
FREE_MARGIN_BYTES = 64 << 20
"""Kept free besides the workload's files before halving: the node's own writers (pmxcfs, the
journal, logs) must never meet a disk we filled."""
MEMINFO_INTERVAL_S = 0.1
"""How often the writer samples /proc/meminfo's Dirty: and Writeback: (a read of a small proc file)."""
STOP_TIMEOUT_S = 10.0
"""How long the tool waits for the writer's result after telling it to stop: one write(2) may sleep
in balance_dirty_pages (mm/page-writeback.c: 200 ms pauses, repeated while the dirty pages stay
over the hard limit); past this the run goes on without the writer's figures (a note says so)."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parse_rate(text: str) -> BackgroundWrite:
    """`--background-write` / the profile key: `max`, or bytes a second (`50M`, `50M/s`, `200k`).
    UsageError (exit 2) for anything else."""
    value = text.strip()
    if value.lower() == "max":
        return BackgroundWrite(rate_bytes_per_s=None)
    try:
        rate = parse_size(value.removesuffix("/s"))
    except ValueError as exc:
        raise UsageError(f"--background-write {text!r}: {exc}; give bytes a second (50M) or max") from None
    if not WRITE_SIZE_BYTES // 16 <= rate <= 1 << 40:
        raise UsageError(f"--background-write {text!r}: accepted {format_size(WRITE_SIZE_BYTES // 16)}/s to "
                         f"{format_size(1 << 40)}/s, or max")
    return BackgroundWrite(rate_bytes_per_s=rate)


def describe(spec: BackgroundWrite) -> str:
    """`max` or `50.0 MiB/s`, for titles and findings."""
    return "max" if spec.rate_bytes_per_s is None else f"{format_size(spec.rate_bytes_per_s)}/s"


def cap_bytes(directory: str, reserved_bytes: int) -> int:
    """The writer's size cap on the filesystem holding `directory`: half of what is free (f_bavail:
    what an unprivileged writer may use, as the engine's space check counts) after `reserved_bytes`
    (the workload's files) and `FREE_MARGIN_BYTES`, at most `MAX_CAP_BYTES`, in whole writes.
    MeasureError (exit 3) when that leaves less than `MIN_CAP_BYTES`."""
    vfs = os.statvfs(directory)
    free = vfs.f_bavail * vfs.f_frsize
    cap = min(MAX_CAP_BYTES, (free - reserved_bytes - FREE_MARGIN_BYTES) // 2)
    cap -= cap % WRITE_SIZE_BYTES
    if cap < MIN_CAP_BYTES:
        raise MeasureError(
            f"not enough free space on the filesystem holding {directory} for --background-write: "
            f"{format_size(free)} free, it needs {format_size(2 * MIN_CAP_BYTES + FREE_MARGIN_BYTES + reserved_bytes)}"
        )
    return cap


def space_needed(spec: BackgroundWrite | None) -> int:
    """What the engine's free-space check adds for the writer (its smallest cap, halved free space)."""
    return 0 if spec is None else 2 * MIN_CAP_BYTES + FREE_MARGIN_BYTES


# --- The writer process ------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills us when the tool dies, even by SIGKILL;
    if it died before we got here we are already orphaned (getppid changed): exit."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


def _open_unnamed(directory: str) -> int:
    """An unnamed file in `directory`: O_TMPFILE (Linux >= 3.11; ext4, xfs, btrfs, tmpfs), else a
    file created and unlinked at once. Either way its blocks go when the last descriptor closes."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    name = os.path.join(directory, "background-write.dat")
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.unlink(name)
    return fd


def meminfo_bytes(text: str) -> tuple[int | None, int | None]:
    """(Dirty, Writeback) in bytes from /proc/meminfo's text (values are in kB: fs/proc/meminfo.c)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Dirty", "Writeback"):
            try:
                found[key] = int(rest.split()[0]) * 1024
            except (ValueError, IndexError):
                pass
    return found.get("Dirty"), found.get("Writeback")


class _MeminfoSampler:
    """Samples Dirty: and Writeback: every `MEMINFO_INTERVAL_S` in a thread until stopped."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.dirty: list[int] = []
        self.writeback_max: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                with open("/proc/meminfo", encoding="ascii") as f:
                    dirty, writeback = meminfo_bytes(f.read())
            except OSError:
                return
            if dirty is not None:
                self.dirty.append(dirty)
            if writeback is not None:
                self.writeback_max = max(writeback, self.writeback_max or 0)
            if self.stop.wait(MEMINFO_INTERVAL_S):
                return


def _child(directory: str, rate_text: str, cap: int, parent_pid: int) -> int:
    """The writer: buffered 1 MiB writes, paced to the rate, until stdin closes; then its figures."""
    stop = child_setup()
    _die_with_parent(parent_pid)
    rate = None if rate_text == "max" else int(rate_text)
    fd = _open_unnamed(directory)
    buf = os.urandom(WRITE_SIZE_BYTES)  # not zeros: compressing filesystems (btrfs, ZFS) would store nothing
    sampler = _MeminfoSampler(stop)
    sampler.thread.start()
    say({"ready": True})
    clock = time.monotonic_ns
    start = clock()
    written = pos = restarts = 0
    note = None
    full_in_a_row = 0
    while not stop.is_set():
        if rate is not None:
            due_ns = start + written * 1_000_000_000 // rate
            now = clock()
            if due_ns > now and stop.wait((due_ns - now) / 1e9):
                break
        if pos + WRITE_SIZE_BYTES > cap:
            os.ftruncate(fd, 0)
            pos, restarts = 0, restarts + 1
        try:
            n = os.pwrite(fd, buf, pos)
            full_in_a_row = 0
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and full_in_a_row < 3:
                full_in_a_row += 1  # the disk filled under us (someone else wrote): free ours, go on
                os.ftruncate(fd, 0)
                pos, restarts = 0, restarts + 1
                continue
            note = f"the background writer stopped: {exc.strerror or exc}"
            break
        pos += n
        written += n
    duration = clock() - start
    stop.set()
    sampler.thread.join(timeout=1)
    dirty = sampler.dirty
    say({"written_bytes": written, "duration_ns": duration, "restarts": restarts,
         "dirty_max_bytes": max(dirty) if dirty else None,
         "dirty_mean_bytes": sum(dirty) / len(dirty) if dirty else None,
         "writeback_max_bytes": sampler.writeback_max, "note": note})
    # The unnamed file's blocks are freed here; its dirty pages are dropped unwritten, but pages
    # already under writeback are waited for (mm/truncate.c), so the result goes out first.
    os.close(fd)
    return 0


# --- The tool's side ---------------------------------------------------------------------------


@dataclass
class BackgroundWriter(SideProcessOwner):
    """Runs the writer beside a workload: `start()`, work, `stop()` -> the result; the process
    is reaped on every path (`__exit__`)."""

    directory: str
    """Where the unnamed file is made: the engine's private temp dir."""
    spec: BackgroundWrite
    """The rate asked for."""
    cap_bytes: int
    """The file's size cap (`cap_bytes`)."""

    def __post_init__(self) -> None:
        rate = "max" if self.spec.rate_bytes_per_s is None else str(self.spec.rate_bytes_per_s)
        # A write blocked in balance_dirty_pages sleeps at most 200 ms at a time (MAX_PAUSE,
        # mm/page-writeback.c) and is killable: 5 s is ample before the tool kills it.
        self._side = SideProcess("background writer", ["fsyncprobe.measure.background", self.directory, rate,
                                                       str(self.cap_bytes), str(os.getpid())], exit_timeout_s=5)

    def stop(self) -> BackgroundWriteResult | None:
        """Stop the writer and return what it did (None: it died without saying)."""
        got = self._side.finish(timeout_s=STOP_TIMEOUT_S)
        if got is None:
            return None
        data, _ = got
        duration = int(data["duration_ns"])
        return BackgroundWriteResult(
            rate_asked_bytes_per_s=self.spec.rate_bytes_per_s, write_size_bytes=WRITE_SIZE_BYTES,
            cap_bytes=self.cap_bytes, written_bytes=int(data["written_bytes"]), duration_ns=duration,
            written_bytes_per_s=data["written_bytes"] * 1e9 / duration if duration > 0 else 0.0,
            restarts=int(data["restarts"]), dirty_max_bytes=data["dirty_max_bytes"],
            writeback_max_bytes=data["writeback_max_bytes"], dirty_mean_bytes=data["dirty_mean_bytes"],
            note=data["note"],
        )


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
