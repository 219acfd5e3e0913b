"""The bpftrace program a watch runs, generated for the processes watched.

Design (bpftrace(8) and its reference guide, docs/reference_guide.md of bpftrace 0.17):
- Syscall latency: `tracepoint:syscalls:sys_enter_X` stamps `nsecs` per thread, `sys_exit_X`
  turns it into a latency; predicates on `pid` (the thread group id) keep it to the watched
  processes, so every other process pays one comparison per traced call.
- Run delay: `sched:sched_wakeup`/`sched_wakeup_new` (the wakee's tid is `args->pid`) and a
  preemption seen in `sched:sched_switch` (`prev_state` R: kernel `__trace_sched_switch_state`,
  include/trace/events/sched.h) stamp the moment a thread became runnable; the `sched_switch`
  that puts it on a CPU (`args->next_pid`) ends the delay. Which tids belong to the watched
  processes is learnt in the kernel, from `sched_switch` and `sched_wakeup_new` run in their
  context (`pid` there is the process of the task being switched out / forking).
- Blocking of the main thread: `raw_syscalls:sys_enter/sys_exit` for `tid == pid`, skipping the
  calls a main loop waits in (their numbers per architecture below).
- The latency histogram is the project's own (`fsyncprobe.stats.histogram`): the script computes
  the same log-linear bucket index in the kernel (floor(log2) by a binary if-chain, as bpftrace
  0.17 has no loops over values), so a watch histogram is a `SavedHistogram` with the same 0.4 %
  bound as bench's, not bpftrace's power-of-two `hist()`.
- Every map the reader needs has a single integer key (bpftrace's JSON of a multi-key map has
  changed between versions); `interval` prints them, END prints them once more and clears every
  map, so nothing else is auto-printed at exit. The syntax is kept to what bpftrace 0.17
  (Debian 12) has and later releases kept: `args->field`, `interval:s:N`, `print`,
  `count/sum/min/max`, `delete`, `clear`, `if`, integer-keyed maps; no loops, no `args.field`
  (0.21+ only), no typed map declarations. `runner.SUPPORTED` says which versions are accepted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from fsyncprobe.stats.histogram import MAX_VALUE_BITS, N_BUCKETS, SUB_BITS
from fsyncprobe.watch.types import KIND_CODES, CallKind

IDX_BITS = 13
"""Bits of the bucket index in a histogram key (N_BUCKETS = 4,736 < 8,192)."""
KIND_BITS = 4
"""Bits of the kind code in a key."""
assert N_BUCKETS <= 1 << IDX_BITS and len(KIND_CODES) <= 1 << KIND_BITS

O_DSYNC = 0o10000
"""O_DSYNC on Linux (include/uapi/asm-generic/fcntl.h; x86 and arm64 use the generic value).
O_SYNC is __O_SYNC | O_DSYNC, so testing this bit finds both."""

SYSCALL_KINDS: dict[str, CallKind] = {
    "fsync": CallKind.FSYNC, "fdatasync": CallKind.FDATASYNC, "sync_file_range": CallKind.SYNC_FILE_RANGE,
    "msync": CallKind.MSYNC,
    "write": CallKind.WRITE, "pwrite64": CallKind.WRITE, "writev": CallKind.WRITE, "pwritev": CallKind.WRITE,
    "pwritev2": CallKind.WRITE,
    "open": CallKind.OPEN, "openat": CallKind.OPEN, "openat2": CallKind.OPEN, "creat": CallKind.OPEN,
    "rename": CallKind.RENAME, "renameat": CallKind.RENAME, "renameat2": CallKind.RENAME,
    "unlink": CallKind.UNLINK, "unlinkat": CallKind.UNLINK,
}
"""Which system call's tracepoints time which kind (a call missing on an architecture, such as
`open` on arm64, is simply not traced)."""
WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
"""Calls whose first argument `fd` may be an O_SYNC/O_DSYNC file."""
OPENS_WITH_FLAGS = ("open", "openat")
"""Opens whose `flags` argument the tracepoint shows (openat2's are behind a pointer)."""

WAIT_SYSCALLS: dict[str, tuple[int, ...]] = {
    # arch/x86/entry/syscalls/syscall_64.tbl: poll 7, select 23, pause 34, nanosleep 35, wait4 61,
    # rt_sigtimedwait 128, rt_sigsuspend 130, futex 202, clock_nanosleep 230, epoll_wait 232,
    # pselect6 270, ppoll 271, epoll_pwait 281, epoll_pwait2 441.
    "x86_64": (7, 23, 34, 35, 61, 128, 130, 202, 230, 232, 270, 271, 281, 441),
    # include/uapi/asm-generic/unistd.h: epoll_pwait 22, pselect6 72, ppoll 73, futex 98,
    # nanosleep 101, clock_nanosleep 115, rt_sigsuspend 133, rt_sigtimedwait 137, wait4 260,
    # epoll_pwait2 441.
    "aarch64": (22, 72, 73, 98, 101, 115, 133, 137, 260, 441),
}
"""System calls a main loop sleeps in on purpose: not "blocked" (libqb's loop waits in epoll_wait)."""

READY = "fsyncprobe-watch-ready"
"""What the program prints when all its probes are attached."""
MAPS = ("@h", "@sum", "@max")
"""The maps the reader parses: histogram buckets, and per (pid, kind) the exact sum and max. (No
min: the smallest sample matters to no model, and every map update costs the watched process
time, bench/watch_overhead.py; the minimum is its bucket's midpoint, within 0.4 %.)"""


def hist_key(pid: int, kind: int, index: int) -> int:
    """The key of one histogram bucket in `@h`, as the script builds it."""
    return (pid << (KIND_BITS + IDX_BITS)) | (kind << IDX_BITS) | index


def split_hist_key(key: int) -> tuple[int, int, int]:
    """(pid, kind code, bucket index) of an `@h` key."""
    return key >> (KIND_BITS + IDX_BITS), (key >> IDX_BITS) & ((1 << KIND_BITS) - 1), key & ((1 << IDX_BITS) - 1)


def split_stat_key(key: int) -> tuple[int, int]:
    """(pid, kind code) of a `@sum`/`@max` key."""
    return key >> KIND_BITS, key & ((1 << KIND_BITS) - 1)


def _bucket_code(value: str) -> str:
    """bpftrace statements setting `$i` to `fsyncprobe.stats.histogram.bucket_index(value)`."""
    exact = 2 << SUB_BITS
    lines = [f"$i = {value};", f"if ({value} >= {exact}) {{", f"  $x = {value}; $b = 0;"]
    for step in (32, 16, 8, 4, 2, 1):
        lines.append(f"  if ($x >= {1 << step}) {{ $b = $b + {step}; $x = $x >> {step}; }}")
    # bit_length - SUB_BITS - 1 == floor(log2) - SUB_BITS (histogram.bucket_index)
    lines.append(f"  $sh = $b - {SUB_BITS};")
    lines.append(f"  $i = {exact} + ($sh - 1) * {1 << SUB_BITS} + (({value} >> $sh) - {1 << SUB_BITS});")
    lines.append(f"  if ($i >= {N_BUCKETS}) {{ $i = {N_BUCKETS - 1}; }}")
    lines.append("}")
    assert MAX_VALUE_BITS < 64
    return "\n".join(lines)


def _record(pid_expr: str, kind_expr: str, value: str) -> str:
    """Statements adding `value` (ns) for (pid, kind) to the histogram and the exact statistics."""
    return "\n".join([
        _bucket_code(value),
        f"@h[({pid_expr} << {KIND_BITS + IDX_BITS}) | ({kind_expr} << {IDX_BITS}) | $i] = count();",
        f"$k = ({pid_expr} << {KIND_BITS}) | {kind_expr};",
        f"@sum[$k] = sum({value}); @max[$k] = max({value});",
    ])


def _indent(text: str, n: int = 2) -> str:
    return "\n".join((" " * n + line) if line else line for line in text.splitlines())


def _pred(pids: Collection[int]) -> str:
    return " || ".join(f"pid == {p}" for p in sorted(pids))


@dataclass(frozen=True)
class Script:
    """A generated program and what it traces."""

    text: str
    """The bpftrace program."""
    traced_syscalls: tuple[str, ...]
    """System calls whose tracepoints it attaches to."""
    scheduling: bool
    """Whether run delay and main-thread blocking are traced."""
    blocking: bool
    """Whether main-thread blocking is traced (needs this architecture's wait-call numbers)."""


def generate(
    pids: Collection[int], sched_pids: Collection[int], available: Collection[str], interval_s: int,
    arch: str, sync_fds: Mapping[int, Sequence[int]] | None = None,
) -> Script:
    """The program for `pids` (all watched processes) with run delay and main-thread blocking for
    `sched_pids` (a subset: corosync's). `available` are the syscall names whose
    `sys_enter_`/`sys_exit_` tracepoints exist (tracefs `events/syscalls`); `sync_fds` the
    O_SYNC/O_DSYNC descriptors each process already had open (from /proc/PID/fdinfo)."""
    if not pids:
        raise ValueError("no processes to watch")
    pred = _pred(pids)
    # bpftrace runs BEGIN once every probe is attached (its "attached_probes" line comes before
    # attaching), so this line is the moment from which every call is seen.
    out: list[str] = ["BEGIN {", f'  printf("{READY}\\n");']
    for pid, fds in sorted((sync_fds or {}).items()):
        for fd in fds:
            out.append(f"  @sfd[({pid} << 20) | {fd}] = 1;")
    out.append("}")
    traced: list[str] = []
    for name, kind in SYSCALL_KINDS.items():
        if name not in available:
            continue
        traced.append(name)
        code = KIND_CODES[kind]
        # One map entry per thread in a call: the start time and the kind in one value
        # (nsecs since boot stays below 2**60 for 36 years), so enter and exit cost one update,
        # one lookup and one delete.
        enter = []
        if name in WRITES:
            sw = KIND_CODES[CallKind.SYNC_WRITE]
            enter.append(f"$c = {code};")
            enter.append(f"if (@sfd[(pid << 20) | (args->fd & 0xfffff)]) {{ $c = {sw}; }}")
            enter.append(f"@t[tid] = (nsecs << {KIND_BITS}) | $c;")
        else:
            enter.append(f"@t[tid] = (nsecs << {KIND_BITS}) | {code};")
        if name in OPENS_WITH_FLAGS:
            enter.append("@of[tid] = args->flags;")
        out.append(f"tracepoint:syscalls:sys_enter_{name} /{pred}/ {{\n{_indent(chr(10).join(enter))}\n}}")
        exit_body = [f"$d = nsecs - ($s >> {KIND_BITS}); $c = $s & {(1 << KIND_BITS) - 1}; delete(@t[tid]);"]
        if name in OPENS_WITH_FLAGS:
            exit_body.append(f"if ((@of[tid] & {O_DSYNC}) && args->ret >= 0) {{")
            exit_body.append("  @sfd[(pid << 20) | (args->ret & 0xfffff)] = 1;\n}")
            exit_body.append("delete(@of[tid]);")
        exit_body.append(_record("pid", "$c", "$d"))
        body = f"$s = @t[tid];\nif ($s) {{\n{_indent(chr(10).join(exit_body))}\n}}"
        out.append(f"tracepoint:syscalls:sys_exit_{name} /{pred}/ {{\n{_indent(body)}\n}}")
    if "close" in available:
        out.append(f"tracepoint:syscalls:sys_enter_close /{pred}/ {{\n"
                   "  delete(@sfd[(pid << 20) | (args->fd & 0xfffff)]);\n}")
    waits = WAIT_SYSCALLS.get(arch)
    scheduling = bool(sched_pids)
    blocking = scheduling and waits is not None
    if scheduling:
        spred = _pred(sched_pids)
        run = KIND_CODES[CallKind.RUN_DELAY]
        out.append(f"tracepoint:sched:sched_wakeup_new /{spred}/ {{\n"
                   "  @own[args->pid] = pid; @rq[args->pid] = nsecs;\n}")
        out.append("tracepoint:sched:sched_wakeup /@own[args->pid]/ {\n  @rq[args->pid] = nsecs;\n}")
        switch = [
            f"if ({spred}) {{",
            "  @own[args->prev_pid] = pid;",
            "  if ((args->prev_state & 0xff) == 0) { @rq[args->prev_pid] = nsecs; }",
            "}",
            "$r = @rq[args->next_pid];",
            "if ($r) {",
            "  $d = nsecs - $r; $p = @own[args->next_pid]; delete(@rq[args->next_pid]);",
            _indent(_record("$p", str(run), "$d")),
            "}",
        ]
        out.append(f"tracepoint:sched:sched_switch {{\n{_indent(chr(10).join(switch))}\n}}")
        out.append(f"tracepoint:sched:sched_process_exit /{spred}/ {{\n  delete(@own[tid]); delete(@rq[tid]);\n}}")
    if blocking:
        assert waits is not None
        mpred = " || ".join(f"tid == {p}" for p in sorted(sched_pids))
        skip = " && ".join(f"args->id != {n}" for n in waits)
        out.append(f"tracepoint:raw_syscalls:sys_enter /{mpred}/ {{\n  if ({skip}) {{ @bt[tid] = nsecs; }}\n}}")
        # raw_syscalls fire for every system call of the machine: the tid comparison, not a map
        # lookup, is what every other process pays.
        blocked = "\n".join(["$d = nsecs - $s; delete(@bt[tid]);",
                             _record("pid", str(KIND_CODES[CallKind.BLOCKED]), "$d")])
        out.append(f"tracepoint:raw_syscalls:sys_exit /{mpred}/ {{\n  $s = @bt[tid];\n  if ($s) {{\n"
                   f"{_indent(blocked, 4)}\n  }}\n}}")
    prints = " ".join(f"print({m});" for m in MAPS)
    out.append(f"interval:s:{interval_s} {{\n  {prints}\n}}")
    body_so_far = "\n".join(out)
    # Clear only maps the program uses: bpftrace refuses a map that is never assigned.
    clears = " ".join(f"clear({m});" for m in (*MAPS, "@t", "@of", "@sfd", "@own", "@rq", "@bt")
                      if f"{m}[" in body_so_far)
    out.append(f"END {{\n  {prints}\n  {clears}\n}}")
    return Script(text="\n".join(out) + "\n", traced_syscalls=tuple(traced), scheduling=scheduling,
                  blocking=blocking)
