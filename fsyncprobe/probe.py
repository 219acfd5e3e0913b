"""The measurement engine: run one workload on the filesystem holding a path.

Steps: check the path and the free space; make a private temp directory there (mkdtemp: mode
0700, created with O_EXCL semantics, so nobody else can plant files in it); prepare the workload;
warm up (not counted); measure with a monotonic nanosecond clock around exactly one operation;
read the block-layer write counters before and after; remove everything on every exit path.
SIGTERM is turned into an exception like SIGINT's KeyboardInterrupt, so `finally` blocks run
and the temp directory goes; both are ignored while cleaning up so a second Ctrl-C cannot leave
half a directory behind. A run cut short returns what it measured, marked partial, inside
`PartialRunError`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import signal
import sqlite3
import stat
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fsyncprobe import devstats, workloads
from fsyncprobe.device.mounts import mount_of
from fsyncprobe.errors import FsyncprobeError, Interrupted, MeasureError, UsageError
from fsyncprobe.histogram import Histogram
from fsyncprobe.report import (
    BenchParams,
    BenchResult,
    SavedHistogram,
    SchedProbeResult,
    StallSummary,
    TimelineSecond,
    Workload,
)
from fsyncprobe.stats import summarize

if TYPE_CHECKING:
    from fsyncprobe.stallprobe import SchedProbe
from fsyncprobe.units import format_size

TEMP_PREFIX = "fsyncprobe-"
_TICK_NS = 100_000_000  # fold samples and report progress ten times a second, off the hot path
_RAM_FSTYPES = frozenset({"tmpfs", "ramfs", "devtmpfs"})
_NETWORK_FSTYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "fuse.glusterfs", "9p", "virtiofs"})


@dataclass(frozen=True)
class Progress:
    """What the engine tells the progress callback, ten times a second."""

    phase: str
    """`warmup` or `measure`."""
    elapsed_ns: int
    """Time spent in this phase."""
    total_ns: int | None
    """Planned length of the phase (None when bounded by an operation count)."""
    ops: int
    """Operations done in this phase."""
    total_ops: int | None
    """Planned operation count (None when bounded by time)."""
    ops_per_s: float
    """Rate over the last tick."""


ProgressCallback = Callable[[Progress], None]


class PartialRunError(FsyncprobeError):
    """The run stopped early; `result` holds what was measured, marked partial."""

    def __init__(self, result: BenchResult | None, cause: FsyncprobeError) -> None:
        super().__init__(str(cause))
        self.result = result
        self.cause = cause
        self.exit_code = cause.exit_code


def check_target(path: str) -> str:
    """Resolve `path` and refuse what cannot hold our temp files, with a one-line reason."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file or directory") from None
    except PermissionError:
        raise MeasureError(f"{path}: permission denied") from None
    except OSError as exc:
        raise MeasureError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a device node" if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a file"
        )
        raise MeasureError(
            f"{path} is {kind}, not a directory: give a directory on the filesystem to measure"
        )
    return os.path.realpath(path)


def _check_space(directory: str, needed: int) -> None:
    # statvfs(3): f_bavail is what an unprivileged writer may use; root may dip into the
    # reserved blocks but a cluster node should not, so we count only f_bavail.
    vfs = os.statvfs(directory)
    free = vfs.f_bavail * vfs.f_frsize
    margin = 1 << 20
    if vfs.f_blocks and free < needed + margin:
        raise MeasureError(
            f"not enough free space on the filesystem holding {directory}: the workload needs "
            f"{format_size(needed + margin)}, {format_size(free)} is free (try a smaller --file-size)"
        )


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While measuring, SIGTERM raises like SIGINT does, so cleanup runs (signal(7))."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """While cleaning up, a second Ctrl-C or SIGTERM must not leave half a temp dir behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


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


def _as_measure_error(exc: OSError | sqlite3.Error, where: str) -> MeasureError:
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        code = next((e for prefix, e in _SQLITE_ERRNO if name.startswith(prefix)), 0)
        plain = _as_measure_error(OSError(code, str(exc)), where) if code else MeasureError(f"{where}: {exc}")
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


class _Loop:
    """The timing loop and its bookkeeping; the hot path is in `run_phase`."""

    def __init__(self, stall_threshold_ns: int) -> None:
        self.hist = Histogram()
        self.stall_threshold_ns = stall_threshold_ns
        self.stalls = 0
        self.timeline: list[TimelineSecond] = []
        self._second_ops = 0
        self._second_max = 0
        self.ops = 0
        self.start_ns = 0
        self.end_ns = 0

    def fold(self, batch: array, second: int, close_seconds_before: int) -> None:
        """Account a batch of latencies to `second`, closing finished seconds first."""
        while len(self.timeline) < close_seconds_before:
            self.timeline.append(
                TimelineSecond(second=len(self.timeline), ops=self._second_ops, max_latency_ns=self._second_max)
            )
            self._second_ops = 0
            self._second_max = 0
        if not batch:
            return
        # Count in C first (collections.Counter): a 100 ms batch of fast operations holds a few
        # thousand distinct values, so the histogram's Python loop runs per value, not per sample.
        self.hist.record_counted(Counter(batch))
        n = len(batch)
        self.ops += n
        self._second_ops += n
        m = max(batch)
        if m > self._second_max:
            self._second_max = m
        if m > self.stall_threshold_ns:
            thr = self.stall_threshold_ns
            self.stalls += sum(1 for v in batch if v > thr)

    def close(self, elapsed_ns: int) -> None:
        """Close the last (possibly partial) second."""
        seconds = -(-elapsed_ns // 1_000_000_000)
        if len(self.timeline) < seconds - 1 and elapsed_ns - (seconds - 1) * 1_000_000_000 < _TICK_NS:
            # A sliver under one tick past the last whole second (the operation that straddled
            # the deadline, already counted in the second it started in) is not a second.
            seconds -= 1
        self.fold(array("q"), 0, max(seconds - 1, len(self.timeline)))
        if self._second_ops or seconds > len(self.timeline):
            self.timeline.append(
                TimelineSecond(second=len(self.timeline), ops=self._second_ops, max_latency_ns=self._second_max)
            )
            self._second_ops = 0
            self._second_max = 0


def run_phase(
    op: Callable[[], None],
    duration_ns: int | None,
    ops_limit: int | None,
    loop: _Loop | None,
    phase: str,
    progress: ProgressCallback | None,
    rotating: workloads.RotatingWrite | None = None,
) -> tuple[int, int]:
    """Run `op` until the duration or the op count is reached; return (ops, elapsed_ns).

    With `loop` None (warm-up) nothing is recorded. The hot path is: read the clock, do the
    operation, read the clock, append the difference to an array. With `rotating` (overwrite,
    append) the operation is inlined: pwrite of the preallocated buffer, then the sync call,
    and nothing else sits between the two clock reads; otherwise it is one call of `op`.
    Every name the hot path uses is a local. Folding the batch into the histogram, the
    timeline and the progress callback happen once per 100 ms tick, outside the timed region
    (issue 7: the loop must measure the disk, not Python).
    """
    clock = time.monotonic_ns
    start = clock()
    deadline = start + duration_ns if duration_ns is not None else None
    done = 0
    next_tick = start + _TICK_NS
    if deadline is not None and deadline < next_tick:
        next_tick = deadline
    last_tick_ops = 0
    last_tick_t = start
    batch = array("q")
    append = batch.append
    repeat = itertools.repeat
    t1 = batch_t0 = start
    if loop is not None:
        loop.start_ns = loop.end_ns = start
    if rotating is not None:
        fd = rotating.fd
        buf = rotating.buf
        step = rotating.block_size
        end_off = rotating.slots * step
        pwrite = os.pwrite
        sync_call = rotating.sync_call
    try:
        while True:
            remaining = (ops_limit - done - len(batch)) if ops_limit is not None else 1 << 62
            if remaining <= 0:
                break
            if rotating is None:
                for _ in repeat(None, remaining):
                    t0 = clock()
                    op()
                    t1 = clock()
                    append(t1 - t0)
                    if t1 >= next_tick:
                        break
            else:
                # One pass runs up to the end of the file (or the tick, or the op limit);
                # the offset comes from range(), so the loop body holds no arithmetic.
                before = len(batch)
                first = rotating.next_slot * step
                stop = min(end_off, first + remaining * step)
                if sync_call is None:
                    for off in range(first, stop, step):
                        t0 = clock()
                        pwrite(fd, buf, off)
                        t1 = clock()
                        append(t1 - t0)
                        if t1 >= next_tick:
                            break
                else:
                    for off in range(first, stop, step):
                        t0 = clock()
                        pwrite(fd, buf, off)
                        sync_call(fd)
                        t1 = clock()
                        append(t1 - t0)
                        if t1 >= next_tick:
                            break
                n = len(batch) - before
                nxt = rotating.next_slot + n
                rotating.next_slot = nxt if nxt < rotating.slots else 0
                if t1 < next_tick and n < remaining:
                    continue  # reached the end of the file: wrap; the batch waits for the tick
            done += len(batch)
            if loop is not None:
                # Ticks sit on a 100 ms grid from the start, so a batch lies within one second:
                # the second it started in.
                loop.fold(batch, 0, (batch_t0 - start) // 1_000_000_000)
            del batch[:]
            batch_t0 = t1
            if t1 >= next_tick:
                if progress is not None:
                    dt = t1 - last_tick_t
                    progress(
                        Progress(
                            phase=phase, elapsed_ns=t1 - start, total_ns=duration_ns, ops=done,
                            total_ops=ops_limit,
                            ops_per_s=(done - last_tick_ops) * 1e9 / dt if dt > 0 else 0.0,
                        )
                    )
                last_tick_ops = done
                last_tick_t = t1
                next_tick = start + ((t1 - start) // _TICK_NS + 1) * _TICK_NS
                if deadline is not None and deadline < next_tick:
                    next_tick = deadline
            if deadline is not None and t1 >= deadline:
                break
    finally:
        # Whatever stopped us (a signal, an I/O error), keep the samples already taken.
        if loop is not None:
            if batch:
                loop.fold(batch, 0, (batch_t0 - start) // 1_000_000_000)
                done += len(batch)
            loop.end_ns = t1
    return done, t1 - start


def _notes_for_fstype(fstype: str) -> list[str]:
    if fstype in _RAM_FSTYPES:
        return [
            f"{fstype} keeps files in RAM and fsync is a no-op there (mm/shmem.c uses noop_fsync): "
            "this figure measures the CPU and the page cache, and says nothing about a disk"
        ]
    if fstype in _NETWORK_FSTYPES or fstype.startswith("fuse"):
        return [f"{fstype} is not a local disk filesystem: the sync latency includes the network or the FUSE daemon"]
    return []


def run_bench(
    params: BenchParams,
    progress: ProgressCallback | None = None,
    sched_probe: bool = False,
) -> BenchResult:
    """Measure `params.workload` on the filesystem holding `params.path`.

    Raises UsageError/MeasureError before measuring, and PartialRunError (carrying the partial
    result) when the run is cut short by a signal or an I/O error.
    """
    if params.duration_ns is None and params.ops_limit is None:
        raise UsageError("give a duration or an operation count")
    real = check_target(params.path)
    try:
        mount = mount_of(real)
    except OSError as exc:
        raise MeasureError(f"{params.path}: cannot find its mount: {exc}") from None
    needed = workloads.space_needed(params.workload, params.block_size_bytes, params.file_size_bytes)
    try:
        _check_space(real, needed)
    except OSError as exc:
        raise _as_measure_error(exc, params.path) from None
    devices = devstats.devices_for(real)

    tmpdir: str | None = None
    parent_fd: int | None = None
    prepared: workloads.Prepared | None = None
    loop = _Loop(params.stall_threshold_ns)
    warmup_ops = 0
    before: dict[str, devstats.Counters] = {}
    measured_ns = 0
    started = False
    probe_result: SchedProbeResult | None = None
    probe: SchedProbe | None = None
    try:
        with _signals_raise():
            try:
                try:
                    parent_fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    tmpdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=real)
                    prepared = workloads.prepare(
                        params.workload, tmpdir, params.sync, params.block_size_bytes, params.file_size_bytes
                    )
                    if params.warmup_ns > 0:
                        warmup_ops, _ = run_phase(
                            prepared.op, params.warmup_ns, None, None, "warmup", progress, prepared.rotating
                        )
                    if prepared.begin_measure is not None:
                        prepared.begin_measure()
                    if sched_probe:
                        probe = _start_sched_probe()
                    before = devstats.read_counters([d.name for d in devices])
                    started = True
                    _, measured_ns = run_phase(
                        prepared.op, params.duration_ns, params.ops_limit, loop, "measure", progress,
                        prepared.rotating,
                    )
                except KeyboardInterrupt:
                    raise Interrupted(signal.SIGINT) from None
            except (Interrupted, OSError, sqlite3.Error) as exc:
                err = exc if isinstance(exc, Interrupted) else _as_measure_error(exc, params.path)
                partial = None
                if started:
                    probe_result = _stop_sched_probe(probe)
                    probe = None
                    partial = _result(
                        params, mount.mountpoint, mount.fstype, loop, loop.end_ns - loop.start_ns,
                        warmup_ops, devices, before, prepared, probe_result,
                        partial_reason=str(err),
                    )
                raise PartialRunError(partial, err) from None
            probe_result = _stop_sched_probe(probe)
            probe = None
            return _result(
                params, mount.mountpoint, mount.fstype, loop, measured_ns, warmup_ops, devices,
                before, prepared, probe_result, partial_reason=None,
            )
    finally:
        with _signals_ignored():
            if probe is not None:
                probe.__exit__(None, None, None)
            if prepared is not None:
                prepared.close()
            if tmpdir is not None:
                _remove_tempdir(tmpdir, parent_fd)
            if parent_fd is not None:
                os.close(parent_fd)


def _remove_tempdir(tmpdir: str, parent_fd: int | None) -> None:
    """Remove our temp dir through an fd of the directory holding it: when the user's directory is
    renamed or moved while we run, the path is stale but the fd still finds it (openat(2)); the
    fd-based rmtree never follows a symlink (shutil.rmtree.avoids_symlink_attacks)."""
    if parent_fd is None:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if os.path.lexists(tmpdir):
            _name_leftover(tmpdir)
        return
    name = os.path.basename(tmpdir)
    shutil.rmtree(name, dir_fd=parent_fd, ignore_errors=True)
    try:
        os.lstat(name, dir_fd=parent_fd)
    except OSError:
        return  # gone (or its directory was deleted with it)
    try:  # where it is now, if the directory moved
        tmpdir = os.path.join(os.readlink(f"/proc/self/fd/{parent_fd}"), name)
    except OSError:
        pass
    _name_leftover(tmpdir)


def _name_leftover(tmpdir: str) -> None:
    """The temp dir could not be removed (the filesystem went read-only or failed): say where it
    is in the error the user will read, rather than leave it silently."""
    exc = sys.exc_info()[1]  # the error being raised through run_bench's `finally`, if any
    if isinstance(exc, PartialRunError):
        exc = exc.cause
    if isinstance(exc, FsyncprobeError) and exc.args:
        exc.args = (f"{exc.args[0]}; the temp dir {tmpdir} could not be removed: remove it when the "
                    "filesystem is writable again",)


def _start_sched_probe() -> SchedProbe:
    from fsyncprobe.stallprobe import SchedProbe  # its own process; loaded only when asked for

    probe = SchedProbe()
    probe.__enter__()
    probe.start()
    return probe


def _stop_sched_probe(probe: SchedProbe | None) -> SchedProbeResult | None:
    if probe is None:
        return None
    try:
        return probe.stop()
    finally:
        probe.__exit__(None, None, None)


def _result(
    params: BenchParams,
    mountpoint: str,
    fstype: str,
    loop: _Loop,
    elapsed_ns: int,
    warmup_ops: int,
    devices: list[devstats.BlockDevice],
    before: dict[str, devstats.Counters],
    prepared: workloads.Prepared | None,
    probe_result: SchedProbeResult | None,
    partial_reason: str | None,
) -> BenchResult:
    loop.close(elapsed_ns)
    after = devstats.read_counters([d.name for d in devices])
    writes = devstats.deltas(devices, before, after)
    notes = list(prepared.notes) if prepared else []
    notes += _notes_for_fstype(fstype)
    return BenchResult(
        params=params,
        mountpoint=mountpoint,
        fstype=fstype,
        ops=loop.ops,
        elapsed_ns=elapsed_ns,
        ops_per_s=loop.ops * 1e9 / elapsed_ns if elapsed_ns > 0 else 0.0,
        latency=summarize(loop.hist),
        histogram=SavedHistogram.of(loop.hist),
        timeline=tuple(loop.timeline),
        stalls=StallSummary(
            threshold_ns=params.stall_threshold_ns, count=loop.stalls, longest_ns=loop.hist.max_value
        ),
        device_writes=writes,
        warmup_ops=warmup_ops,
        partial=partial_reason is not None,
        partial_reason=partial_reason,
        notes=tuple(notes),
        sched_probe=probe_result,
    )


__all__ = ["PartialRunError", "Progress", "Workload", "check_target", "run_bench"]
