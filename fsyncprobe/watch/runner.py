"""Running a watch: check the machine can trace, find the processes, run bpftrace with the
generated program, read its JSON lines, and turn the in-kernel maps into a `WatchReport`.

The maps are cumulative and printed whole every interval, so the reader keeps only the latest
copy of each: memory is bounded by the number of distinct buckets, whatever the duration. A
signal, the end of `--duration`, or the exit of a watched process all end the same way: SIGINT
to bpftrace, whose END block prints the maps one last time.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fsyncprobe.errors import FsyncprobeError, Interrupted, MeasureError, UsageError
from fsyncprobe.signals import signals_ignored, sigterm_raises
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize
from fsyncprobe.units import format_seconds
from fsyncprobe.watch import script
from fsyncprobe.watch.types import KIND_CODES, CallKind, CallStats, StopReason, WatchedProcess, WatchReport

DEFAULT_PROCESSES = ("pmxcfs", "corosync")
"""What `watch` observes unless told otherwise: pve-cluster's pmxcfs and corosync."""
SCHED_PROCESSES = ("corosync",)
"""Whose run delay and main-thread blocking are watched: corosync's (corosync issue 520)."""
SUPPORTED_MIN = (0, 17)
"""Oldest bpftrace accepted: Debian 12's 0.17.0 (the program's syntax is checked against it)."""
TESTED_MAX = (0, 23)
"""Newest bpftrace the program is meant for (Debian 13 ships 0.23); newer ones run with a note."""
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
"""Where tracefs is mounted (Documentation/trace/ftrace.rst: /sys/kernel/tracing since 4.1)."""
BTF = "/sys/kernel/btf/vmlinux"
"""The kernel's BTF (CONFIG_DEBUG_INFO_BTF), which bpftrace reads for tracepoint and struct types."""
MAP_KEYS_MAX = 65536
"""Entries per map: the histogram map holds (pid, kind, bucket) keys; bpftrace's default is 4,096
and a full map silently drops new keys (bpftrace issue 2809). Set as `BPFTRACE_MAP_KEYS_MAX`
(0.17) and `BPFTRACE_MAX_MAP_KEYS` (the later name; not verified here)."""
STOP_GRACE_S = 15.0
"""How long bpftrace may take to print its END maps after SIGINT before it is killed."""
KIND_BY_CODE = {v: k for k, v in KIND_CODES.items()}
_NOISE = ("couldn't set RLIMIT_MEMLOCK",)  # printed by 0.17 at start on kernels that account BPF memory by cgroup


@dataclass(frozen=True)
class WatchParams:
    """What to watch and for how long."""

    process_names: tuple[str, ...] = DEFAULT_PROCESSES
    """Command names to watch (`--process`)."""
    duration_ns: int | None = None
    """`--duration` (None: until SIGINT or SIGTERM)."""
    interval_ns: int = 10_000_000_000
    """How often the in-kernel maps are pulled (`--interval`, whole seconds)."""
    sched_names: tuple[str, ...] = SCHED_PROCESSES
    """Which of them also get run delay and main-thread blocking."""
    pids: tuple[int, ...] = ()
    """Processes to watch by pid (`--pid`), grouped under their command names."""


# --- Can this machine trace? -----------------------------------------------------------------


def tracefs_dir() -> str | None:
    """The tracefs mount that has syscall tracepoints, or None."""
    for d in TRACEFS:
        if os.path.isdir(os.path.join(d, "events", "syscalls")):
            return d
    return None


def preflight() -> tuple[str, str]:
    """(bpftrace path, tracefs dir), or a `MeasureError` saying what is missing and how to get it."""
    if os.geteuid() != 0:
        raise MeasureError("watch needs root: bpftrace loads eBPF programs (run it with sudo or as root)")
    exe = shutil.which("bpftrace")
    if exe is None:
        raise MeasureError("bpftrace not found: install Debian's package `bpftrace` (apt-get install bpftrace)")
    tdir = tracefs_dir()
    if tdir is None:
        raise MeasureError("tracefs is not mounted (no /sys/kernel/tracing/events/syscalls): "
                           "mount -t tracefs tracefs /sys/kernel/tracing, on a kernel with CONFIG_FTRACE_SYSCALLS")
    try:
        btf_ok = os.path.isfile(BTF) and os.path.getsize(BTF) > 0
    except OSError:
        btf_ok = False
    if not btf_ok:
        raise MeasureError(f"kernel BTF unavailable ({BTF}): bpftrace needs a kernel built with CONFIG_DEBUG_INFO_BTF "
                           "(Debian 12/13 and Proxmox kernels are)")
    return exe, tdir


def parse_version(text: str) -> tuple[int, ...] | None:
    """(0, 17, 0) from `bpftrace v0.17.0` (None if there is no version in it)."""
    m = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def bpftrace_version(exe: str) -> tuple[str, tuple[int, ...]]:
    """The version text and number of the bpftrace at `exe`; refuses one older than 0.17."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MeasureError(f"{exe} --version failed: {exc}") from None
    ver = parse_version(out)
    if ver is None:
        raise MeasureError(f"{exe} --version gave no version ({out[:80]!r})")
    if ver[:2] < SUPPORTED_MIN:
        raise MeasureError(f"bpftrace {out} is too old: watch needs 0.17 or later (Debian 12's)")
    return out, ver


def syscall_tracepoints(tdir: str) -> set[str]:
    """System calls that have both enter and exit tracepoints on this kernel."""
    names = os.listdir(os.path.join(tdir, "events", "syscalls"))
    enter = {n[len("sys_enter_"):] for n in names if n.startswith("sys_enter_")}
    return {n for n in enter if f"sys_exit_{n}" in names}


# --- The processes -----------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time), which tells a reused pid apart; None once gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if rest[0] in ("Z", "X") else rest[19]


def process_name(pid: int) -> str | None:
    """The command name of a running user process (None: no such process, or a kernel thread)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            comm = f.read().rstrip("\n")
        os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return comm if _start_time(pid) is not None else None


def find_processes(names: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Pids per command name (/proc/PID/comm, proc(5): truncated to 15 bytes); kernel threads
    and this process are left out."""
    found: dict[str, list[int]] = {n: [] for n in names}
    short = {n[:15]: n for n in names}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as f:
                comm = f.read().rstrip("\n")
            if comm not in short or not os.path.exists(f"/proc/{entry}/exe"):
                continue
            if not os.readlink(f"/proc/{entry}/exe"):
                continue
        except OSError:  # gone meanwhile, or a kernel thread (no exe link)
            continue
        found[short[comm]].append(int(entry))
    return {n: tuple(sorted(p)) for n, p in found.items()}


def sync_fds(pid: int) -> list[int]:
    """File descriptors `pid` has open with O_SYNC/O_DSYNC (proc(5), /proc/PID/fdinfo `flags:` in octal)."""
    out: list[int] = []
    try:
        entries = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return out
    for e in entries:
        try:
            with open(f"/proc/{pid}/fdinfo/{e}", encoding="utf-8") as f:
                for line in f:
                    if line.startswith("flags:"):
                        if int(line.split()[1], 8) & script.O_DSYNC:
                            out.append(int(e))
                        break
        except (OSError, ValueError):
            continue
    return out


# --- Reading bpftrace's output -----------------------------------------------------------------


@dataclass
class Maps:
    """The latest copy of each map bpftrace printed, keys as integers."""

    maps: dict[str, dict[int, int]] = field(default_factory=dict)
    attached_probes: int | None = None
    ready: bool = False
    """True once the program's BEGIN ran, i.e. every probe is attached."""

    def feed(self, line: str) -> None:
        """Take one line of `bpftrace -f json` output (other lines are ignored)."""
        line = line.strip()
        if not line.startswith("{"):
            return
        try:
            msg = json.loads(line)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        kind, data = msg.get("type"), msg.get("data")
        if kind == "printf" and isinstance(data, str) and data.strip() == script.READY:
            self.ready = True
        elif kind == "attached_probes" and isinstance(data, dict):
            self.attached_probes = int(data.get("probes", 0))
        elif kind == "map" and isinstance(data, dict):
            for name, body in data.items():
                if name in script.MAPS and isinstance(body, dict):
                    self.maps[name] = {int(k): int(v) for k, v in body.items()}


def histograms(maps: Maps) -> dict[tuple[int, CallKind], Histogram]:
    """One histogram per (pid, kind), with the exact sum, min and max the script kept."""
    buckets: dict[tuple[int, int], list[list[int]]] = {}
    for key, count in maps.maps.get("@h", {}).items():
        pid, code, idx = script.split_hist_key(key)
        buckets.setdefault((pid, code), []).append([idx, count])
    out: dict[tuple[int, CallKind], Histogram] = {}
    for (pid, code), pairs in buckets.items():
        kind = KIND_BY_CODE.get(code)
        if kind is None:
            continue
        sk = (pid << script.KIND_BITS) | code
        out[(pid, kind)] = Histogram.from_sparse(
            pairs, total_sum=maps.maps.get("@sum", {}).get(sk), max_value=maps.maps.get("@max", {}).get(sk))
    return out


def process_report(name: str, pids: tuple[int, ...], hists: Mapping[tuple[int, CallKind], Histogram],
                   scheduling: bool, exited: tuple[int, ...] = ()) -> WatchedProcess:
    """What every process of one command name did, merged over its pids."""
    calls: list[CallStats] = []
    for kind in CallKind:
        merged = Histogram()
        for pid in pids:
            h = hists.get((pid, kind))
            if h is not None:
                merged.merge(h)
        if merged.total:
            calls.append(CallStats(kind=kind, latency=summarize(merged), histogram=SavedHistogram.of(merged)))
    return WatchedProcess(name=name, pids=pids, calls=tuple(calls), scheduling=scheduling, exited_pids=exited)


# --- Running it ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if fsyncprobe dies (prctl(2) PR_SET_PDEATHSIG), so
    no tracer outlives a SIGKILLed watch."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1 (linux/prctl.h)


class WatchCut(FsyncprobeError):
    """The watch ended before its `--duration` (or could not go on): `report` holds everything
    seen until then and `cause` says why (its exit code is the cause's)."""

    def __init__(self, report: WatchReport, cause: FsyncprobeError) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause
        self.exit_code = cause.exit_code


def _stderr_error(text: str) -> str:
    """The first real error line bpftrace wrote (its harmless RLIMIT_MEMLOCK line left out)."""
    for line in text.splitlines():
        if "ERROR" in line and not any(n in line for n in _NOISE):
            return line.strip()[:300]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not any(n in ln for n in _NOISE)]
    return lines[-1][:300] if lines else "no message"


def run(params: WatchParams, stage: Callable[[str], None] | None = None,
        clock: Callable[[], int] = time.monotonic_ns) -> WatchReport:
    """Watch until `params.duration_ns`, a signal, or the exit of every process of a watched name.
    A watch cut short raises `WatchCut` with its report; a watch that never started raises the
    `MeasureError` saying why."""
    if params.interval_ns < 1_000_000_000:
        raise UsageError("--interval must be at least 1 s")
    exe, tdir = preflight()
    version, ver = bpftrace_version(exe)
    notes: list[str] = []
    if ver[:2] > TESTED_MAX:
        notes.append(f"bpftrace {version} is newer than the versions this program was written for (0.17 to 0.23)")
    found = find_processes(params.process_names) if params.process_names else {}
    missing = [n for n, p in found.items() if not p]
    if missing:
        raise MeasureError(f"no process named {', '.join(missing)} is running (by command name, /proc/PID/comm)")
    for pid in params.pids:
        comm = process_name(pid)
        if comm is None:
            raise MeasureError(f"no process with pid {pid} is running")
        if pid not in found.get(comm, ()):
            found[comm] = tuple(sorted((*found.get(comm, ()), pid)))
    if not found:
        raise UsageError("nothing to watch: give --process NAME or --pid PID")
    starts = {pid: _start_time(pid) for pids in found.values() for pid in pids}
    sched_pids = [pid for n in params.sched_names if n in found for pid in found[n]]
    all_pids = [pid for pids in found.values() for pid in pids]
    available = syscall_tracepoints(tdir)
    prog = script.generate(all_pids, sched_pids, available, max(1, params.interval_ns // 1_000_000_000),
                           platform.machine(), {pid: sync_fds(pid) for pid in all_pids})
    for name in ("fsync", "fdatasync"):
        if name not in prog.traced_syscalls:
            notes.append(f"this kernel has no {name} tracepoint: those calls were not timed")
    if sched_pids and not prog.blocking:
        notes.append(f"main-thread blocking not traced: no wait-call table for {platform.machine()}")
    # The program goes on the command line (`-e`), not into a file: the watch writes nothing
    # but its report (an argument may be 128 KiB, MAX_ARG_STRLEN; the program is about 20 KiB).
    return _run_tracer(exe, prog.text, params, found, starts, prog.scheduling, version, notes, stage, clock)


def _run_tracer(exe: str, program: str, params: WatchParams, found: dict[str, tuple[int, ...]],
                starts: dict[int, str | None], scheduling: bool, version: str, notes: list[str],
                stage: Callable[[str], None] | None, clock: Callable[[], int]) -> WatchReport:
    env = dict(os.environ, BPFTRACE_MAP_KEYS_MAX=str(MAP_KEYS_MAX), BPFTRACE_MAX_MAP_KEYS=str(MAP_KEYS_MAX))
    try:
        proc = subprocess.Popen([exe, "-f", "json", "-e", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, process_group=0,
                                preexec_fn=_die_with_parent)
    except OSError as exc:
        raise MeasureError(f"could not start {exe}: {exc.strerror or exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    reader = _LineReader(proc.stdout.fileno())
    err_chunks: list[str] = []
    stderr = proc.stderr
    err_thread = threading.Thread(target=lambda: err_chunks.append(stderr.read().decode(errors="replace")),
                                  daemon=True)
    err_thread.start()
    maps = Maps()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    t_attached: int | None = None
    stopped: StopReason | None = None
    cause: FsyncprobeError | None = None
    exited: dict[int, bool] = {}
    try:
        with sigterm_raises():
            try:
                while True:
                    if sel.select(timeout=0.5) and not reader.read(maps):
                        break  # bpftrace ended by itself
                    now = clock()
                    if t_attached is None and maps.ready:
                        t_attached = now
                        if stage is not None:
                            what = ", ".join(f"{n} (pid {', '.join(map(str, p))})" for n, p in found.items())
                            span = (f"for {format_seconds(params.duration_ns / 1e9)}" if params.duration_ns
                                    else "until SIGINT/SIGTERM")
                            stage(f"attached {maps.attached_probes or 0} probes; watching {what} {span}")
                    if t_attached is None:
                        continue
                    if params.duration_ns is not None and now - t_attached >= params.duration_ns:
                        stopped = StopReason.DURATION
                        break
                    gone = _exits(found, starts, exited)
                    if gone:
                        stopped = StopReason.PROCESS_EXITED
                        name, pids = gone
                        cause = MeasureError(f"every watched {name} process exited during the watch "
                                             f"(pid {', '.join(map(str, pids))}); the report keeps what was seen")
                        break
            except KeyboardInterrupt:
                raise Interrupted(signal.SIGINT) from None
    except Interrupted as exc:
        stopped = StopReason.SIGINT if exc.signum == signal.SIGINT else StopReason.SIGTERM
        cause = exc
    with signals_ignored():
        t_end = clock()
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5) and not reader.read(maps):
                break
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err_thread.join(timeout=5)
        sel.close()
    if t_attached is None:
        if cause is not None:
            raise cause
        raise MeasureError(f"bpftrace failed before attaching its probes: {_stderr_error(''.join(err_chunks))}")
    if stopped is None:
        stopped = StopReason.TRACER_EXITED
        cause = MeasureError(f"bpftrace ended during the watch (exit {proc.returncode}): "
                             f"{_stderr_error(''.join(err_chunks))}")
    _exits(found, starts, exited)
    hists = histograms(maps)
    processes = tuple(
        process_report(name, pids, hists, scheduling and name in params.sched_names,
                       tuple(p for p in pids if exited.get(p)))
        for name, pids in found.items())
    for p in processes:
        if p.exited_pids and stopped != StopReason.PROCESS_EXITED:
            notes.append(f"{p.name} pid {', '.join(map(str, p.exited_pids))} exited during the watch")
    report = WatchReport(
        observed_ns=max(0, t_end - t_attached), requested_ns=params.duration_ns, interval_ns=params.interval_ns,
        bpftrace_version=version, stopped_by=stopped, processes=processes, notes=tuple(notes))
    if cause is not None:
        raise WatchCut(report, cause)
    return report


class _LineReader:
    """Whole lines from a pipe, read unbuffered (a buffered reader could hold lines the selector
    does not see)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.rest = b""

    def read(self, maps: Maps) -> bool:
        """Feed every complete line now available; False at the end of the output."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            if self.rest:
                maps.feed(self.rest.decode(errors="replace"))
                self.rest = b""
            return False
        *lines, self.rest = (self.rest + chunk).split(b"\n")
        for line in lines:
            maps.feed(line.decode(errors="replace"))
        return True


def _exits(found: Mapping[str, tuple[int, ...]], starts: Mapping[int, str | None],
           exited: dict[int, bool]) -> tuple[str, tuple[int, ...]] | None:
    """Mark watched pids that are gone (or reused); the first name none of whose pids is left."""
    for pids in found.values():
        for pid in pids:
            if not exited.get(pid) and _start_time(pid) != starts.get(pid):
                exited[pid] = True
    for name, pids in found.items():
        if pids and all(exited.get(p) for p in pids):
            return name, pids
    return None
