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

import os
import shutil
import signal
import sqlite3
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from fsyncprobe.device.facts import Snapshot
from fsyncprobe.device.fstypes import PSEUDO_FSTYPES, RAM_FSTYPES, is_not_local_disk
from fsyncprobe.device.mounts import mount_of
from fsyncprobe.errors import FsyncprobeError, Interrupted, MeasureError, UsageError
from fsyncprobe.measure import blockstats, pacing, safety, workloads
from fsyncprobe.measure.failures import as_measure_error
from fsyncprobe.measure.loop import ProgressCallback, Recorder
from fsyncprobe.measure.ringid import RATE_PER_S as RING_ID_RATE_PER_S
from fsyncprobe.measure.ringid import RingIdProbe, RingIdSite, RingIdTarget
from fsyncprobe.measure.types import (
    BackgroundWriteResult,
    BenchParams,
    BenchResult,
    PacingResult,
    ProbeWindows,
    RingIdStoreResult,
    SchedProbeResult,
    StallSummary,
)
from fsyncprobe.measure.windows import ProbeGroup, ProbeSwitch, WindowedRecorder, WindowPlan
from fsyncprobe.signals import signals_ignored, sigterm_raises
from fsyncprobe.stats.summary import SavedHistogram, summarize
from fsyncprobe.units import format_size

if TYPE_CHECKING:
    from fsyncprobe.measure.background import BackgroundWriter
    from fsyncprobe.measure.schedprobe import SchedProbe

TEMP_PREFIX = "fsyncprobe-"
"""Every temp dir the engine makes starts with this (mkdtemp adds a random suffix)."""


@dataclass(frozen=True)
class Target:
    """The filesystem a run measures: resolved once per run and handed to every workload."""

    path: str
    """The path the user named."""
    real_path: str
    """`path` with symlinks resolved: the private temp dir is made here."""
    mountpoint: str
    """Mount point of the filesystem holding it (/proc/self/mountinfo)."""
    fstype: str
    """Its filesystem type."""
    devices: tuple[blockstats.BlockDevice, ...]
    """The block devices whose write counters are read around each run (none for tmpfs, NFS, or
    a stack that could not be resolved: the measurement stands without counters)."""


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


def target(path: str, real_path: str, snapshot: Snapshot | None) -> Target:
    """The measured filesystem of `path` (already checked: `check_target` gave `real_path`), from
    the run's device snapshot when there is one, else from mountinfo; pmxcfs and pseudo
    filesystems are refused here, before anything is written (`safety.refuse_unsafe`)."""
    if snapshot is not None:
        mountpoint, fstype, source = snapshot.mount.mountpoint, snapshot.mount.fstype, snapshot.mount.source
        devices = blockstats.devices_of(snapshot)
    else:
        try:
            entry = mount_of(real_path)
        except OSError as exc:
            raise MeasureError(f"{path}: cannot find its mount: {exc}") from None
        mountpoint, fstype, source, devices = entry.mountpoint, entry.fstype, entry.source, ()
    safety.refuse_unsafe(path, real_path, mountpoint, fstype, source)
    return Target(path=path, real_path=real_path, mountpoint=mountpoint, fstype=fstype, devices=devices)


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


def _notes_for_fstype(fstype: str) -> list[str]:
    if fstype in RAM_FSTYPES:
        return [
            f"{fstype} keeps files in RAM and fsync is a no-op there (mm/shmem.c uses noop_fsync): "
            "this figure measures the CPU and the page cache, and says nothing about a disk"
        ]
    if is_not_local_disk(fstype):
        return [f"{fstype} is not a local disk filesystem: the sync latency includes the network or the FUSE daemon"]
    return []


def run_bench(
    params: BenchParams,
    where: Target,
    progress: ProgressCallback | None = None,
    sched_probe: bool = False,
    ring_id: RingIdSite | None = None,
) -> BenchResult:
    """Measure `params.workload` on the filesystem `where` (the run's `target`), with the
    scheduling probe and corosync's ring-id write on `ring_id`'s filesystem (`ring_id_site`) beside
    it when asked.

    Raises UsageError/MeasureError before measuring, and PartialRunError (carrying the partial
    result) when the run is cut short by a signal or an I/O error.
    """
    if params.duration_ns is None and params.ops_limit is None:
        raise UsageError("give a duration or an operation count")
    real = where.real_path
    needed = workloads.space_needed(params.workload, params.block_size_bytes, params.file_size_bytes)
    try:
        _check_space(real, needed + _background_space(params))
    except OSError as exc:
        raise as_measure_error(exc, params.path) from None
    devices = where.devices

    tmpdir: str | None = None
    parent_fd: int | None = None
    prepared: workloads.Prepared | None = None
    loop = Recorder(params.stall_threshold_ns)
    run_phase = pacing.phase_function(params.rate_per_s)  # closed loop, or paced at --rate
    warmup_ops = 0
    before: dict[str, blockstats.Counters] = {}
    measured_ns = 0
    started = False
    probe_result: SchedProbeResult | None = None
    probe: SchedProbe | None = None
    rid: RingIdProbe | None = None
    rid_result: RingIdStoreResult | None = None
    rid_notes: list[str] = []
    bg: BackgroundWriter | None = None
    bg_result: BackgroundWriteResult | None = None
    try:
        with sigterm_raises():
            try:
                try:
                    parent_fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    tmpdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=real)
                    prepared = workloads.prepare(
                        params.workload, tmpdir, params.sync, params.block_size_bytes, params.file_size_bytes
                    )
                    if params.background_write is not None:  # before the warm-up: see measure/background.py
                        bg = _start_background(params, tmpdir, needed)
                    # The side probes start before the warm-up, paused (no timer, no wake-up, no write:
                    # they do not touch the warm-up), so that their Python start-up does not put an
                    # idle gap between warm-up and measurement that a run without them does not have.
                    # They run only in the probe windows (fsyncprobe.measure.windows).
                    if sched_probe:
                        probe = _start_sched_probe()
                    if ring_id is not None:
                        rid = _start_ring_id(ring_id, rid_notes)
                    side: list[ProbeSwitch] = [p for p in (probe, rid) if p is not None]
                    if side:
                        loop = WindowedRecorder(params.stall_threshold_ns, ProbeGroup(side))
                    if params.warmup_ns > 0:
                        warmup_ops, _ = run_phase(
                            prepared.op, params.warmup_ns, None, None, "warmup", progress, prepared.rotating
                        )
                    if prepared.begin_measure is not None:
                        prepared.begin_measure()
                    before = blockstats.read_counters([d.name for d in devices])
                    started = True
                    if isinstance(loop, WindowedRecorder):
                        loop.start_watch()
                    _, measured_ns = run_phase(
                        prepared.op, params.duration_ns, params.ops_limit, loop, "measure", progress,
                        prepared.rotating,
                    )
                    if isinstance(loop, WindowedRecorder):
                        loop.stop_watch()
                except KeyboardInterrupt:
                    raise Interrupted(signal.SIGINT) from None
            except (Interrupted, OSError, sqlite3.Error) as exc:
                err = exc if isinstance(exc, Interrupted) else as_measure_error(exc, params.path)
                partial = None
                if started:
                    if isinstance(loop, WindowedRecorder):
                        loop.stop_watch()
                    probe_result = _stop_probe(probe)
                    probe = None
                    rid_result, rid = _stop_probe(rid), None
                    bg_result, bg = _stop_probe(bg), None
                    partial = _result(
                        params, where.mountpoint, where.fstype, loop, loop.end_ns - loop.start_ns,
                        warmup_ops, devices, before, prepared, probe_result,
                        partial_reason=str(err), ring_id=rid_result, extra_notes=rid_notes, background=bg_result,
                        paced=pacing.result_of(run_phase),
                    )
                raise PartialRunError(partial, err) from None
            probe_result = _stop_probe(probe)
            probe = None
            rid_result, rid = _stop_probe(rid), None
            bg_result, bg = _stop_probe(bg), None
            return _result(
                params, where.mountpoint, where.fstype, loop, measured_ns, warmup_ops, devices,
                before, prepared, probe_result, partial_reason=None, ring_id=rid_result, extra_notes=rid_notes,
                background=bg_result,
                paced=pacing.result_of(run_phase),
            )
    finally:
        with signals_ignored():
            if probe is not None:
                probe.__exit__(None, None, None)
            if rid is not None:
                rid.__exit__(None, None, None)
            if bg is not None:
                bg.__exit__(None, None, None)
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


def _background_space(params: BenchParams) -> int:
    from fsyncprobe.measure import background  # loaded only when asked for

    return background.space_needed(params.background_write)


def _start_background(params: BenchParams, tmpdir: str, reserved_bytes: int) -> BackgroundWriter:
    """Start `--background-write`'s writer in our temp dir (its file is unnamed: nothing of it can
    outlive the writer), capped by the free space left beside the workload's `reserved_bytes`."""
    from fsyncprobe.measure.background import BackgroundWriter, cap_bytes

    assert params.background_write is not None
    writer = BackgroundWriter(tmpdir, params.background_write, cap_bytes(tmpdir, reserved_bytes))
    try:
        writer.start()
    except BaseException:
        writer.__exit__(None, None, None)
        raise
    return writer


def _start_sched_probe() -> SchedProbe:
    # its own process; loaded only when asked for
    from fsyncprobe.measure.schedprobe import WINDOWED_INTERVAL_NS, SchedProbe

    probe = SchedProbe(interval_ns=WINDOWED_INTERVAL_NS, start_paused=True)
    probe.__enter__()
    probe.start()
    return probe


_R_co = TypeVar("_R_co", covariant=True)


class _Probe(Protocol[_R_co]):
    """A side probe as the engine drives it (schedprobe.SchedProbe, ringid.RingIdProbe)."""

    def stop(self) -> _R_co | None: ...

    def __exit__(self, *exc: object) -> None: ...


def _stop_probe(probe: _Probe[_R_co] | None) -> _R_co | None:
    """What a side probe measured (None: not running, or it died), and the probe reaped either way."""
    if probe is None:
        return None
    try:
        return probe.stop()
    finally:
        probe.__exit__(None, None, None)


def ring_id_site(target: RingIdTarget, where: Target) -> RingIdSite:
    """Where the ring-id write will be measured, resolved once per run: the state dir's filesystem.
    The same device number as the measured path's (stat(2) st_dev) means the same filesystem, so
    mountinfo is read again only for a state dir on another one."""
    def unavailable(why: str) -> RingIdSite:
        return RingIdSite(target, "", "", False, unavailable=why)

    try:
        real = os.path.realpath(target.state_dir)
        st = os.stat(real)
        if not stat.S_ISDIR(st.st_mode):
            return unavailable("not a directory")
        if st.st_dev == os.stat(where.real_path).st_dev:
            return RingIdSite(target, where.mountpoint, where.fstype, same_filesystem=True)
        entry = mount_of(real)
    except OSError as exc:
        return unavailable(exc.strerror or str(exc))
    if entry.fstype in PSEUDO_FSTYPES:
        return unavailable(f"{entry.fstype} at {entry.mountpoint} is a kernel interface, not a disk")
    return RingIdSite(target, entry.mountpoint, entry.fstype, same_filesystem=False)


def _start_ring_id(site: RingIdSite, notes: list[str]) -> RingIdProbe | None:
    """Start the ring-id writer; when it cannot run (no such directory, not writable), the workload
    is measured without it and a note says why."""
    why = site.unavailable
    if why is None:
        # Paused until the first probe window, it writes only in those (a fifth of the run,
        # windows.PROBE_WINDOW_NS of every second), at a rate raised to keep RATE_PER_S writes a
        # second of the run: as many samples as before, and each file still rewritten every
        # ROTATING_FILES / RATE_PER_S seconds of wall time.
        plan = WindowPlan()
        rate = RING_ID_RATE_PER_S * (plan.quiet_ns + plan.probe_ns) / plan.probe_ns
        probe = RingIdProbe(site, rate_per_s=rate, start_paused=True)
        try:
            probe.start()
            return probe
        except OSError as exc:
            probe.__exit__(None, None, None)
            why = exc.strerror or str(exc)
        except BaseException:
            probe.__exit__(None, None, None)
            raise
    notes.append(f"corosync's ring-id write not measured on {site.target.state_dir}: {why}")
    return None


def _result(
    params: BenchParams,
    mountpoint: str,
    fstype: str,
    loop: Recorder,
    elapsed_ns: int,
    warmup_ops: int,
    devices: tuple[blockstats.BlockDevice, ...],
    before: dict[str, blockstats.Counters],
    prepared: workloads.Prepared | None,
    probe_result: SchedProbeResult | None,
    partial_reason: str | None,
    ring_id: RingIdStoreResult | None = None,
    extra_notes: list[str] | None = None,
    background: BackgroundWriteResult | None = None,
    paced: PacingResult | None = None,
) -> BenchResult:
    loop.close(elapsed_ns)
    windows: ProbeWindows | None = None
    timeline = tuple(loop.timeline)
    if isinstance(loop, WindowedRecorder):
        # The headline figures are the quiet windows' (fsyncprobe.measure.windows).
        windows = loop.summary()
        elapsed_ns = windows.quiet_ns
        timeline = loop.quiet_timeline()
        # No probe window (a run shorter than one quiet window): nothing sampled, nothing to say.
        if probe_result is not None and probe_result.lateness.count == 0:
            probe_result = None
        if ring_id is not None and ring_id.latency.count == 0 and ring_id.note is None:
            ring_id = None
    after = blockstats.read_counters([d.name for d in devices])
    writes = blockstats.deltas(devices, before, after)
    notes = list(prepared.notes) if prepared else []
    notes += _notes_for_fstype(fstype)
    # The device counters and a paced run's schedule cover the whole run, the probe's windows too.
    all_ops = loop.ops + (windows.beside_probe_ops if windows is not None else 0)
    notes += blockstats.flush_notes(writes, all_ops)
    notes += extra_notes or []
    notes += pacing.notes(paced, all_ops, cut_short=partial_reason is not None)
    if ring_id is not None and ring_id.note:
        notes.append(f"ring-id write: {ring_id.note}")
    if background is not None and background.note:
        notes.append(background.note)
    if params.background_write is not None and background is None:
        notes.append("the background writer died without a result: the figures may not be under its load")
    if windows is not None and windows.note:
        notes.append(windows.note)
    return BenchResult(
        params=params,
        mountpoint=mountpoint,
        fstype=fstype,
        ops=loop.ops,
        elapsed_ns=elapsed_ns,
        ops_per_s=loop.ops * 1e9 / elapsed_ns if elapsed_ns > 0 else 0.0,
        latency=summarize(loop.hist),
        histogram=SavedHistogram.of(loop.hist),
        timeline=timeline,
        stalls=StallSummary(
            threshold_ns=params.stall_threshold_ns, count=loop.stalls, longest_ns=loop.hist.max_value
        ),
        device_writes=writes,
        warmup_ops=warmup_ops,
        partial=partial_reason is not None,
        partial_reason=partial_reason,
        notes=tuple(notes),
        sched_probe=probe_result,
        ring_id_store=ring_id,
        background_write=background,
        pacing=paced,
        probe_windows=windows,
    )


