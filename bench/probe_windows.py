"""Does the scheduling probe move the workload, and does its effect outlast its window? (issue 16)

One long `overwrite 4k + fdatasync` run with fsyncprobe's own loop and the probe in its windows
(`fsyncprobe/measure/windows.py`), in-process, pinned to one CPU. Every fold of the loop (every
100 ms) is logged with the window it fell in and its position there; afterwards it prints the
rate of the quiet windows and of the probe windows (their ratio: the probe's effect on this
machine), and the mean latency by 100 ms position inside each kind of window: if the probe's
effect outlasted its window, the first positions of the quiet windows would be faster than the
last. The two kinds alternate every second, so drift in the disk's speed hits both alike, which
makes this a finer check than comparing separate runs (`bench/compare.py --cases probe`).

    python bench/probe_windows.py                       # 20 s on a fresh dir under /var/tmp, 3 rounds
    python bench/probe_windows.py --dir DIR --seconds 60 --rounds 5 --cpu 0
    python bench/probe_windows.py --ab --rounds 12      # old vs new in one process (below)

--ab: an A/B of the old and the new behaviour in one process, on one file, so that runs of each
are seconds apart: each round runs the loop for --seconds (default 2 here) three ways, in an
order rotating through all six: with no probe, with the probe sampling throughout (the old
`bench`), and with the windows (the new `bench`; its headline is the quiet windows' rate), and
prints per round and as medians (with the sign-test interval of bench/compare.py) the ratios
old / none and new / none.

Run by hand; the temp dir is removed on every exit path.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import time
from array import array

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fsyncprobe.measure import workloads
from fsyncprobe.measure.loop import run_phase
from fsyncprobe.measure.schedprobe import SchedProbe
from fsyncprobe.measure.types import SyncMethod, Workload
from fsyncprobe.measure.windows import WindowedRecorder

TICK_NS = 100_000_000


class LoggedRecorder(WindowedRecorder):
    """A `WindowedRecorder` that logs every fold: (time from the start, operations, their summed latency)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.log: list[tuple[int, int, int]] = []

    def fold(self, batch: array, second: int, close_seconds_before: int) -> None:
        if batch:
            self.log.append((time.monotonic_ns() - self.start_ns, len(batch), sum(batch)))
        super().fold(batch, second, close_seconds_before)


def one_round(directory: str, seconds: float) -> tuple[float, float, dict[tuple[str, int], list[int]]]:
    """(quiet ops/s, beside-probe ops/s, {(kind, position): [ops, summed latency ns]})."""
    sub = tempfile.mkdtemp(prefix="probe-windows-", dir=directory)
    try:
        prepared = workloads.prepare(Workload.OVERWRITE, sub, SyncMethod.FDATASYNC, 4096, 16 << 20)
        try:
            with SchedProbe(start_paused=True) as probe:
                probe.start()
                run_phase(prepared.op, 1_000_000_000, None, None, "warmup", None, prepared.rotating)
                rec = LoggedRecorder(100_000_000, probe)
                _, elapsed = run_phase(prepared.op, int(seconds * 1e9), None, rec, "measure", None, prepared.rotating)
                rec.close(elapsed)
                probe.stop()
        finally:
            prepared.close()
    finally:
        shutil.rmtree(sub, ignore_errors=True)
    by_pos: dict[tuple[str, int], list[int]] = collections.defaultdict(lambda: [0, 0])
    for t, ops, total in rec.log:
        # the window this fold closed a batch of: the last one that started before it
        w = max((w for w in rec.windows if w.start_ns <= t), key=lambda w: w.start_ns)
        pos = max(0, (t - w.start_ns - 1) // TICK_NS)
        by_pos[(w.kind.value, pos)][0] += ops
        by_pos[(w.kind.value, pos)][1] += total
    s = rec.summary()
    quiet = rec.ops * 1e9 / s.quiet_ns if s.quiet_ns else 0.0
    return quiet, s.beside_probe_ops_per_s, by_pos


def ab_rounds(directory: str, seconds: float, rounds: int) -> int:
    """--ab: none / old (probe throughout) / new (windows), rotating; the ratios to none."""
    from compare import median_ci  # bench/compare.py, beside this script

    from fsyncprobe.measure.loop import Recorder

    orders = ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2))
    names = ("none", "old", "new")
    old_r: list[float] = []
    new_r: list[float] = []
    sub = tempfile.mkdtemp(prefix="probe-windows-", dir=directory)
    try:
        prepared = workloads.prepare(Workload.OVERWRITE, sub, SyncMethod.FDATASYNC, 4096, 16 << 20)
        try:
            run_phase(prepared.op, 1_000_000_000, None, None, "warmup", None, prepared.rotating)
            for i in range(rounds):
                rate: dict[str, float] = {}
                for k in orders[i % len(orders)]:
                    name = names[k]
                    if name == "none":
                        rec = Recorder(100_000_000)
                        n, el = run_phase(prepared.op, int(seconds * 1e9), None, rec, "m", None, prepared.rotating)
                        rate[name] = n * 1e9 / el
                        continue
                    with SchedProbe(start_paused=name == "new") as probe:
                        probe.start()
                        rec = WindowedRecorder(100_000_000, probe) if name == "new" else Recorder(100_000_000)
                        n, el = run_phase(prepared.op, int(seconds * 1e9), None, rec, "m", None, prepared.rotating)
                        rec.close(el)
                        probe.stop()
                    if isinstance(rec, WindowedRecorder):
                        rate[name] = rec.ops * 1e9 / rec.quiet_ns()
                    else:
                        rate[name] = n * 1e9 / el
                old_r.append(rate["old"] / rate["none"])
                new_r.append(rate["new"] / rate["none"])
                print(f"round {i + 1}: none {rate['none']:,.0f} ops/s, old {rate['old']:,.0f} ({old_r[-1]:.3f}), "
                      f"new {rate['new']:,.0f} ({new_r[-1]:.3f})", flush=True)
        finally:
            prepared.close()
    finally:
        shutil.rmtree(sub, ignore_errors=True)
    for what, rs in (("old (probe throughout) / none", old_r), ("new (quiet windows) / none", new_r)):
        ci = median_ci(rs)
        interval = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "- (too few rounds)"
        print(f"{what}: median {statistics.median(rs):.3f}, 90% interval {interval}, "
              f"{sum(r > 1 for r in rs)} of {len(rs)} rounds above 1")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the disk to measure (default /var/tmp)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 20; --ab: 2)")
    parser.add_argument("--ab", action="store_true", help="an A/B of no probe, the old and the new behaviour")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to run on (default: the last one allowed)")
    args = parser.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # the probe inherits it: the same CPU, as in bench/compare.py
    if args.ab:
        seconds = args.seconds or 2.0
        print(f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; --ab: overwrite 4k + fdatasync "
              f"in {args.dir}, {args.rounds} rounds of 3 x {seconds:g} s, CPU {cpu}")
        return ab_rounds(args.dir, seconds, args.rounds)
    args.seconds = args.seconds or 20.0
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; overwrite 4k + fdatasync in "
          f"{args.dir}, {args.rounds} rounds of {args.seconds:g} s, CPU {cpu}")
    ratios = []
    total: dict[tuple[str, int], list[int]] = collections.defaultdict(lambda: [0, 0])
    for i in range(args.rounds):
        quiet, beside, by_pos = one_round(args.dir, args.seconds)
        ratios.append(beside / quiet if quiet else 0.0)
        print(f"round {i + 1}: quiet windows {quiet:,.0f} ops/s, beside the probe {beside:,.0f} ops/s, "
              f"ratio {ratios[-1]:.3f}")
        for k, (ops, lat) in by_pos.items():
            total[k][0] += ops
            total[k][1] += lat
    print(f"median ratio beside the probe / quiet: {statistics.median(ratios):.3f}")
    print("mean latency by position in the window (100 ms steps; the last, partial step has few samples):")
    for (kind, pos), (ops, lat) in sorted(total.items()):
        print(f"  {kind:5s} {pos * 100:4d}-{pos * 100 + 100:<4d} ms  {ops:8,d} ops  {lat / ops / 1000:7.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
