"""What `fsyncprobe watch` costs the process it watches (issue 12: under 3 % of its rate).

The stand-in pmxcfs of tests/watchkit.py (a process named `pmxcfs` committing pmxcfs-shaped
SQLite transactions: WAL, one file row replaced and the version row bumped per change) runs
batches of --transactions on a filesystem this script makes, alternately without and with a
watch attached to it (A B B A ..., so drift and order effects hit both alike). Each pair gives
the ratio rate(watched) / rate(alone); the median of those ratios and its distribution-free 90 %
interval (bench/compare.py `median_ci`) are printed, as is the overhead 1 - ratio.

The watch is the default program for the stand-in plus, when any `corosync` runs on this machine,
corosync too (`--process pmxcfs --process corosync`: the run-delay tracepoints then fire on every
context switch of the machine, which is what a production watch costs). The stand-in is pinned to
one CPU (--cpu; see bench/compare.py on why placement matters on a VM).

Filesystems (--fs): `slow` an ext4 on a loop device throttled to 50 write IOPS (blkio, as the
tests' "USB stick"), `ext4` the same unthrottled (syncs reach the loop file's page cache and the
host disk), `tmpfs` (no disk at all: the worst case, every cost of the tracer shows).
`--sync NORMAL` is pmxcfs's own setting (pve-cluster database.c: syncs only at checkpoints);
FULL syncs every commit.

    python3 bench/watch_overhead.py --fs ext4 --sync FULL --pairs 7
    python3 bench/watch_overhead.py --fs tmpfs --sync NORMAL --transactions 20000

Root only (loop devices, mounts, bpftrace). Everything it makes is removed on every path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests import realfs, watchkit

median_ci = importlib.import_module("compare").median_ci  # bench/compare.py's sign-test interval


@contextlib.contextmanager
def filesystem(kind: str, base: Path) -> Iterator[Path]:
    if kind == "tmpfs":
        with realfs.tmpfs(base, size="256m") as mnt:
            yield mnt
    else:
        with realfs.loop_ext4(base, size_mb=256) as fs:
            if kind == "slow":
                with realfs.write_iops_limit(fs, 50):
                    yield fs.mountpoint
            else:
                yield fs.mountpoint


def batch(standin: watchkit.Proc) -> float:
    """One batch of transactions; its rate (transactions per second)."""
    standin.send("go")
    done = standin.line().split()
    assert done[0] == "done", done
    return int(done[1]) / float(done[2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fs", choices=("slow", "ext4", "tmpfs"), default="ext4")
    ap.add_argument("--sync", choices=("NORMAL", "FULL"), default="FULL")
    ap.add_argument("--transactions", type=int, default=2000, help="per batch")
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1)
    ap.add_argument("--without-corosync", action="store_true",
                    help="watch the stand-in alone, even when corosync runs (no run-delay tracepoints)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("watch_overhead.py: needs root (loop devices, mounts, bpftrace)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="fsyncprobe-wo-") as tmp, filesystem(args.fs, Path(tmp)) as mnt:
        standin, _ = watchkit.start_standin(Path(tmp), mnt / "config.db", args.transactions, sync_mode=args.sync)
        try:
            os.sched_setaffinity(standin.pid, {args.cpu})
            batch(standin)  # warm-up: the database file and WAL exist at their size
            ratios: list[float] = []
            alone_rates: list[float] = []
            watched_rates: list[float] = []
            for i in range(args.pairs):
                rates: dict[bool, float] = {}
                for watched in ((False, True) if i % 2 == 0 else (True, False)):
                    if watched:
                        names = _names(args.without_corosync)
                        w = watchkit.Watch(*names, "--interval", "10s", "--json")
                        try:
                            w.wait_attached()
                            rates[True] = batch(standin)
                            rc, _, err = w.finish(signal.SIGINT)
                            assert rc == 0, err
                        finally:
                            w.stop()
                    else:
                        rates[False] = batch(standin)
                alone_rates.append(rates[False])
                watched_rates.append(rates[True])
                ratios.append(rates[True] / rates[False])
                print(f"pair {i + 1}: alone {rates[False]:,.1f} tx/s, watched {rates[True]:,.1f} tx/s, "
                      f"ratio {ratios[-1]:.4f}", flush=True)
        finally:
            standin.stop()
    med = statistics.median(ratios)
    ci = median_ci(ratios)
    ci_text = f"90 % interval {ci[0]:.4f} .. {ci[1]:.4f}" if ci else "too few pairs for an interval"
    what = "pmxcfs" + ("" if args.without_corosync else " and any corosync")
    print(f"\n{args.fs}, synchronous={args.sync}, {args.transactions} transactions a batch, watch {what}")
    alone, seen = statistics.median(alone_rates), statistics.median(watched_rates)
    print(f"median alone {alone:,.1f} tx/s, watched {seen:,.1f} tx/s")
    print(f"median ratio watched/alone {med:.4f} ({ci_text}); overhead {100 * (1 - med):.2f} % (target < 3 %)")
    return 0


def _names(without_corosync: bool) -> list[str]:
    """The watch's processes: the stand-in, and corosync when one runs now (other test rings come and go)."""
    names = ["--process", "pmxcfs"]
    if not without_corosync and any(_comm(p) == "corosync" for p in os.listdir("/proc") if p.isdigit()):
        names += ["--process", "corosync"]
    return names


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
