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
from fsyncprobe.measure import nodelock
from fsyncprobe.signals import signals_ignored, sigterm_raises
from fsyncprobe.stats.histogram import Histogram
from fsyncprobe.stats.summary import SavedHistogram, summarize
from fsyncprobe.units import format_seconds
from fsyncprobe.watch import script
from fsyncprobe.watch.types import KIND_CODES, CallKind, CallStats, Restart, StopReason, WatchedProcess, WatchReport

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
RESTART_WAIT_NS = 60_000_000_000
"""Default `--restart-wait`: `systemctl restart pve-cluster` or corosync brings the new process up
within seconds; a minute covers a slow stop (pmxcfs syncs its database before it exits)."""
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
    restart_wait_ns: int = RESTART_WAIT_NS
    """How long a name given by `--process` may have no process before the watch ends
    (`--restart-wait`): one that starts within it is watched in place of the one that exited;
    0 ends the watch at the first exit, as a name watched only by `--pid` always does."""


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
    return _run_tracer(exe, params, found, starts, version, notes, tdir, stage, clock)


class _Tracer:
    """One bpftrace process running one generated program, and what it printed so far."""

    def __init__(self, exe: str, program: str) -> None:
        env = dict(os.environ, BPFTRACE_MAP_KEYS_MAX=str(MAP_KEYS_MAX), BPFTRACE_MAX_MAP_KEYS=str(MAP_KEYS_MAX))
        try:
            self.proc = subprocess.Popen([exe, "-f", "json", "-e", program], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                         process_group=0, preexec_fn=_die_with_parent)
        except OSError as exc:
            raise MeasureError(f"could not start {exe}: {exc.strerror or exc}") from None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.reader = _LineReader(self.proc.stdout.fileno())
        self.maps = Maps()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._err: list[str] = []
        stderr = self.proc.stderr
        self._err_thread = threading.Thread(target=lambda: self._err.append(stderr.read().decode(errors="replace")),
                                            daemon=True)
        self._err_thread.start()
        self.attached_ns: int | None = None
        """When its BEGIN ran (every probe attached), on the watch's clock."""
        self.stopped = False

    def poll(self, timeout_s: float) -> bool:
        """Read what is printed within `timeout_s`; False once its output has ended."""
        return not (self.sel.select(timeout=timeout_s) and not self.reader.read(self.maps))

    def stop(self) -> None:
        """SIGINT (its END block prints the maps one last time), read them, and reap it; kill it
        if it takes longer than STOP_GRACE_S. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if self.sel.select(timeout=0.5) and not self.reader.read(self.maps):
                break
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err_thread.join(timeout=5)
        self.sel.close()

    def error(self) -> str:
        """The first real error line it wrote to stderr."""
        return _stderr_error("".join(self._err))


def _merge(into: dict[tuple[int, CallKind], Histogram], hists: Mapping[tuple[int, CallKind], Histogram]) -> None:
    for key, h in hists.items():
        into.setdefault(key, Histogram()).merge(h)


def _run_tracer(exe: str, params: WatchParams, found: dict[str, tuple[int, ...]], starts: dict[int, str | None],
                version: str, notes: list[str], tdir: str, stage: Callable[[str], None] | None,
                clock: Callable[[], int]) -> WatchReport:
    """Run bpftrace until the watch ends. When every process of a name given by `--process`
    exits, the watch goes on with the others and looks for a new process of that name (pmxcfs
    after `systemctl restart pve-cluster`) for up to `params.restart_wait_ns`; when one starts,
    bpftrace is stopped and started again with a program for the new pids (its predicates name
    pids, script.generate), and what the first one counted is kept. Observed time is the sum of
    the spans the probes were attached."""
    hists: dict[tuple[int, CallKind], Histogram] = {}
    observed_ns = 0
    first_attached: int | None = None
    exited: dict[int, bool] = {}
    gone_since: dict[str, int] = {}
    restarts: list[Restart] = []
    pending: list[tuple[str, tuple[int, ...], tuple[int, ...], int]] = []  # name, old, new, exit seen
    followed = set(params.process_names) if params.restart_wait_ns > 0 else set()
    scheduling = False
    stopped: StopReason | None = None
    cause: FsyncprobeError | None = None
    tracer: _Tracer | None = None
    t_end = 0
    beside_ns = 0  # watched time while a fsyncprobe measurement held the node's lock
    beside: set[int] = set()
    last_check: int | None = None

    def end_segment() -> None:
        nonlocal observed_ns, t_end
        assert tracer is not None
        t_end = clock()
        with signals_ignored():
            tracer.stop()
        if tracer.attached_ns is not None:
            observed_ns += max(0, t_end - tracer.attached_ns)
            _merge(hists, histograms(tracer.maps))

    try:
        with sigterm_raises():
            try:
                while stopped is None:
                    live = {n: tuple(p for p in pids if not exited.get(p)) for n, pids in found.items()}
                    live = {n: p for n, p in live.items() if p}
                    prog = _program(live, params, tdir, notes if tracer is None else None)
                    scheduling = scheduling or prog.scheduling
                    # The program goes on the command line (`-e`), not into a file: the watch writes
                    # nothing but its report (an argument may be 128 KiB, MAX_ARG_STRLEN; the
                    # program is about 20 KiB).
                    tracer = _Tracer(exe, prog.text)
                    follow = False
                    alive = True
                    while True:
                        alive = tracer.poll(0.5)
                        if not alive:
                            break  # bpftrace ended by itself
                        now = clock()
                        if tracer.attached_ns is None and tracer.maps.ready:
                            tracer.attached_ns = now
                            _said_attached(stage, live, params, first_attached is None, tracer.maps)
                            if first_attached is None:
                                first_attached = now
                            for name, old, new, seen in pending:
                                restarts.append(Restart(name=name, exited_pids=old, new_pids=new,
                                                        unobserved_ns=max(0, now - seen)))
                            pending.clear()
                        if tracer.attached_ns is None:
                            continue
                        assert first_attached is not None
                        holder = nodelock.holder_pid()
                        if holder is not None and holder != os.getpid() and last_check is not None:
                            beside_ns += now - last_check
                            beside.add(holder)
                        last_check = now
                        if params.duration_ns is not None and now - first_attached >= params.duration_ns:
                            stopped = StopReason.DURATION
                            break
                        for name in _exits(found, starts, exited):
                            gone_since.setdefault(name, now)
                        for name, since in list(gone_since.items()):
                            if name in followed:
                                new = tuple(p for p in find_processes((name,))[name] if p not in starts)
                                if new:
                                    pending.append((name, found[name], new, since))
                                    del gone_since[name]
                                    found[name] = tuple(sorted((*found[name], *new)))
                                    starts.update({p: _start_time(p) for p in new})
                                    follow = True
                                    continue
                                if now - since < params.restart_wait_ns:
                                    continue
                            stopped = StopReason.PROCESS_EXITED
                            pids = found[name]
                            waited = (f"; none started again within {format_seconds(params.restart_wait_ns / 1e9)}"
                                      if name in followed else "")
                            cause = MeasureError(f"every watched {name} process exited during the watch "
                                                 f"(pid {', '.join(map(str, pids))}){waited}; "
                                                 "the report keeps what was seen")
                            break
                        if follow or stopped is not None:
                            break
                    attached = tracer.attached_ns is not None
                    last_check = None
                    end_segment()
                    if not attached:
                        if first_attached is None:
                            if cause is not None:
                                raise cause
                            raise MeasureError(f"bpftrace failed before attaching its probes: {tracer.error()}")
                        stopped = StopReason.TRACER_EXITED
                        cause = MeasureError(f"bpftrace could not attach again after a restart: {tracer.error()}")
                    elif not alive and stopped is None:
                        stopped = StopReason.TRACER_EXITED
                        cause = MeasureError(f"bpftrace ended during the watch (exit {tracer.proc.returncode}): "
                                             f"{tracer.error()}")
            except KeyboardInterrupt:
                raise Interrupted(signal.SIGINT) from None
    except Interrupted as exc:
        stopped = StopReason.SIGINT if exc.signum == signal.SIGINT else StopReason.SIGTERM
        cause = exc
        if tracer is not None and not tracer.stopped:
            end_segment()
        if first_attached is None:
            raise
    assert stopped is not None
    _exits(found, starts, exited)
    if beside_ns:
        notes.append(f"a fsyncprobe measurement (pid {', '.join(map(str, sorted(beside)))}) ran on this node for "
                     f"{format_seconds(beside_ns / 1e9)} of the watch: its own load on the disk is in these figures")
    for r in restarts:
        notes.append(f"{r.name} restarted during the watch: pid {', '.join(map(str, r.exited_pids))} exited, "
                     f"pid {', '.join(map(str, r.new_pids))} was watched in its place; "
                     f"{format_seconds(r.unobserved_ns / 1e9)} in between were not observed")
    processes = tuple(
        process_report(name, pids, hists, scheduling and name in params.sched_names,
                       tuple(p for p in pids if exited.get(p)))
        for name, pids in found.items())
    restarted = {r.name for r in restarts}
    for p in processes:
        left = tuple(x for x in p.exited_pids if p.name not in restarted)
        if left and stopped != StopReason.PROCESS_EXITED:
            notes.append(f"{p.name} pid {', '.join(map(str, left))} exited during the watch")
    report = WatchReport(
        observed_ns=observed_ns, requested_ns=params.duration_ns, interval_ns=params.interval_ns,
        bpftrace_version=version, stopped_by=stopped, processes=processes, notes=tuple(notes),
        restarts=tuple(restarts), measurement_beside_ns=beside_ns)
    if cause is not None:
        raise WatchCut(report, cause)
    return report


def _program(live: Mapping[str, tuple[int, ...]], params: WatchParams, tdir: str,
             notes: list[str] | None) -> script.Script:
    """The bpftrace program for the processes alive now; what it cannot trace goes to `notes`
    (given for the first program only: later ones trace the same calls)."""
    sched_pids = [pid for n in params.sched_names if n in live for pid in live[n]]
    all_pids = [pid for pids in live.values() for pid in pids]
    prog = script.generate(all_pids, sched_pids, syscall_tracepoints(tdir), max(1, params.interval_ns // 1_000_000_000),
                           platform.machine(), {pid: sync_fds(pid) for pid in all_pids})
    if notes is not None:
        for name in ("fsync", "fdatasync"):
            if name not in prog.traced_syscalls:
                notes.append(f"this kernel has no {name} tracepoint: those calls were not timed")
        if sched_pids and not prog.blocking:
            notes.append(f"main-thread blocking not traced: no wait-call table for {platform.machine()}")
    return prog


def _said_attached(stage: Callable[[str], None] | None, live: Mapping[str, tuple[int, ...]], params: WatchParams,
                   first: bool, maps: Maps) -> None:
    if stage is None:
        return
    what = ", ".join(f"{n} (pid {', '.join(map(str, p))})" for n, p in live.items())
    if not first:
        stage(f"attached again: watching {what}")
        return
    span = (f"for {format_seconds(params.duration_ns / 1e9)}" if params.duration_ns else "until SIGINT/SIGTERM")
    stage(f"attached {maps.attached_probes or 0} probes; watching {what} {span}")


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
           exited: dict[int, bool]) -> list[str]:
    """Mark watched pids that are gone (or reused: another start time); the names none of whose
    pids is left."""
    for pids in found.values():
        for pid in pids:
            if not exited.get(pid) and _start_time(pid) != starts.get(pid):
                exited[pid] = True
    return [name for name, pids in found.items() if pids and all(exited.get(p) for p in pids)]
