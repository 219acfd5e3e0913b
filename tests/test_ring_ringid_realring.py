"""A real corosync whose state dir is on a slow disk (issue 17; docs/validation.md, "The ring-id write").

A 3-node ring of Debian's corosync 3.1 (tests/ringkit.py). Node 1's `system { state_dir }` is on a
loop ext4 throttled to 5 write IOPS with a pveperf-shaped sync load on it (`fsyncprobe bench`);
node 3 is stopped just past the token and the consensus so that the ring re-forms without it and,
a moment later, with it again. Every node then stores the new ring
id (exec/main.c corosync_ring_id_store from exec/totemsrp.c memb_state_commit_enter): node 1's
creat() waits for the disk, its main loop stops, and corosync says so itself ("Process pause
detected for N ms", "Corosync main process was not scheduled for N ms"). With the same load on an
unthrottled disk, nothing of the kind. Root only; CI runs as root.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from tests import realfs
from tests.ringkit import TOKEN_MS, Ring

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PAUSE = re.compile(r"(?:Corosync main process was not scheduled \(@\d+\) for|Process pause detected for) ([0-9.]+) ms")
"""corosync's own records of its main loop not running: exec/main.c timer_function_scheduler_timeout
(over 80 % of T) and exec/totemsrp.c pause_flush (over T / 2)."""


def _trial(make_ring: Callable[..., Ring], tmp_path: Path, tag: str, iops: int) -> tuple[list[float], str]:
    """Node 1's main-loop pauses (ms) after node 3 was stopped past the token, and its log."""
    with realfs.loop_ext4(tmp_path, name=f"sd{tag}") as fs:
        throttle: AbstractContextManager[None] = realfs.write_iops_limit(fs, iops) if iops else nullcontext()
        with throttle:
            ring = make_ring(tag, state_dirs={1: fs.mountpoint / "state1"})
            load: subprocess.Popen[bytes] | None = None
            try:
                ring.wait_formed(30)
                load = subprocess.Popen(
                    [sys.executable, "-m", "fsyncprobe", "bench", str(fs.mountpoint), "-w", "pveperf-durable",
                     "-d", "10m", "--warmup", "0s", "--no-ring-id", "--no-sched-probe", "--quiet", "--json"],
                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(4)
                before = len(ring.log(1))
                pid = ring.procs[3].pid
                os.kill(pid, signal.SIGSTOP)
                try:
                    # Just past T + consensus (1650 + 1980 ms): the ring re-forms without node 3
                    # and, a moment later, with it again, so node 1 stores the ring id twice within
                    # a second: the second creat() truncates a file whose last write is still
                    # queued behind the load (mm/truncate.c waits for its writeback).
                    time.sleep((TOKEN_MS + 650) * 2.2 / 1000 + 0.3)
                finally:
                    os.kill(pid, signal.SIGCONT)
                time.sleep(12)  # node 3 rejoins: more memberships, more ring-id stores
                log = ring.log(1)[before:]
            finally:
                if load is not None:
                    load.send_signal(signal.SIGINT)
                    try:
                        load.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        load.kill()
                        load.wait()
                ring.close()  # corosync gone before its state dir's filesystem is unmounted
    return [float(m) for m in PAUSE.findall(log)], log


def test_corosync_freezes_at_a_membership_change_when_its_state_dir_is_on_a_slow_disk(
        make_ring: Callable[..., Ring], tmp_path: Path) -> None:
    calm, calm_log = _trial(make_ring, tmp_path, "a", 0)
    slow, slow_log = _trial(make_ring, tmp_path, "b", 5)
    assert "A new membership" in calm_log and "A new membership" in slow_log
    assert calm == [], calm_log[-2000:]
    # On the slow disk node 1 stopped for more than T / 2 at least once (2.5 s and more, again and
    # again, when the two stores come within a fraction of a second: bench/ringid_ring.py).
    assert slow, slow_log[-3000:]
    assert max(slow) > (TOKEN_MS + 650) / 2, slow
