"""A measuring side process and its parent: the protocol the scheduling and ring-id probes share.

The probes run as processes of their own, not threads, so that neither Python's GIL nor the
measuring loop delays what they time. The protocol is one JSON object per line on the child's
stdout: `{"ready": true}` once it measures, then, when its stdin reaches EOF (the parent closed
the pipe, or died: so a parent killed by SIGKILL never leaves a probe behind), its result with a
histogram, and it exits. A child that can pause (the scheduling probe, `child_control`) also reads
`pause` and `resume` lines on its stdin: it answers `{"paused": true}` once its last sample is
taken and then blocks, without a timer, until `resume` (or EOF). Real-time set-up (as corosync's
`corosync_setscheduler` and `corosync_mlockall`, exec/main.c) is here too, as both children want it.
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
import time
from typing import IO, Any, Self

from fsyncprobe.stats.histogram import Histogram

_MCL_CURRENT, _MCL_FUTURE = 1, 2  # <sys/mman.h>


PAUSE_TIMEOUT_S = 30.0
"""How long `SideProcess.pause` waits for a child's answer. A child answers after the sample in
progress, so normally within milliseconds; one kept off the CPU or blocked in the kernel answers
late by the stall it is measuring (4.9 s in corosync issue 520), and one stuck longer than this is
given up on rather than hang the run."""


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


class Control:
    """In a child that can pause: what its parent asked for, set by a thread reading stdin."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        """Set at EOF: stop, report, exit."""
        self.pause = threading.Event()
        """Set by a `pause` line: the child takes no more samples, answers, and waits for `resume`."""
        self.resume = threading.Event()
        """Set by a `resume` line (and at EOF, so a paused child wakes up to report)."""

    def wait_resumed(self) -> bool:
        """Block until `resume` or EOF, with no timeout, so a paused child never wakes the CPU
        (`threading.Event.wait()` without a timeout is one futex wait); True to go on measuring."""
        self.resume.wait()
        self.resume.clear()
        return not self.stop.is_set()


def child_control() -> Control:
    """`child_setup` for a child that can pause: ignore Ctrl-C, and read `pause`/`resume` lines from
    stdin until EOF (which sets `stop` and `resume`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = Control()

    def watch_stdin() -> None:
        try:
            for line in sys.stdin.buffer:
                word = line.strip()
                if word == b"pause":
                    control.pause.set()
                elif word == b"resume":
                    control.resume.set()
        finally:
            control.stop.set()
            control.resume.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    return control


class Stretches:
    """In a pausable child: when it samples. `step()` before each sample runs the pause protocol
    (`pause` answered with the stretch just ended, blocking with no timer until `resume`) and keeps
    the time spent sampling (`active_ns`) and the number of stretches (`windows`)."""

    SAMPLE, RESUMED, STOP = "sample", "resumed", "stop"

    def __init__(self, control: Control, start_paused: bool) -> None:
        self.control = control
        self.running = not start_paused
        self.windows = 1 if self.running else 0
        self.active_ns = 0
        self.started = time.monotonic_ns()

    def step(self) -> str:
        """`SAMPLE` (go on), `RESUMED` (a pause just ended: start the schedule afresh, so nothing
        spans the pause) or `STOP` (stdin closed: report and exit)."""
        control = self.control
        while True:
            if not self.running:
                if not control.wait_resumed():
                    return self.STOP
                self.running, self.windows, self.started = True, self.windows + 1, time.monotonic_ns()
                return self.RESUMED
            if control.stop.is_set():
                self.end()
                return self.STOP
            if not control.pause.is_set():
                return self.SAMPLE
            control.pause.clear()
            ended = self.end()
            say({"paused": True, "active_from_ns": self.started, "active_to_ns": ended})

    def end(self) -> int:
        """Close the stretch in progress (a pause, a stop, a failure); returns when it ended."""
        ended = time.monotonic_ns()
        if self.running:
            self.active_ns += ended - self.started
            self.running = False
        return ended


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
        self._early_result: dict[str, Any] | None = None
        """The result line a child sent in answer to a control line (it had stopped on its own, e.g.
        on a failed write): kept for `finish`."""

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

    def send(self, word: str) -> None:
        """Send one control line (`pause`, `resume`) to a child that reads them (`child_control`)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise OSError(f"the {self.what} is not running")
        try:
            proc.stdin.write(word.encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise OSError(f"the {self.what} exited early") from None

    def expect(self, key: str, timeout_s: float) -> dict[str, Any]:
        """Read the child's next line and check it says `key` (OSError: it died, said otherwise,
        or said nothing within `timeout_s`: a child stuck that long is given up on, and a late
        answer is skipped by `finish`)."""
        proc = self._proc
        if proc is not None and proc.stdout is not None:
            # Each request gets exactly one line, so nothing is left buffered between them and the
            # pipe itself says whether the answer is there.
            ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
            if not ready:
                raise OSError(f"the {self.what} did not answer {key!r} within {timeout_s:g} s")
        got = self._readline(proc.stdout if proc is not None else None)
        if not got.get(key):
            if "duration_ns" in got:  # its result: it stopped on its own and has said everything
                self._early_result = got
                raise OSError(f"the {self.what} stopped: {got.get('note') or 'no reason given'}")
            raise OSError(f"the {self.what} did not answer {key!r}")
        return got

    def pause(self, timeout_s: float) -> tuple[int, int]:
        """Ask a pausable child (`child_control`) to stop sampling and return once it has: the
        monotonic times (ns, one clock in every process) at which the stretch it just ended had
        begun and ended. OSError: it died, or did not answer within `timeout_s`."""
        self.send("pause")
        got = self.expect("paused", timeout_s)
        return int(got["active_from_ns"]), int(got["active_to_ns"])

    def finish(self, timeout_s: float | None = None) -> tuple[dict[str, Any], Histogram] | None:
        """Tell the process to stop and read its result line and histogram (None: it died first, or
        sent nothing within `timeout_s` when one is given)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return None
        proc.stdin.close()
        data = self._early_result
        if data is None:
            if timeout_s is not None and proc.stdout is not None and \
                    not select.select([proc.stdout], [], [], timeout_s)[0]:
                return None
            try:
                data = self._readline(proc.stdout)
                while "paused" in data:  # a late answer to a control line (`expect` gave up on it)
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


class SideProcessOwner:
    """What every driver of one side process has in common (the scheduling probe, the background
    writer): a context manager that reaps the process on every path, its pid, and `start`."""

    _side: SideProcess

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._side.close()

    @property
    def pid(self) -> int | None:
        """The process's pid while it runs (tests stop it, or watch it go)."""
        return self._side.pid

    def start(self) -> None:
        """Start the process and return once it says it is ready (its Python start-up is not
        counted: the probe measures, the writer has its file open)."""
        self._side.start()
