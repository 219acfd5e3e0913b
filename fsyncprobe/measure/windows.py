"""Quiet and probe windows: keep the scheduling probe's wake-ups out of the headline figures.

On a VM an idle vCPU halts, and an I/O completion that finds it halted is served later than one
that finds it awake (cpuidle `haltpoll`; KVM halt polling, Documentation/virt/kvm/halt-polling.rst):
anything that wakes the CPU often speeds a sync loop up, and the scheduling probe wakes every 0.5-2 ms
(issue 16: +6 % to +17 % on the test VM; deep C-states on bare metal do the same). So the measured
run alternates: a quiet window (the probe paused: it sets no timer and does not run) and a probe
window (it samples), quiet first. The headline figures come from the quiet windows only, the
scheduling delay from the probe windows only, and what the workload did beside the probe is kept
apart: the ratio of its rate to the headline rate is the probe's effect on this machine.

The switch happens inside `Recorder.fold`, which every phase function calls between two
operations on its 100 ms grid (`fsyncprobe.measure.loop.run_phase`): no operation is in flight at
a switch, every batch of samples lies wholly in one window, and the mechanism works with any phase
function that folds its samples through the recorder. A switch to quiet waits for the probe's
answer (it finishes the sleep in progress first), so a quiet window starts only once the probe is
blocked; the time that takes is counted in neither kind of window (`switch_ns`). A switch to the
probe does not wait: operations done while the probe wakes up count as beside it.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from fsyncprobe.measure.loop import Recorder
from fsyncprobe.measure.types import ProbeWindows, TimelineSecond, Window, WindowKind
from fsyncprobe.stats.summary import SavedHistogram, summarize

QUIET_WINDOW_NS = 800_000_000
"""A quiet window: most of the time goes to the headline figures."""
PROBE_WINDOW_NS = 200_000_000
"""A probe window: about 400 wake-ups of the probe (0.5 ms sleeps in the windows,
`schedprobe.WINDOWED_INTERVAL_NS`) each, 20 % of the run. Windows are cut at
the loop's folds (every 100 ms, or after an operation slower than that), so their lengths vary
around the plan; the plan's grid, counted from the start of the run, does not drift."""
SECOND_NS = 1_000_000_000
OVERRUN_GRACE_NS = 300_000_000
"""How long past its planned end a quiet window may stay open (an operation in flight holds it,
since windows switch only between operations) before the probes are resumed anyway: longer than
the loop's fold grid (100 ms) and the pmxcfs profile's paced interval (200 ms), so a normal run
never meets it; on a slow disk, where one sync takes seconds, it lets the probes sample while the
sync blocks, which is when corosync's own scheduling and ring-id write suffer (issue 520)."""


class ProbeSwitch(Protocol):
    """What the windows need of a side probe (`schedprobe.SchedProbe`, `ringid.RingIdProbe`)."""

    def pause(self) -> tuple[int, int]:
        """Stop sampling and return when stopped: (sampling began, sampling ended), monotonic ns."""
        ...

    def resume(self) -> None:
        """Sample again."""
        ...


class ProbeGroup:
    """The side probes a run has (the scheduling probe, corosync's ring-id write), paused and resumed
    together: both wake the CPU, and the ring-id write also loads the measured filesystem's journal
    (4 writes a second took about 3 % off an fdatasync loop's rate on the test VM), so neither may
    run in a quiet window. The first probe's sampling stretch is the window's."""

    def __init__(self, probes: list[ProbeSwitch]) -> None:
        self.probes = probes

    def pause(self) -> tuple[int, int]:
        """Pause every probe (each even when one fails, so none keeps running into the quiet
        window); OSError when one died or did not answer."""
        spans: list[tuple[int, int]] = []
        failed: OSError | None = None
        for probe in self.probes:
            try:
                spans.append(probe.pause())
            except OSError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return spans[0]

    def resume(self) -> None:
        """Resume every probe."""
        for probe in self.probes:
            probe.resume()


@dataclass(frozen=True)
class WindowPlan:
    """How long each kind of window lasts (they alternate, quiet first)."""

    quiet_ns: int = QUIET_WINDOW_NS
    """Length of a quiet window."""
    probe_ns: int = PROBE_WINDOW_NS
    """Length of a probe window."""

    def kind_at(self, elapsed_ns: int) -> WindowKind:
        """Which window the plan puts at `elapsed_ns` after the start of the measurement."""
        if elapsed_ns % (self.quiet_ns + self.probe_ns) < self.quiet_ns:
            return WindowKind.QUIET
        return WindowKind.PROBE


class WindowedRecorder(Recorder):
    """A `Recorder` whose own figures (hist, timeline, stalls, ops) are those of the quiet windows;
    `beside` records the probe windows. It pauses and resumes the probe at its folds."""

    def __init__(self, stall_threshold_ns: int, switch: ProbeSwitch | None,
                 plan: WindowPlan = WindowPlan(), clock: Callable[[], int] = time.monotonic_ns) -> None:
        """`switch` None: the probe is not running (everything is quiet). The probe must be
        paused when the measurement starts (`SchedProbe(start_paused=True)`)."""
        super().__init__(stall_threshold_ns)
        self.beside = Recorder(stall_threshold_ns)
        """The operations done in probe windows."""
        self.plan = plan
        self.switch = switch
        self.clock = clock
        self.windows: list[Window] = []
        self.switch_ns = 0
        self.note: str | None = None
        self._kind = WindowKind.QUIET
        self._since: int | None = None  # when the open window started (None: at start_ns)
        self._ops_at_open = 0
        self._last_switch_ns = 0
        self.run_ns = 0
        """Wall time of the run (set by `close`)."""
        self.overruns = 0
        """Quiet windows an operation held open past `OVERRUN_GRACE_NS`, in which the probes were
        resumed while it ran (its latency still counts in the headline: the probes' wake-ups move a
        sync by microseconds, nothing beside one that takes that long)."""
        self._running = False  # whether the probes are sampling now (a probe window or an overrun)
        self._lock = threading.Condition()
        self._watching = False
        self._watcher: threading.Thread | None = None

    def start_watch(self) -> None:
        """Start the thread that resumes the probes when an operation holds a quiet window open
        (`OVERRUN_GRACE_NS`). It wakes once a window, at the planned end of a quiet one plus the
        grace, a time that falls in the probe window of a run whose folds come on time."""
        if self.switch is None or self._watcher is not None:
            return
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, name="fsyncprobe-windows", daemon=True)
        self._watcher.start()

    def stop_watch(self) -> None:
        """Stop that thread (before the probes are stopped); safe to call twice."""
        with self._lock:
            self._watching = False
            self._lock.notify_all()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None

    def _overrun_at(self) -> int | None:
        """When the open quiet window overruns (None: the probes run already)."""
        if self._kind is not WindowKind.QUIET or self._running or self.switch is None:
            return None
        period = self.plan.quiet_ns + self.plan.probe_ns
        opened = self.start_ns if self._since is None else self._since
        k = (opened - self.start_ns) // period
        return self.start_ns + k * period + self.plan.quiet_ns + OVERRUN_GRACE_NS

    def _watch(self) -> None:
        with self._lock:
            while self._watching:
                if self.start_ns == 0:  # started just before the measured phase sets its start
                    self._lock.wait(0.01)
                    continue
                due = self._overrun_at()
                now = self.clock()
                if due is None or now < due:
                    self._lock.wait(None if due is None else (due - now) / 1e9)
                    continue
                switch = self.switch
                assert switch is not None
                try:
                    switch.resume()
                except OSError:
                    continue  # the fold's next switch finds it and says so
                self._running = True
                self.overruns += 1

    def fold(self, batch: array, second: int, close_seconds_before: int) -> None:
        """Account the batch to the open window, then switch when the plan says so."""
        if self._kind is WindowKind.QUIET:
            super().fold(batch, second, close_seconds_before)
        else:
            self.beside.fold(batch, second, close_seconds_before)
        if self.switch is None:
            return
        now = self.clock()
        want = self.plan.kind_at(now - self.start_ns)
        if want is not self._kind or (want is WindowKind.QUIET and self._running):
            with self._lock:
                self._switch(now, want)
                self._lock.notify_all()

    def _ops(self, kind: WindowKind) -> int:
        return self.ops if kind is WindowKind.QUIET else self.beside.ops

    def _close_window(self, end: int, probe_from: int | None = None, probe_to: int | None = None) -> None:
        since = self.start_ns if self._since is None else self._since
        ops = self._ops(self._kind) - self._ops_at_open
        t0 = self.start_ns
        self.windows.append(Window(kind=self._kind, start_ns=since - t0, end_ns=end - t0, ops=ops,
                                   probe_from_ns=None if probe_from is None else probe_from - t0,
                                   probe_to_ns=None if probe_to is None else probe_to - t0))

    def _switch(self, now: int, want: WindowKind) -> None:
        switch = self.switch
        assert switch is not None
        probe: tuple[int, int] | None = None
        try:
            if want is WindowKind.QUIET:
                probe = switch.pause()
            elif not self._running:  # (the watcher resumed them during a long operation)
                switch.resume()
            self._running = want is WindowKind.PROBE
        except OSError as exc:
            self._running = False
            # The probe died: nothing of ours runs any more, so the rest of the run is quiet.
            self.switch = None
            self.note = (f"a side probe stopped answering {(now - self.start_ns) / 1e9:.2f} s into the "
                         f"run ({exc}): the rest of the run is counted as quiet")
            want = WindowKind.QUIET
        done = self.clock()
        self._close_window(now, *(probe or (None, None)))
        self.switch_ns += done - now
        self._last_switch_ns = done - now
        self._kind = want
        self._since = done
        self._ops_at_open = self._ops(want)

    def close(self, elapsed_ns: int) -> None:
        """Close the last window at the end of the run and both timelines."""
        # The run is over (and the probe stopped): closing folds an empty batch (Recorder.close),
        # which must not switch windows. A paced run idles to its planned end after its last
        # fold, so without this the close asked a stopped probe to pause.
        self.stop_watch()
        self.switch = None
        self.run_ns = elapsed_ns
        end = self.start_ns + elapsed_ns
        if self._since is not None and self._since >= end:
            # The fold at the deadline switched after the last operation: that switch and the
            # window it opened are not part of the run.
            self.switch_ns -= self._last_switch_ns
            if self.windows and self.windows[-1].end_ns > elapsed_ns:
                self.windows[-1] = replace(self.windows[-1], end_ns=elapsed_ns)
        else:
            self._close_window(end)
        super().close(elapsed_ns)
        self.beside.close(elapsed_ns)

    def quiet_timeline(self) -> tuple[TimelineSecond, ...]:
        """The headline timeline: each second's quiet operations and how much of it was quiet."""
        quiet = quiet_ns_by_second(self.windows)
        return tuple(replace(s, measured_ns=quiet.get(s.second, 0)) for s in self.timeline)

    def summary(self) -> ProbeWindows:
        """What the windows were and what was done beside the probe (after `close`)."""
        quiet = [w for w in self.windows if w.kind is WindowKind.QUIET]
        probe = [w for w in self.windows if w.kind is WindowKind.PROBE]
        probe_ns = sum(w.end_ns - w.start_ns for w in probe)
        return ProbeWindows(
            quiet_window_ns=self.plan.quiet_ns, probe_window_ns=self.plan.probe_ns, run_ns=self.run_ns,
            quiet_windows=len(quiet), quiet_ns=self.quiet_ns(), probe_windows=len(probe), probe_ns=probe_ns,
            switch_ns=self.switch_ns, beside_probe_ops=self.beside.ops,
            beside_probe_ops_per_s=self.beside.ops * 1e9 / probe_ns if probe_ns > 0 else 0.0,
            beside_probe_latency=summarize(self.beside.hist),
            beside_probe_histogram=SavedHistogram.of(self.beside.hist),
            windows=tuple(self.windows), note=self.note, overruns=self.overruns,
        )

    def quiet_ns(self) -> int:
        """Total time of the quiet windows (after `close`)."""
        return sum(w.end_ns - w.start_ns for w in self.windows if w.kind is WindowKind.QUIET)


def quiet_ns_by_second(windows: list[Window] | tuple[Window, ...]) -> dict[int, int]:
    """How many ns of each second of the run (from its start) lay in quiet windows."""
    out: dict[int, int] = {}
    for w in windows:
        if w.kind is not WindowKind.QUIET:
            continue
        t = w.start_ns
        while t < w.end_ns:
            sec = t // SECOND_NS
            upto = min(w.end_ns, (sec + 1) * SECOND_NS)
            out[sec] = out.get(sec, 0) + upto - t
            t = upto
    return out
