"""A measuring side process and its parent: the protocol the scheduling and ring-id probes share.

The probes run as processes of their own, not threads, so that neither Python's GIL nor the
measuring loop delays what they time. The protocol is one JSON object per line on the child's
stdout: `{"ready": true}` once it measures, then, when its stdin reaches EOF (the parent closed
the pipe, or died: so a parent killed by SIGKILL never leaves a probe behind), its result with a
histogram, and it exits. Real-time set-up (as corosync's `corosync_setscheduler` and
`corosync_mlockall`, exec/main.c) is here too, as both children want it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from fsyncprobe.stats.histogram import Histogram

_MCL_CURRENT, _MCL_FUTURE = 1, 2  # <sys/mman.h>


# --- The child's side --------------------------------------------------------------------------


def child_setup() -> threading.Event:
    """In the child: ignore Ctrl-C (it reaches the whole process group; the parent decides) and
    return an event set when stdin reaches EOF, the signal to stop and report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    return stop


def say(message: dict[str, Any]) -> None:
    """In the child: one JSON line to the parent (a parent that went away is not an error)."""
    try:
        print(json.dumps(message), flush=True)
    except BrokenPipeError:
        pass


def histogram_fields(hist: Histogram) -> dict[str, Any]:
    """A histogram as the fields of a result line (`Histogram.from_sparse` reads them back)."""
    return {"buckets": hist.to_sparse(), "sum_ns": hist.sum_value, "sum_sq": hist.sum_sq,
            "min_ns": max(hist.min_value, 0), "max_ns": hist.max_value}


def set_realtime() -> tuple[str, int, str | None]:
    """Ask for SCHED_RR at the top priority and lock memory, as corosync does; say what we got
    and why not: (policy, priority, note)."""
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


# --- The parent's side -------------------------------------------------------------------------


class SideProcess:
    """The parent's handle on one probe process: `start()`, `finish()` for the result, `close()`
    on every path (it reaps the process, killing it after `exit_timeout_s`)."""

    def __init__(self, what: str, args: list[str], exit_timeout_s: float) -> None:
        """`what` names the probe in errors; `args` follow `python -m`."""
        self.what = what
        self.args = args
        self.exit_timeout_s = exit_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process's pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process and wait until it measures (its Python start-up is not counted)."""
        self._proc = subprocess.Popen([sys.executable, "-m", *self.args], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if not self._readline(self._proc.stdout).get("ready"):
            raise OSError(f"the {self.what} did not start")

    def finish(self, timeout_s: float | None = None) -> tuple[dict[str, Any], Histogram] | None:
        """Tell the process to stop and read its result line and histogram (None: it died first, or
        sent nothing within `timeout_s` when one is given)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return None
        proc.stdin.close()
        if timeout_s is not None and proc.stdout is not None and \
                not select.select([proc.stdout], [], [], timeout_s)[0]:
            return None
        try:
            data = self._readline(proc.stdout)
        except OSError:
            return None
        if "buckets" not in data:  # a side process that times nothing (the background writer)
            return data, Histogram()
        hist = Histogram.from_sparse([tuple(b) for b in data["buckets"]], total_sum=data["sum_ns"],
                                     min_value=data["min_ns"], max_value=data["max_ns"])
        hist.sum_sq = data["sum_sq"]
        return data, hist

    def close(self) -> None:
        """Close the pipes and reap the process (killed if it does not end in time)."""
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
            proc.wait(timeout=self.exit_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _readline(self, stream: IO[bytes] | None) -> dict[str, Any]:
        if stream is None:
            raise OSError(f"no pipe to the {self.what}")
        raw = stream.readline()
        if not raw:
            raise OSError(f"the {self.what} exited early")
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise OSError(f"the {self.what} sent garbage")
        return value
