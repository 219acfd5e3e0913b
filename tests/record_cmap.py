"""Record real `corosync-cmapctl` output from real rings (tests/ringkit.py) into tests/data/cmap.

Run as root from the repository root: `python3 -m tests.record_cmap`. It writes, per ring,
`tests/data/cmap/<name>.icmap.txt` and `<name>.stats.txt`: exactly what `fsyncprobe.ring.live` runs inside node 1's
network namespace (the prefixes of `live.ICMAP_PREFIXES` and `live.STATS_PREFIXES`).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from fsyncprobe.ring import live
from tests import ringkit

HERE = Path(__file__).parent / "data" / "cmap"


def record(ring: ringkit.Ring, name: str) -> None:
    (HERE / f"{name}.icmap.txt").write_text(ring.cmap(1, *live.ICMAP_PREFIXES))
    (HERE / f"{name}.stats.txt").write_text(ring.cmap(1, "-m", "stats", *live.STATS_PREFIXES))


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="fsyncprobe-record-"))
    rings: list[ringkit.Ring] = []
    try:
        # 1. A quiet 4-node ring on a bridge, default coefficient: token 1000 -> T = 2300.
        (base / "a").mkdir()
        a = ringkit.Ring(base / "a", "reca", nodes=4, subnet=240)
        rings.append(a)
        a.start()
        a.wait_formed()
        time.sleep(10)
        record(a, "ring4-bridge")
        # 2. A 4-node ring through the delay hub (20 ms one way), coefficient 125: T = 1250;
        # node 1's corosync stopped for 2.5 s (> 0.8 T), so corosync records a schedmiss event
        # (exec/main.c timer_function_scheduler_timeout) and its links go down and up again.
        (base / "b").mkdir()
        b = ringkit.Ring(base / "b", "recb", "hub", totem_extra="  token_coefficient: 125\n", nodes=4, subnet=241)
        rings.append(b)
        b.start()
        b.set_delay(20)
        b.wait_formed(timeout_s=40)
        time.sleep(8)
        os.kill(b.procs[1].pid, signal.SIGSTOP)
        time.sleep(2.5)
        os.kill(b.procs[1].pid, signal.SIGCONT)
        time.sleep(12)
        record(b, "ring4-hub20ms-schedmiss")
    finally:
        for r in rings:
            r.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
