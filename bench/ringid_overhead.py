"""Does the ring-id probe move the sync figures? (issue 17, docs/performance.md "The ring-id probe").

The probe (fsyncprobe/measure/ringid.py) makes corosync's ring-id write, creat + 8 bytes + close,
four times a second beside every workload. Those writes land on the measured filesystem when the
state dir is on it, and the probe is a process that wakes four times a second. This script runs
`fsyncprobe bench DIR` with the probe (`--state-dir DIR`, so its writes hit the same filesystem,
the worst case) and without it (`--no-ring-id`), interleaved A B B A so that drift in the load
hits both alike, and prints each pair's ratio with/without of the rate and of the p99, and the
median ratio with its 90 % sign-test interval (bench/compare.py `median_ci`).

    python3 bench/ringid_overhead.py --dir /var/tmp --pairs 8 --duration 5s

Run it from the repository root (it runs this tree's fsyncprobe) on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import median_ci  # bench/ is not a package: imported from beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one(directory: str, with_probe: bool, workload: str, duration: str) -> tuple[float, float, int]:
    """(ops/s, p99 ns, ring-id writes) of one bench run."""
    probe = ["--state-dir", directory] if with_probe else ["--no-ring-id"]
    args = ["-w", workload, "-d", duration, "--warmup", "1s", "--no-sched-probe", "--json", "--quiet"]
    if workload == "overwrite":
        args += ["-b", "4k", "--sync", "fdatasync", "--file-size", "16M"]
    out = subprocess.run([sys.executable, "-m", "fsyncprobe", "bench", directory, *args, *probe],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"fsyncprobe bench failed ({out.returncode}): {out.stderr.strip()}")
    b = json.loads(out.stdout)["benches"][0]
    ri = b.get("ring_id_store")
    return b["ops_per_s"], b["latency"]["p99_ns"], ri["latency"]["count"] if ri else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp", help="a directory on the filesystem to measure")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--workload", default="overwrite",
                    choices=["overwrite", "pveperf", "pveperf-durable", "append", "sqlite"])
    a = ap.parse_args()
    rate_ratios: list[float] = []
    p99_ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fsyncprobe-ringid-overhead-", dir=a.dir) as d:
        print(f"{'pair':>4} {'with ops/s':>11} {'without':>11} {'ratio':>6} {'p99 with':>10} {'without':>10} "
              f"{'ratio':>6} {'writes':>6}")
        for i in range(a.pairs):
            order = (True, False) if i % 2 == 0 else (False, True)
            got = {w: one(d, w, a.workload, a.duration) for w in order}
            (r1, p1, n1), (r0, p0, _) = got[True], got[False]
            rate_ratios.append(r1 / r0)
            p99_ratios.append(p1 / p0)
            print(f"{i + 1:>4} {r1:>11,.1f} {r0:>11,.1f} {r1 / r0:>6.3f} {p1 / 1e3:>8,.0f}µs {p0 / 1e3:>8,.0f}µs "
                  f"{p1 / p0:>6.3f} {n1:>6}", flush=True)
    for name, rs in (("rate", rate_ratios), ("p99", p99_ratios)):
        ci = median_ci(rs)
        span = f" (90 % interval {ci[0]:.3f} to {ci[1]:.3f})" if ci else ""
        print(f"median {name} ratio with/without the probe: {sorted(rs)[len(rs) // 2]:.3f}{span}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
