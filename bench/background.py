"""The pmxcfs workloads with and without a backup-like background writer, side by side (issue 16).

For each place measured, runs `fsyncprobe bench -w sqlite -b 4k` and `fsyncprobe bench -w pveperf`
in pairs: once alone, once with `--background-write RATE` (default max), alternating which goes
first (A B, B A, ...) so that drift in the machine's load hits both alike, and prints each
workload's p50, p99 and p99.9 and ops/s alone and loaded (the medians over the pairs) and the
loaded/alone ratio of the p99.

Places (--places, comma separated; default both):
  dir   a fresh directory under --dir (default /var/tmp): the machine's own disk.
  loop  an ext4 on a loop device this script makes (sparse image under --dir, removed after;
        root only), optionally throttled (--loop-iops, --loop-bps: the cgroup-v1 blkio write
        throttles, as the tests' "slow disk") and with its dirty-page limit scaled down (--loop-dirty:
        the bdi's strict_limit and max_bytes, Documentation/ABI/testing/sysfs-class-bdi, so a
        writer on a small test disk meets writeback as a backup meets it on a node with GiBs of
        dirty limit). The defaults, 100 IOPS, 16 MB/s and 4 MiB, are those of the test
        tests/test_measure_background.py.

    python bench/background.py                          # both places, 5 pairs of 3 s + 3 s warm-up (about 5 min)
    python bench/background.py --quick                  # 1 pair of 1 s
    python bench/background.py --places dir --rate 200M --pairs 9 --json out.json

Run by hand (docs/performance.md, "A backup beside the workload"); not in CI. Every run holds
the node's measurement lock: another fsyncprobe run fails it, unless --allow-concurrent (the
figures then measure each other too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = (("sqlite", ["-w", "sqlite", "-b", "4k"]), ("pveperf", ["-w", "pveperf"]))
BLKIO_WRITE_IOPS = "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device"
BLKIO_WRITE_BPS = "/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device"


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc.stdout


@contextmanager
def loop_ext4(base: str, size_mb: int, iops: int, bps: int, dirty_bytes: int) -> Iterator[str]:
    """A throttled loop ext4 under `base`, mounted; everything undone on the way out."""
    image = os.path.join(base, "background.img")
    mnt = os.path.join(base, "mnt")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    dev = sh("losetup", "--find", "--show", image).strip()
    st = os.stat(dev)
    majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    bdi = f"/sys/class/bdi/{majmin}"
    saved = {}
    for k in ("strict_limit", "max_ratio_fine"):
        with open(f"{bdi}/{k}") as f:
            saved[k] = f.read().strip()
    try:
        sh("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev)
        os.mkdir(mnt)
        sh("mount", dev, mnt)
        try:
            for knob, value in ((BLKIO_WRITE_IOPS, iops), (BLKIO_WRITE_BPS, bps)):
                if value:
                    with open(knob, "w") as f:
                        f.write(f"{majmin} {value}\n")
            if dirty_bytes:
                with open(f"{bdi}/max_bytes", "w") as f:
                    f.write(f"{dirty_bytes}\n")
                with open(f"{bdi}/strict_limit", "w") as f:
                    f.write("1\n")
            yield mnt
        finally:
            for knob, value in ((BLKIO_WRITE_IOPS, iops), (BLKIO_WRITE_BPS, bps)):
                if value:
                    with open(knob, "w") as f:
                        f.write(f"{majmin} 0\n")
            subprocess.run(["umount", mnt], check=False)
    finally:
        for k in ("strict_limit", "max_ratio_fine"):
            with open(f"{bdi}/{k}", "w") as f:
                f.write(saved[k] + "\n")
        subprocess.run(["losetup", "--detach", dev], check=False)
        os.unlink(image)


def bench(directory: str, args: list[str], seconds: float, warmup: float, rate: str | None,
          concurrent: bool) -> dict[str, float]:
    cmd = [sys.executable, "-m", "fsyncprobe", "bench", directory, *args, "-d", f"{seconds}s",
           "--warmup", f"{warmup}s", "--no-ring-id", "--json", "--no-progress"]
    if rate is not None:
        cmd += ["--background-write", rate]
    if concurrent:
        cmd.append("--allow-concurrent")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    b = json.loads(proc.stdout)["benches"][0]
    lat = b["latency"]
    out = {"ops_per_s": b["ops_per_s"], "p50": lat["p50_ns"], "p99": lat["p99_ns"], "p999": lat["p999_ns"]}
    bw = b["background_write"]
    if bw is not None:
        out["writer_bytes_per_s"] = bw["written_bytes_per_s"]
        out["dirty_max_bytes"] = bw["dirty_max_bytes"] or 0
    return out


def ms(ns: float) -> str:
    return f"{ns / 1e6:8.2f}"


def measure(place: str, directory: str, opts: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for name, args in WORKLOADS:
        alone: list[dict[str, float]] = []
        loaded: list[dict[str, float]] = []
        for i in range(opts.pairs):
            order = (None, opts.rate) if i % 2 == 0 else (opts.rate, None)
            for rate in order:
                r = bench(directory, args, opts.duration, opts.warmup, rate, opts.allow_concurrent)
                (alone if rate is None else loaded).append(r)
            print(f"  {place} {name} pair {i + 1}: p99 alone {alone[-1]['p99'] / 1e6:.2f} ms, "
                  f"loaded {loaded[-1]['p99'] / 1e6:.2f} ms", file=sys.stderr)
        med = {k: {m: statistics.median(r[m] for r in runs) for m in runs[0]}
               for k, runs in (("alone", alone), ("loaded", loaded))}
        rows.append({"place": place, "workload": name, "pairs": opts.pairs, "median": med,
                     "p99_ratios": [b["p99"] / a["p99"] for a, b in zip(alone, loaded, strict=True) if a["p99"]],
                     "runs": {"alone": alone, "loaded": loaded}})
    return rows


def table(rows: list[dict[str, object]], rate: str) -> str:
    lines = [f"{'place':6} {'workload':8} {'':7} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8}"
             f"  writer        Dirty max",
             "-" * 92]
    for row in rows:
        med = row["median"]
        assert isinstance(med, dict)
        for k in ("alone", "loaded"):
            m = med[k]
            extra = ""
            if k == "loaded":
                extra = (f"  {m['writer_bytes_per_s'] / 2**20:7.1f} MiB/s  {m['dirty_max_bytes'] / 2**20:7.1f} MiB")
            lines.append(f"{row['place']:6} {row['workload']:8} {k:7} {m['ops_per_s']:9.1f} {ms(m['p50'])} "
                         f"{ms(m['p99'])} {ms(m['p999'])}{extra}")
        ratios = row["p99_ratios"]
        assert isinstance(ratios, list)
        rs = ", ".join(f"{r:.1f}" for r in ratios)
        lines.append(f"{'':6} {'':8} p99 loaded/alone: median {statistics.median(ratios):.1f}x (pairs: {rs})"
                     if ratios else "")
    lines.append(f"(medians over {rows[0]['pairs'] if rows else 0} pairs; writer --background-write {rate})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--places", default="dir,loop", help="comma separated, from dir,loop")
    parser.add_argument("--dir", default="/var/tmp", help="where the fresh directory and the loop image go")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="warm-up seconds per run (the writer runs in it: on a node with much memory the page "
                             "cache takes GiBs before writeback starts)")
    parser.add_argument("--rate", default="max", help="--background-write value")
    parser.add_argument("--loop-iops", type=int, default=100, help="write IOPS throttle of the loop ext4 (0: none)")
    parser.add_argument("--loop-bps", type=int, default=16_000_000, help="write bytes/s throttle of the loop "
                        "ext4 (0: none)")
    parser.add_argument("--loop-dirty", type=int, default=4 << 20, help="dirty-page limit of the loop ext4 in bytes "
                        "(0: the kernel's)")
    parser.add_argument("--loop-size-mb", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="1 pair of 1 s runs")
    parser.add_argument("--allow-concurrent", action="store_true", help="pass --allow-concurrent to fsyncprobe")
    parser.add_argument("--json", dest="json_out", default=None, metavar="FILE")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.pairs, opts.duration, opts.warmup = 1, 1.0, 0.3
    places = [p for p in opts.places.split(",") if p]
    if set(places) - {"dir", "loop"} or opts.pairs < 1:
        parser.error("--places takes dir and/or loop; --pairs at least 1")
    if "loop" in places and os.geteuid() != 0:
        parser.error("the loop place needs root (losetup, mount, blkio); give --places dir")
    print(f"machine: {os.cpu_count()} CPUs, Linux {platform.release()}, python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows: list[dict[str, object]] = []
    work = tempfile.mkdtemp(prefix="fsyncprobe-background-bench.", dir=opts.dir)
    try:
        for place in places:
            if place == "dir":
                rows += measure("dir", work, opts)
            else:
                print(f"loop ext4: {opts.loop_size_mb} MiB, write limits {opts.loop_iops or 'no'} IOPS and "
                      f"{opts.loop_bps or 'no'} B/s, dirty limit {opts.loop_dirty or 'the kernel'}", file=sys.stderr)
                with loop_ext4(work, opts.loop_size_mb, opts.loop_iops, opts.loop_bps, opts.loop_dirty) as mnt:
                    rows += measure("loop", mnt, opts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows, opts.rate))
    if opts.json_out:
        with open(opts.json_out, "w", encoding="utf-8") as f:
            json.dump({"rate": opts.rate, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
