"""The scheduling-stall probe: how late a real-time sleeper wakes while the sync workload runs.

Corosync runs at real-time priority (exec/main.c `corosync_setscheduler`: SCHED_RR at
`sched_get_priority_max(SCHED_RR)`, unless started with `-p`) and locks its memory
(`corosync_mlockall`). Heavy host I/O can still keep it from running on time (corosync issue 520:
"corosync not scheduled for N ms" under disk load), and a node whose corosync is silent long enough
is declared gone. So beside every sync workload we run a process set up the same way that sleeps a
short fixed interval, over and over, and records how late each wake-up was. Its distribution is
what a corosync process on this node would have suffered under this I/O.

It is a separate process, not a thread: a thread would wait for the measuring loop's GIL and
report Python's lock hand-offs, not the kernel's scheduling delays. The child reads its stdin; the
parent stops it by closing that pipe, so a parent killed by SIGKILL never leaves a probe behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

from fsyncprobe.measure.types import SchedProbeResult
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize

DEFAULT_INTERVAL_NS = 2_000_000
"""How long the probe sleeps each time: short enough for hundreds of samples a second, long enough
that the probe itself costs well under 1 % of a core (each wake-up is a few microseconds)."""

_MCL_CURRENT, _MCL_FUTURE = 1, 2  # <sys/mman.h>, as corosync's corosync_mlockall passes them


def _set_realtime() -> tuple[str, int, str | None]:
    """Ask for SCHED_RR at the top priority, as corosync does; say what we got and why not."""
    notes: list[str] = []
    policy, priority = "SCHED_OTHER", 0
    try:
        top = os.sched_get_priority_max(os.SCHED_RR)
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(top))
        policy, priority = "SCHED_RR", top
    except PermissionError:
        # Unprivileged users lack CAP_SYS_NICE (sched(7)); as root, a cgroup-v1 cpu controller
        # with cpu.rt_runtime_us = 0 refuses too (Documentation/scheduler/sched-rt-group.rst).
        notes.append("no real-time priority (EPERM: not root, or no RT runtime in this cgroup): "
                     "ran at normal priority, so delays include ordinary CPU contention")
    except (OSError, AttributeError) as exc:
        notes.append(f"no real-time priority ({exc}): ran at normal priority")
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
            notes.append(f"memory not locked (mlockall: {os.strerror(ctypes.get_errno())}): page faults may add delay")
    return policy, priority, "; ".join(notes) or None


def _child(interval_ns: int) -> int:
    """The probe process: sleep, record lateness, until stdin closes; print the histogram."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    policy, priority, note = _set_realtime()
    stop = threading.Event()

    def watch_stdin() -> None:
        # EOF (parent closed the pipe or died) ends the probe.
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    hist = Histogram()
    interval_s = interval_ns / 1e9
    clock = time.monotonic_ns
    sleep = time.sleep
    record = hist.record
    print(json.dumps({"ready": True}), flush=True)
    start = clock()
    while not stop.is_set():
        t0 = clock()
        sleep(interval_s)
        record(clock() - t0 - interval_ns)
    duration_ns = clock() - start
    out = {
        "policy": policy, "priority": priority, "interval_ns": interval_ns, "duration_ns": duration_ns,
        "note": note, "buckets": hist.to_sparse(), "sum_ns": hist.sum_value, "sum_sq": hist.sum_sq,
        "min_ns": max(hist.min_value, 0), "max_ns": hist.max_value,
    }
    try:
        print(json.dumps(out), flush=True)
    except BrokenPipeError:
        pass
    return 0


class SchedProbe:
    """Runs the probe process beside a workload: `start()`, work, `stop()` -> the result.

    Use as a context manager so the process is reaped on every path.
    """

    def __init__(self, interval_ns: int = DEFAULT_INTERVAL_NS) -> None:
        self.interval_ns = interval_ns
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SchedProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        """The probe process's pid while it runs (tests stop it to see a stall measured)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process and wait until it measures (its Python start-up is not counted)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "fsyncprobe.measure.schedprobe", str(self.interval_ns)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        line = self._readline(self._proc.stdout)
        if not line.get("ready"):
            raise OSError("the scheduling probe did not start")

    def stop(self) -> SchedProbeResult | None:
        """Stop the probe and return what it saw (None if it died without a result)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return None
        proc.stdin.close()
        try:
            data = self._readline(proc.stdout)
        except OSError:
            return None
        hist = Histogram.from_sparse(
            [tuple(b) for b in data["buckets"]], total_sum=data["sum_ns"], min_value=data["min_ns"],
            max_value=data["max_ns"],
        )
        hist.sum_sq = data["sum_sq"]
        return SchedProbeResult(
            policy=data["policy"], priority=data["priority"], interval_ns=data["interval_ns"],
            lateness=summarize(hist), histogram=SavedHistogram.of(hist), duration_ns=data["duration_ns"],
            note=data["note"],
        )

    @staticmethod
    def _readline(stream: IO[bytes] | None) -> dict[str, Any]:
        if stream is None:
            raise OSError("no pipe to the scheduling probe")
        raw = stream.readline()
        if not raw:
            raise OSError("the scheduling probe exited early")
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise OSError("the scheduling probe sent garbage")
        return value


if __name__ == "__main__":
    raise SystemExit(_child(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_INTERVAL_NS))
