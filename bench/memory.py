"""Peak memory of a long run: fsyncprobe must not keep every sample (issue 7, docs/performance.md).

Runs `fsyncprobe bench` on a tmpfs (where fsync is a no-op, so operations are as fast as Python
can issue them and a run piles up the most samples per second) for a fixed number of operations,
in a child process, and prints the child's peak resident set size from getrusage(2)
(`ru_maxrss`, in KiB on Linux).

    python bench/memory.py                 # 20 million operations on /dev/shm
    python bench/memory.py --ops 2000000   # quicker
    python bench/memory.py --dir /mnt/tmpfs --duration 10m

Run by hand, not in CI's test suite: the default run takes about a minute per 5 M operations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

LIMIT_MIB = 100  # the target of issue 7: peak RSS under 100 MB whatever the run's length


def measure(directory: str, ops: int | None, duration: str | None) -> dict[str, float]:
    """Run one bench in a child process; return its ops, rate and peak RSS."""
    cmd = [sys.executable, "-m", "fsyncprobe", "bench", directory, "--workload", "overwrite",
           "--block-size", "4k", "--file-size", "1M", "--warmup", "0s", "--no-progress", "--json"]
    cmd += ["--ops", str(ops)] if ops is not None else ["--duration", duration or "10m"]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall_s = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"fsyncprobe exited {proc.returncode}: {proc.stderr.strip()}")
    # RUSAGE_CHILDREN's ru_maxrss is the largest RSS of any waited-for child (getrusage(2)).
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    bench = json.loads(proc.stdout)["benches"][0]
    return {"ops": bench["ops"], "ops_per_s": bench["ops_per_s"], "wall_s": wall_s, "peak_rss_mib": peak_kib / 1024}


def baseline_rss_mib() -> float:
    """RSS of a fsyncprobe that only starts (imports included), for comparison."""
    subprocess.run([sys.executable, "-m", "fsyncprobe", "--version"], capture_output=True, check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    """Parse arguments, run, print a one-screen result; exit 1 when over the limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/dev/shm", help="a directory on tmpfs (default /dev/shm)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--ops", type=int, default=None, help="operations to run (default 20,000,000)")
    group.add_argument("--duration", default=None, help="run for a time instead, e.g. 10m")
    args = parser.parse_args()
    if not os.path.isdir(args.dir):
        parser.error(f"--dir {args.dir}: not a directory")
    ops = args.ops if args.ops is not None or args.duration is not None else 20_000_000
    start_mib = baseline_rss_mib()
    r = measure(args.dir, ops, args.duration)
    print(f"startup RSS:  {start_mib:8.1f} MiB (fsyncprobe --version)")
    print(f"operations:   {r['ops']:>12,.0f} in {r['wall_s']:.1f} s wall ({r['ops_per_s']:,.0f} ops/s measured)")
    print(f"peak RSS:     {r['peak_rss_mib']:8.1f} MiB (limit {LIMIT_MIB} MiB)")
    return 0 if r["peak_rss_mib"] < LIMIT_MIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
