"""What a real corosync does when its state dir is on a slow disk (issue 17, docs/validation.md
"The ring-id write").

A 3-node ring of Debian's corosync 3.1 in network namespaces (tests/ringkit.py). Node 1's
`system { state_dir }` is on a loop ext4 throttled to --iops write IOPS (cgroup-v1 blkio,
tests/realfs.py); a sync-write load runs on that filesystem (`fsyncprobe bench -w pveperf-durable`, as a
VM disk or a backup would load it), node 1's corosync is watched with bpftrace (its ringid_*
creat and close, with their durations), and membership changes are made by stopping node 3's
corosync (SIGSTOP) for --stop-ms, long enough to be dropped, then letting it rejoin. Each trial
thus makes two membership changes that node 1 should see; the script counts what node 1 logged:
new memberships, "Corosync main process was not scheduled" with its length, and tokens lost in
the COMMIT state (a ring abandoned while forming), and how long each ring-id store took.

    python3 bench/ringid_ring.py --iops 5 --trials 6            # the throttled disk
    python3 bench/ringid_ring.py --iops 0 --trials 6            # control: not throttled

Root only (namespaces, loop devices, blkio, bpftrace). Everything it makes is removed on exit.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import realfs, ringkit  # noqa: E402  (bench/ runs from the repository: the test harness is reused)

BPF = r"""
tracepoint:syscalls:sys_enter_creat /pid == $1/ { @fn[tid] = str(args->pathname); @t[tid] = nsecs; }
tracepoint:syscalls:sys_exit_creat /pid == $1 && @t[tid]/ {
  printf("creat %s %d %d\n", @fn[tid], (nsecs - @t[tid]) / 1000, args->ret); delete(@t[tid]); delete(@fn[tid]); }
tracepoint:syscalls:sys_enter_write /pid == $1 && args->count == 8/ { @w[tid] = nsecs; @wfd[tid] = args->fd; }
tracepoint:syscalls:sys_exit_write /pid == $1 && @w[tid]/ {
  printf("write %d %d\n", @wfd[tid], (nsecs - @w[tid]) / 1000); delete(@w[tid]); delete(@wfd[tid]); }
tracepoint:syscalls:sys_enter_close /pid == $1/ { @c[tid] = nsecs; @cfd[tid] = args->fd; }
tracepoint:syscalls:sys_exit_close /pid == $1 && @c[tid]/ {
  printf("close %d %d\n", @cfd[tid], (nsecs - @c[tid]) / 1000); delete(@c[tid]); delete(@cfd[tid]); }
"""


def store_times(trace: str) -> list[float]:
    """ms of each ring-id store (creat + 8-byte write + close of the same fd) in the bpftrace output.
    glibc's creat() is the creat system call on x86_64 (sysdeps/unix/sysv/linux/creat64.c), not openat."""
    out: list[float] = []
    pending: dict[str, float] = {}
    for line in trace.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "creat" and "/ringid_" in parts[1] and int(parts[3]) >= 0:
            pending[parts[3]] = int(parts[2]) / 1000
        elif len(parts) == 3 and parts[0] == "write" and parts[1] in pending:
            pending[parts[1]] += int(parts[2]) / 1000
        elif len(parts) == 3 and parts[0] == "close" and parts[1] in pending:
            out.append(pending.pop(parts[1]) + int(parts[2]) / 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iops", type=int, default=5, help="write IOPS of node 1's state-dir disk (0: not throttled)")
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--stop-ms", type=int, default=2500, help="how long node 3 is stopped (dropped after ~T)")
    ap.add_argument("--token", type=int, default=ringkit.TOKEN_MS)
    ap.add_argument("--no-load", action="store_true", help="no sync-write load on the state-dir disk")
    ap.add_argument("--keep", metavar="DIR", help="copy node 1's log and the bpftrace output to DIR")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    if not os.path.isdir("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)
    with tempfile.TemporaryDirectory(prefix="fsyncprobe-ringid-ring-") as tmp:
        base = Path(tmp)
        with realfs.loop_ext4(base, name="state") as fs, \
                (realfs.write_iops_limit(fs, a.iops) if a.iops else nullcontext()):
            sd = fs.mountpoint / "state1"
            ring = ringkit.Ring(base, f"r{os.getpid() % 1000}", token_ms=a.token, state_dirs={1: sd})
            load = bpf = None
            try:
                ring.start()
                ring.wait_formed(30)
                pid = ring.procs[1].pid
                trace = base / "bpf.txt"
                out_fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                bpf = subprocess.Popen(["bpftrace", "-e", BPF, str(pid)], stdout=out_fd, stderr=out_fd)
                os.close(out_fd)
                time.sleep(3)  # bpftrace attaches
                if not a.no_load:
                    load = subprocess.Popen(
                        [sys.executable, "-m", "fsyncprobe", "bench", str(fs.mountpoint), "-w", "pveperf-durable",
                         "-d", "1h", "--warmup", "0s", "--no-ring-id", "--no-sched-probe", "--quiet", "--json"],
                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(5)
                before = len(ring.log(1))
                t0 = time.monotonic()
                for _ in range(a.trials):
                    p3 = ring.procs[3].pid
                    os.kill(p3, signal.SIGSTOP)
                    time.sleep(a.stop_ms / 1000)
                    os.kill(p3, signal.SIGCONT)
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:  # node 3 back in node 1's membership
                        time.sleep(0.5)
                        if ring.log(1)[before:].count("Members[3]:") >= _ + 1:
                            break
                    time.sleep(3)
                elapsed = time.monotonic() - t0
                log = ring.log(1)[before:]
            finally:
                for p in (load, bpf):
                    if p is not None and p.poll() is None:
                        p.send_signal(signal.SIGINT)
                        try:
                            p.wait(timeout=120)
                        except subprocess.TimeoutExpired:
                            p.kill()
                            p.wait()
                ring.close()
            stores = store_times(trace.read_text()) if trace.exists() else []
            if a.keep:
                os.makedirs(a.keep, exist_ok=True)
                for f in ("n1.log", "bpf.txt"):
                    if (base / f).exists():
                        (Path(a.keep) / f).write_bytes((base / f).read_bytes())
    sched = [float(m) for m in re.findall(r"not scheduled \(@[^)]*\) for ([0-9.]+) ms", log)]
    version = subprocess.run(["corosync", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"{version}; "
          f"token {a.token} ms, 3 nodes; node 1's state dir on a loop ext4 "
          f"{'throttled to ' + str(a.iops) + ' write IOPS' if a.iops else 'not throttled'}"
          f"{'' if a.no_load else ', pveperf load on it'}; {a.trials} trials of SIGSTOP node 3 for {a.stop_ms} ms"
          f" ({elapsed:.0f} s)")
    print(f"node 1: {log.count('A new membership')} new memberships (expected {2 * a.trials}), "
          f"{log.count('token was lost in the COMMIT state')} tokens lost in COMMIT, "
          f"{log.count('FAILED TO RECEIVE')} failed to receive")
    print(f"node 1: 'main process was not scheduled' {len(sched)} times"
          + (f": {', '.join(f'{s:.0f}' for s in sched)} ms" if sched else ""))
    stores.sort()
    if stores:
        print(f"node 1: {len(stores)} ring-id stores, median {stores[len(stores) // 2]:.2f} ms, "
              f"max {stores[-1]:.1f} ms; over 500 ms: {sum(1 for s in stores if s > 500)}")
    else:
        print("node 1: no ring-id store seen by bpftrace")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
