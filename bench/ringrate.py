"""The model's rate of membership changes against real Corosync rings, a long run (issue 17;
results in docs/validation.md, "Rate of membership changes").

Starts `--rings` rings of three `corosync` processes (tests/ringkit.py: Debian's corosync, knet,
`token: 1000`, network namespaces joined by a bridge), stops one node of each ring again and
again with SIGSTOP for lengths drawn from a log-normal distribution (seeded), counts the
membership changes the survivors formed, and prints, as Markdown, the count beside the model's
predictions from the same distribution with their intervals, and the stalls by length. The
procedure is tests/ringrate.py's, the same as the CI test tests/test_ring_realring_rate.py
(which runs 6 x 24 stalls).

    sudo python3 bench/ringrate.py                               # 6 rings x 200 stalls, about 30 min
    sudo python3 bench/ringrate.py --stalls-per-ring 40 --median-ms 450 --sigma 0.8
    sudo python3 bench/ringrate.py --trials-csv /tmp/trials.csv  # every stall as it happened

A stall costs about 3 s when the ring holds and 11 s when it re-forms (libknet's back-off is
waited out), so a ring does about 8 stalls a minute at the default distribution. Root only.
Everything the rings create is removed by name and pid, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ringkit import Ring
from tests.ringrate import LogNormalStalls, Trial, model_view, run_series, table


def _machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run(["corosync", "-v"], capture_output=True, text=True).stdout.splitlines()
    return (f"{platform.node()}, {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
            f"{version[0].strip() if version else 'corosync ?'}, load {os.getloadavg()[0]:.1f} at start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rings", type=int, default=6, help="rings side by side (default 6)")
    ap.add_argument("--stalls-per-ring", type=int, default=200, help="stalls per ring (default 200)")
    ap.add_argument("--median-ms", type=float, default=550, help="median stall (default 550 ms)")
    ap.add_argument("--sigma", type=float, default=0.6, help="standard deviation of ln(stall) (default 0.6)")
    ap.add_argument("--cap-ms", type=float, default=1500, help="longest stall applied (default 1500 ms)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the stall lengths and phases (default 1)")
    ap.add_argument("--level", type=float, default=0.99, help="level of the intervals (default 0.99)")
    ap.add_argument("--trials-csv", help="write every stall (ring, node, requested, applied, memberships) here")
    ap.add_argument("--from-csv", help="print the table of a saved --trials-csv instead of running (give the same "
                                       "distribution options)")
    args = ap.parse_args()
    dist = LogNormalStalls(args.median_ms, args.sigma, args.cap_ms)
    view = model_view()
    if args.from_csv:
        with open(args.from_csv, newline="") as f:
            saved = [Trial(int(row["ring"]), int(row["node"]), float(row["requested_ms"]), float(row["applied_ms"]),
                           int(row["memberships"]), bool(int(row["link_down"])), int(row["late"]))
                     for row in csv.DictReader(f)]
        print(table(dist, saved, view, args.level))
        return
    if os.geteuid() != 0:
        raise SystemExit("ringrate: needs root (network namespaces, SIGSTOP of corosync)")
    for tool in ("corosync", "corosync-cmapctl", "ip", "unshare"):
        if shutil.which(tool) is None:
            raise SystemExit(f"ringrate: {tool} not installed (apt-get install corosync iproute2 util-linux)")
    started = datetime.datetime.now(datetime.UTC)
    print(f"date: {started:%Y-%m-%d %H:%M} UTC\nmachine: {_machine()}\n"
          f"command: {shlex.join(['python3', 'bench/ringrate.py', *sys.argv[1:]])}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="fsyncprobe-ringrate-"))
    rings: list[Ring] = []
    try:
        for k in range(args.rings):
            (base / f"r{k}").mkdir()
            r = Ring(base / f"r{k}", f"b{k}", subnet=213 + k)
            rings.append(r)
            r.start()
        for r in rings:
            r.wait_formed()
        time.sleep(10)  # libknet's back-off after the links came up
        t0 = time.monotonic()
        stopping = threading.Event()

        def series(k: int) -> list[Trial]:
            out = run_series(rings[k], k, dist.draw(args.stalls_per_ring, args.seed * 1000 + k),
                             seed=args.seed * 1000 + 500 + k, stop=stopping.is_set)
            print(f"ring {k}: {len(out)} stalls, {sum(1 for t in out if t.memberships)} re-formed, "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
            return out

        pool = ThreadPoolExecutor(max_workers=args.rings)
        futures = [pool.submit(series, k) for k in range(args.rings)]
        try:
            runs = [f.result() for f in futures]
        except KeyboardInterrupt:
            # Let every ring finish its current stall (its corosync must get SIGCONT), then report
            # what was done.
            print("interrupted: finishing the current stalls", file=sys.stderr, flush=True)
            stopping.set()
            runs = [f.result() for f in futures]
        finally:
            stopping.set()
            pool.shutdown(wait=True)
        elapsed = time.monotonic() - t0
    finally:
        for r in rings:
            r.close()
        shutil.rmtree(base, ignore_errors=True)
    trials = [t for run in runs for t in run]
    print(f"wall time: {elapsed / 60:.1f} min of stalls, {args.rings} rings; "
          f"load {os.getloadavg()[0]:.1f} at the end\n")
    print(table(dist, trials, view, args.level))
    if args.trials_csv:
        with open(args.trials_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ring", "node", "requested_ms", "applied_ms", "memberships", "late", "link_down"])
            for t in trials:
                w.writerow([t.ring, t.node, f"{t.requested_ms:.1f}", f"{t.actual_ms:.1f}", t.memberships, t.late,
                            int(t.link_down)])


if __name__ == "__main__":
    main()
