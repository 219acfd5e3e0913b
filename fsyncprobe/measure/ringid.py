"""The ring-id write probe: corosync's own disk write, timed beside the sync workload.

At every new membership corosync stores the ring's sequence number on disk before it goes on
forming the ring: `memb_state_commit_enter` (exec/totemsrp.c) calls `corosync_ring_id_store`
(exec/main.c, 3.1.x), which does, in corosync's main thread (its only event loop):

    fd = creat("<state_dir>/ringid_<nodeid>", 0600);   /* open(O_WRONLY|O_CREAT|O_TRUNC) */
    write(fd, &ring_id->seq, 8);                      /* the 64-bit ring sequence number */
    close(fd);

No fsync: the 8 bytes go to the page cache. Yet the call can block: truncating a file whose last
write is still under writeback waits for it (mm/truncate.c), and on ext4 the truncate, the mtime
update and the close (`auto_da_alloc` flushes a truncated-and-rewritten file on close,
fs/ext4/file.c `ext4_release_file`) each need the journal. While it blocks, corosync's main loop
does not run: in corosync issue 520 one such write took 4.687 s and was followed by "Corosync main
process was not scheduled for 4987.3057 ms". `state_dir` is corosync.conf's `system.state_dir`, else
$STATE_DIRECTORY, else /var/lib/corosync (exec/util.c `get_state_dir`).

So beside every sync workload a separate process (like the scheduling probe, so that Python's GIL
neither delays it nor the measuring loop) makes exactly these calls, a few times a second, on
files of the same kind in a private temp directory on the filesystem that holds the state dir,
and records how long each took. It never touches corosync's own files. The files rotate: each is
rewritten every `ROTATING_FILES / RATE_PER_S` seconds, about the time between the memberships of a
re-formation cascade; a write that follows the previous one sooner waits for its writeback and is
slower (docs/validation.md, "The ring-id write").
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

from fsyncprobe.measure.sideprocess import (
    PAUSE_TIMEOUT_S,
    SideProcess,
    Stretches,
    child_control,
    histogram_fields,
    say,
    set_realtime,
)
from fsyncprobe.measure.types import RingIdStoreResult
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize

RATE_PER_S = 4.0
"""Ring-id writes a second: a few, so that a 7-second verdict has some 30 samples and the writes
(page-cache only) do not take noticeably from the measured workload (docs/performance.md)."""
ROTATING_FILES = 16
"""Files written in turn: each is rewritten every 4 s at `RATE_PER_S`."""
RING_SEQ_BYTES = 8
"""`sizeof(memb_ring_id->seq)`: a uint64_t (include/corosync/totem/totem.h)."""
TEMP_PREFIX = "fsyncprobe-ringid-"
"""The probe's private temp dir (mkdtemp: mode 0700) starts with this."""
_CREAT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC  # creat(2) is exactly open(O_CREAT|O_WRONLY|O_TRUNC)
_OUR_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC  # safety only: the directory is ours, no link can be in it


@dataclass(frozen=True)
class RingIdTarget:
    """Where to measure the ring-id write: corosync's state dir and why that one."""

    state_dir: str
    """The directory whose filesystem is measured (our temp dir is made inside it)."""
    source: str
    """Where the path came from (`system.state_dir in /etc/corosync/corosync.conf`, ...)."""


@dataclass(frozen=True)
class RingIdSite:
    """A `RingIdTarget` resolved once per run: the filesystem the probe will write on."""

    target: RingIdTarget
    """The state dir and where it came from."""
    mountpoint: str
    """Mount point of the filesystem holding it ('' when `unavailable`)."""
    fstype: str
    """Its filesystem type ('' when `unavailable`)."""
    same_filesystem: bool
    """True when it is the filesystem the workload loads (same device number, stat(2) st_dev)."""
    unavailable: str | None = None
    """Why the ring-id write cannot be measured there (None: it can)."""


def _child(directory: str, rate_per_s: float, start_paused: bool = False) -> int:
    """The probe process: corosync_ring_id_store's calls, paced, until stdin closes.

    Like the scheduling probe it can pause (the engine's quiet windows, `fsyncprobe.measure.windows`):
    between `pause` and `resume` it writes nothing and sets no timer; it answers `pause` after the
    write in progress, and after `resume` the next write is due one interval later. `duration_ns`
    counts only the time it was writing. With `start_paused` it waits for the first `resume`."""
    control = child_control()
    policy, _, note = set_realtime()  # corosync runs SCHED_RR (exec/main.c)
    names = [os.path.join(directory, f"ringid_{k}") for k in range(ROTATING_FILES)]
    for name in names:  # corosync_ring_id_create_or_load made the file at start-up: so do we
        fd = os.open(name, _CREAT_FLAGS | _OUR_FLAGS, 0o600)
        try:
            os.write(fd, bytes(RING_SEQ_BYTES))
        finally:
            os.close(fd)
    hist = Histogram()
    clock = time.monotonic_ns
    interval_ns = int(1e9 / rate_per_s)
    say({"ready": True})
    stretches = Stretches(control, start_paused)
    seq = 0
    next_ns = stretches.started + interval_ns
    error = None
    while True:
        state = stretches.step()
        if state == Stretches.STOP:
            break
        if state == Stretches.RESUMED:
            next_ns = stretches.started + interval_ns
            continue
        now = clock()
        if next_ns > now:
            control.pause.wait((next_ns - now) / 1e9)  # a pause ends the wait at once; a stop after it
            continue
        seq += 4  # totemsrp.c memb_state_commit_token_create: a new ring's seq is the old one + 4
        t0 = clock()
        try:
            fd = os.open(names[seq // 4 % ROTATING_FILES], _CREAT_FLAGS | _OUR_FLAGS, 0o600)
            try:
                os.write(fd, seq.to_bytes(RING_SEQ_BYTES, sys.byteorder))
            finally:
                os.close(fd)
        except OSError as exc:
            error = f"ring-id write failed: {exc.strerror or exc}"
            stretches.end()
            break
        done = clock()
        hist.record(done - t0)
        # The next write is due an interval after this one was due, but never sooner than the
        # interval after a slow one ended: one long block is one sample, not a burst after it.
        next_ns = max(next_ns + interval_ns, done + interval_ns // 2)
    say({"policy": policy, "duration_ns": stretches.active_ns,
         "note": "; ".join(x for x in (note, error) if x) or None, **histogram_fields(hist)})
    return 0


class RingIdProbe:
    """Runs the probe beside a workload: `start()`, work, `stop()` -> the result; the temp dir
    and the process go on every path (use it as a context manager)."""

    def __init__(self, site: RingIdSite, rate_per_s: float = RATE_PER_S, start_paused: bool = False) -> None:
        """`start_paused`: it writes nothing until the first `resume()` (the engine's probe windows,
        where it writes at a rate raised so that its writes a second stay `RATE_PER_S`)."""
        self.start_paused = start_paused
        self.target = site.target
        self.mountpoint = site.mountpoint
        self.fstype = site.fstype
        self.same_filesystem = site.same_filesystem
        self.rate_per_s = rate_per_s
        self._side: SideProcess | None = None
        self._dir: str | None = None

    def __enter__(self) -> RingIdProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._side is not None:
            self._side.close()  # a write blocked in the kernel ends only when the disk answers
            self._side = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def start(self) -> None:
        """Make the private temp dir in the state dir and start writing (OSError when either fails)."""
        self._dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.target.state_dir)
        args = ["fsyncprobe.measure.ringid", self._dir, repr(self.rate_per_s)]
        self._side = SideProcess("ring-id probe", args + (["paused"] if self.start_paused else []), exit_timeout_s=30)
        self._side.start()

    def pause(self) -> tuple[int, int]:
        """Stop writing (after the write in progress) and return the stretch it wrote in (monotonic
        ns); OSError: it died or did not answer within `PAUSE_TIMEOUT_S`."""
        if self._side is None:
            raise OSError("the ring-id probe is not running")
        return self._side.pause(PAUSE_TIMEOUT_S)

    def resume(self) -> None:
        """Write again (the next write one interval after this)."""
        if self._side is None:
            raise OSError("the ring-id probe is not running")
        self._side.send("resume")

    def stop(self) -> RingIdStoreResult | None:
        """Stop writing and return what was measured (None when the probe died without a result)."""
        got = self._side.finish() if self._side is not None else None
        if got is None:
            return None
        data, hist = got
        return RingIdStoreResult(
            state_dir=self.target.state_dir, state_dir_source=self.target.source, mountpoint=self.mountpoint,
            fstype=self.fstype, same_filesystem=self.same_filesystem, rate_per_s=self.rate_per_s,
            policy=data["policy"], latency=summarize(hist), histogram=SavedHistogram.of(hist),
            duration_ns=data["duration_ns"], note=data["note"],
        )


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else RATE_PER_S,
                            "paused" in sys.argv[3:]))
