"""The measuring loop (issue 7): the inlined rotating write does what the workload's `op` does,
counts exactly, and the batched histogram fold loses nothing."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fsyncprobe.measure import loop, workloads
from fsyncprobe.measure.types import SyncMethod, Workload
from fsyncprobe.stats.histogram import Histogram
from tests.realfs import LoopFs


@given(st.lists(st.integers(min_value=-5, max_value=2**45), max_size=400))
def test_record_counted_equals_one_record_per_sample(values: list[int]) -> None:
    a, b = Histogram(), Histogram()
    for v in values:
        a.record(v)
    b.record_counted(Counter(values))
    assert list(a.counts) == list(b.counts)
    assert (a.total, a.sum_value, a.sum_sq, a.min_value, a.max_value) == (
        b.total, b.sum_value, b.sum_sq, b.min_value, b.max_value
    )


def _marked(prepared: workloads.Prepared) -> workloads.RotatingWrite:
    spec = prepared.rotating
    assert spec is not None
    return spec


def test_inline_overwrite_writes_every_slot_in_turn_and_counts_exactly(tmp_path: Path) -> None:
    block, size = 512, 512 * 7
    prepared = workloads.prepare(Workload.OVERWRITE, str(tmp_path), SyncMethod.FDATASYNC, block, size)
    try:
        spec = _marked(prepared)
        fd = spec.fd
        os.pwrite(fd, bytes(size), 0)
        # a warm-up of 3 operations, then 10 measured ones: the rotation continues across phases
        ops, _ = loop.run_phase(prepared.op, None, 3, None, "warmup", None, spec)
        assert ops == 3 and spec.next_slot == 3
        rec = loop.Recorder(stall_threshold_ns=10**12)
        ops, elapsed = loop.run_phase(prepared.op, None, 10, rec, "measure", None, spec)
        assert ops == 10 == rec.ops == rec.hist.total
        assert spec.next_slot == (3 + 10) % 7
        assert elapsed > 0
        rec.close(elapsed)
        assert sum(s.ops for s in rec.timeline) == 10
        data = (tmp_path / "overwrite.dat").read_bytes()
        for slot in range(7):  # 13 operations over 7 slots: every slot was written
            assert data[slot * block:(slot + 1) * block] == spec.buf
        # the callable form continues from the same slot
        os.pwrite(fd, bytes(size), 0)
        prepared.op()
        slot = (3 + 10) % 7
        assert (tmp_path / "overwrite.dat").read_bytes()[slot * block:(slot + 1) * block] == spec.buf
        assert spec.next_slot == (slot + 1) % 7
    finally:
        prepared.close()


def test_inline_append_with_dsync_runs_for_a_duration(tmp_path: Path) -> None:
    prepared = workloads.prepare(Workload.APPEND, str(tmp_path), SyncMethod.DSYNC, 2300, 2300 * 4)
    try:
        spec = _marked(prepared)
        assert spec.sync_call is None  # O_DSYNC: the write itself is durable
        rec = loop.Recorder(stall_threshold_ns=10**12)
        ops, elapsed = loop.run_phase(prepared.op, 50_000_000, None, rec, "measure", None, spec)
        assert ops == rec.hist.total > 0
        assert 50_000_000 <= elapsed < 1_000_000_000
    finally:
        prepared.close()


def test_overwrite_layout_writes_the_whole_file_and_leaves_none_of_it_cached(ext4: LoopFs) -> None:
    # As fio's overwrite=1 + invalidate=1: the file is written (allocated, no unwritten extents)
    # and then dropped from the page cache, so the measured writes make their own page-sized
    # folios. A layout that left its 1 MiB folios cached made every 4 KiB rewrite slower
    # (workloads._layout). fincore(1), util-linux, reports the bytes the page cache holds.
    size = 4 << 20
    prepared = workloads.prepare(Workload.OVERWRITE, str(ext4.mountpoint), SyncMethod.FDATASYNC, 4096, size)
    try:
        path = ext4.mountpoint / "overwrite.dat"
        st = os.stat(path)
        assert st.st_size == size and st.st_blocks * 512 >= size
        res = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        assert int(res) == 0
        prepared.op()  # one measured rewrite brings exactly its own page back
        res = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        assert int(res) == 4096
    finally:
        prepared.close()
