"""The model against real Corosync rings: 3 `corosync` processes (Debian's 3.1.x, knet) per ring in
network namespaces, each in its own mount namespace with a private /run and its own
`system { state_dir }`.

1. Stall tolerance: in each of six rings side by side, SIGSTOP one node's corosync for t ms, see
   whether the others form a new membership ("A new membership" in a survivor's log), and move t
   by a staircase; the 50 % point of a logistic fit to all trials is compared with
   `ring.run_model(...).stall_tolerance_ms` for the same settings: within 15 %.
2. Rotation: the token rotation time (token receipts counted by `corosync-cmapctl -m stats`)
   with and without added one-way latency, against `ring.rotation_ms`. This kernel has no
   sch_netem, so when `tc qdisc ... netem` is refused the nodes are joined by a userspace hub
   (TAP devices, a Python process that forwards frames after a delay) instead of a bridge.

Everything the test creates (namespaces named fsp<pid>..., the corosync and hub processes) is
removed by name and pid on every path. Root only; CI runs as root.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fsyncprobe.ring import conf, corosync
from fsyncprobe.ring import model as ring
from fsyncprobe.ring.inputs import node_from_latencies

pytestmark = [pytest.mark.root, pytest.mark.slow]

TOKEN_MS = 1000
NODES = 3
SUBNET = "10.213.{}.{}"
HOLD_MS = 30
WATCH = 1  # the survivor whose log we read
RINGS = 6  # independent rings the stall test runs side by side and pools
TRIALS_PER_RING = 14
STEPS_PER_T = 24  # the staircase's step: T / 24 (69 ms at T = 1650 ms)


def _need() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, mount namespaces, SIGSTOP of corosync)")
    for tool in ("corosync", "corosync-cmapctl", "ip", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install corosync iproute2 util-linux)")


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


HUB = textwrap.dedent('''
    import fcntl, heapq, os, select, struct, sys, time
    TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
    fds = []
    for name in sys.argv[1:]:
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        os.set_blocking(fd, False)
        fds.append(fd)
    delay = 0.0
    queue = []
    seq = 0
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        r, _, _ = select.select(fds + [stdin], [], [], timeout)
        now = time.monotonic()
        for fd in r:
            if fd == stdin:
                line = sys.stdin.readline()
                if not line:
                    sys.exit(0)
                delay = float(line) / 1000
                print("ok", flush=True)
                continue
            try:
                frame = os.read(fd, 65536)
            except BlockingIOError:
                continue
            for out in fds:
                if out != fd:
                    seq += 1
                    heapq.heappush(queue, (now + delay, seq, out, frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                os.write(out, frame)
            except OSError:
                pass
''')


class Ring:
    """A 3-node corosync ring in namespaces; `close()` removes everything it made."""

    def __init__(self, base: Path, tag: str, link: str = "bridge", token_ms: int = TOKEN_MS,
                 totem_extra: str = "", subnet: int = 213) -> None:
        self.base = base
        self.totem_extra = totem_extra
        self.prefix = f"fsp{os.getpid()}{tag}"
        self.link = link
        self.token_ms = token_ms
        self.netns: list[str] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.hub: subprocess.Popen[str] | None = None
        self.subnet = subnet

    def ns(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    def addr(self, i: int) -> str:
        return SUBNET.format(self.subnet, i)

    def log(self, i: int) -> str:
        try:
            return (self.base / f"n{i}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _netns_add(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.netns.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def start(self) -> None:
        for i in range(1, NODES + 1):
            self._netns_add(self.ns(i))
        if self.link == "bridge":
            br = f"{self.prefix}-br"
            self._netns_add(br)
            _run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
            _run("ip", "-n", br, "link", "set", "br0", "up")
            for i in range(1, NODES + 1):
                _run("ip", "link", "add", f"eth{i}", "netns", self.ns(i), "type", "veth",
                     "peer", "name", f"p{i}", "netns", br)
                _run("ip", "-n", br, "link", "set", f"p{i}", "master", "br0")
                _run("ip", "-n", br, "link", "set", f"p{i}", "up")
                self._ifup(i, f"eth{i}")
        else:
            taps = [f"{self.prefix}t{i}"[-15:] for i in range(1, NODES + 1)]
            self.hub = subprocess.Popen([sys.executable, "-c", HUB, *taps], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
            assert self.hub.stdout is not None
            assert self.hub.stdout.readline().strip() == "ready"
            for i, tap in enumerate(taps, 1):
                _run("ip", "link", "set", tap, "netns", self.ns(i))
                self._ifup(i, tap)
        for i in range(1, NODES + 1):
            self._start_node(i)

    def _ifup(self, i: int, dev: str) -> None:
        _run("ip", "-n", self.ns(i), "addr", "add", f"{self.addr(i)}/24", "dev", dev)
        _run("ip", "-n", self.ns(i), "link", "set", dev, "up")

    def conf_text(self, i: int) -> str:
        nodes = "\n".join(
            f"  node {{\n    nodeid: {j}\n    name: n{j}\n    ring0_addr: {self.addr(j)}\n  }}"
            for j in range(1, NODES + 1))
        return (
            "# fsyncprobe test ring\n"
            f"totem {{\n  version: 2\n  cluster_name: {self.prefix}\n  transport: knet\n"
            f"  token: {self.token_ms}\n{self.totem_extra}  crypto_cipher: none\n  crypto_hash: none\n"
            "  interface {\n    linknumber: 0\n  }\n}\n"
            f"nodelist {{\n{nodes}\n}}\n"
            "quorum {\n  provider: corosync_votequorum\n}\n"
            f"logging {{\n  to_stderr: no\n  to_syslog: no\n  to_logfile: yes\n  logfile: {self.base}/n{i}.log\n"
            "  timestamp: hires\n  debug: off\n}\n"
            f"system {{\n  state_dir: {self.base}/state{i}\n}}\n"
        )

    def conf_path(self, i: int) -> Path:
        return self.base / f"n{i}.conf"

    def _start_node(self, i: int) -> None:
        (self.base / f"state{i}").mkdir(exist_ok=True)
        self.conf_path(i).write_text(self.conf_text(i))
        # `ip netns exec` and `unshare` exec in place, so the pid we get is corosync's.
        # A private mount namespace with a tmpfs on /run keeps the pid file and IPC out of the host's.
        script = f"mount -t tmpfs fsyncprobe-run /run && exec corosync -f -c {self.conf_path(i)}"
        self.procs[i] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(i), "unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_formed(self, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(f"Members[{NODES}]:" in self.log(i) for i in range(1, NODES + 1)):
                return
            for i, p in self.procs.items():
                if p.poll() is not None:
                    raise AssertionError(f"corosync n{i} exited with {p.returncode}:\n{self.log(i)[-2000:]}")
            time.sleep(0.2)
        raise AssertionError("ring did not form:\n" + self.log(WATCH)[-3000:])

    def cmap(self, i: int, *args: str) -> str:
        return _run("ip", "netns", "exec", self.ns(i), "corosync-cmapctl", *args).stdout

    def token_rx(self, i: int) -> int:
        out = self.cmap(i, "-m", "stats", "stats.srp.orf_token_rx")
        return int(out.rsplit("=", 1)[1])

    def set_delay(self, ms: float) -> None:
        assert self.hub is not None and self.hub.stdin is not None and self.hub.stdout is not None
        self.hub.stdin.write(f"{ms}\n")
        self.hub.stdin.flush()
        assert self.hub.stdout.readline().strip() == "ok"

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    try:
                        os.kill(p.pid, sig)
                    except ProcessLookupError:
                        pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.hub is not None and self.hub.poll() is None:
            self.hub.kill()
            self.hub.wait()
        for name in reversed(self.netns):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.netns.clear()


@pytest.fixture
def make_ring(tmp_path: Path) -> Iterator[Callable[..., Ring]]:
    _need()
    rings: list[Ring] = []

    def factory(tag: str, link: str = "bridge", totem_extra: str = "") -> Ring:
        base = tmp_path / tag
        base.mkdir()
        r = Ring(base, tag, link, totem_extra=totem_extra, subnet=213 + len(rings))
        rings.append(r)
        r.start()
        return r

    try:
        yield factory
    finally:
        for r in rings:
            r.close()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"fsp{os.getpid()}" not in left, left


def _runtime_timers(r: Ring) -> dict[str, int]:
    out = r.cmap(WATCH, "runtime.config.totem.")
    vals: dict[str, int] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" = ")
        if value.strip().isdigit():
            vals[key.split(" ")[0].removeprefix("runtime.config.totem.")] = int(value)
    return vals


def _trial(r: Ring, stall_ms: float, node: int, phase_s: float) -> tuple[bool, bool, float]:
    """Stop `node`'s corosync for `stall_ms` after waiting `phase_s`; (new membership formed, a knet
    link went down, the stall as it happened in ms: the sleep overruns, by about 1 ms here)."""
    time.sleep(phase_s)
    pid = r.procs[node].pid
    watch = node % NODES + 1
    before = [len(r.log(i)) for i in range(1, NODES + 1)]
    stopped = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(stall_ms / 1000)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    # The survivors' token timer fires at most T after the resume; the new membership follows
    # within consensus. Wait for it, or for T + a margin when nothing happens.
    deadline = time.monotonic() + (r.token_ms + 650) / 1000 + 1.5
    changed = False
    while time.monotonic() < deadline and not changed:
        time.sleep(0.1)
        changed = "A new membership" in r.log(watch)[before[watch - 1]:]
    new = [r.log(i)[before[i - 1]:] for i in range(1, NODES + 1)]
    down = any("is down" in t for t in new)
    if changed or down:
        # libknet resets a link's pong timeout to 10 x knet_ping_timeout when it goes down and
        # lowers it one step a second (threads_heartbeat.c _adjust_pong_timeouts): wait it out so
        # the next trial sees the configured timeout again (9 steps; the link went down before
        # the resume at the latest).
        time.sleep(max(0.0, resumed + 9.5 - time.monotonic()))
    return changed, down, (resumed - stopped) * 1000


def _staircase(r: Ring, timers: corosync.TotemTimers, start_ms: float, seed: int) -> list[tuple[float, bool, bool]]:
    """One ring's trials (stall as it happened, new membership, knet link down) from a 1-up-1-down
    staircase: the next stall is one step shorter after a new membership and one step longer after
    none, so the trials gather around the 50 % point, where each one says most about it (Dixon &
    Mood 1948, JASA 43:109). Its start is a fixed fraction of T, not the model's figure.

    A single trial is noisy: the stall's phase against the knet pings decides (knet pings on its
    200 ms heartbeat tick, every third tick here, and each node's ticks keep their phase for the
    life of the process). So each trial waits a random (seeded) part of two ping periods first,
    and the stalled node rotates over the three nodes."""
    step = timers.token_ms / STEPS_PER_T
    stall = start_ms
    trials: list[tuple[float, bool, bool]] = []
    rng = random.Random(seed)
    for k in range(TRIALS_PER_RING):
        changed, down, actual_ms = _trial(r, stall, node=k % NODES + 1, phase_s=rng.uniform(0, 1.2))
        trials.append((actual_ms, changed, down))
        stall = max(step, stall - step if changed else stall + step)
    return trials


def test_stall_tolerance_matches_model(make_ring: Callable[..., Ring]) -> None:
    # RINGS independent rings, run side by side (a trial is mostly waiting) and pooled into one
    # estimate. One ring's 16-18 bisection trials gave 582-717 ms over six runs (one failed CI:
    # a standard deviation of about 45 ms against a 93 ms tolerance); a trial's outcome is close
    # to a coin toss over a wide range of stalls, so only more trials narrow the estimate.
    rings = [make_ring(f"s{k}") for k in range(RINGS)]
    for r in rings:
        r.wait_formed()
    ours = corosync.derive_timers(conf.settings_from_conf(conf.parse_conf(rings[0].conf_text(1))))
    for r in rings:
        timers = _runtime_timers(r)
        # The running corosync derives exactly what corosync.derive_timers says for the same file.
        assert timers["token"] == ours.token_ms
        assert timers["consensus"] == ours.consensus_ms
        assert timers["token_retransmit"] == ours.token_retransmit_ms
        assert timers["hold"] == ours.hold_ms
        assert timers["interface.0.knet_ping_timeout"] == ours.knet_ping_timeout_ms
        assert timers["interface.0.knet_ping_interval"] == ours.knet_ping_interval_ms

    model = ring.run_model(
        [node_from_latencies("test", [0.01] * 100)],
        ring.ModelParams(nodes=NODES, token_ms=TOKEN_MS, network_latency_ms=0.05, jitter_ms=0.0, coupling=0.0),
    )
    predicted = model.stall_tolerance_ms
    time.sleep(10)  # links came up with libknet's 10 x backoff; let it decay (see _trial)

    t0 = time.monotonic()
    # Half the staircases start at T/4, half at T/2: on either side of any plausible answer.
    starts = [ours.token_ms * (0.25 if k % 2 == 0 else 0.5) for k in range(RINGS)]
    with ThreadPoolExecutor(max_workers=RINGS) as pool:
        runs = list(pool.map(lambda k: _staircase(rings[k], ours, starts[k], seed=4 + k), range(RINGS)))
    elapsed = time.monotonic() - t0
    # The measured figure is the 50 % point of a logistic fit to every trial of every ring.
    pooled = [(t, c) for trials in runs for t, c, _ in trials]
    measured = _logistic_median(pooled)
    per_ring = [_logistic_median([(t, c) for t, c, _ in trials]) for trials in runs]
    lines = []
    for k, trials in enumerate(runs):
        lines.append(f"  ring {k}: {per_ring[k]:.0f} ms alone")
        lines += [f"    n{i % NODES + 1} stalled {t:6.0f} ms: {'new membership' if c else 'kept'}"
                  f"{' (knet link down)' if d else ''}" for i, (t, c, d) in enumerate(trials)]
    print(f"\nstall tolerance: measured {measured:.0f} ms ({RINGS} rings pooled), model {predicted:.0f} ms "
          f"({model.stall_tolerance_bound_by}); T = {ours.token_ms} ms; {len(pooled)} trials in {elapsed:.0f} s")
    print("\n".join(lines))
    # The stall that re-forms the ring is well under T: the knet link clock bites first.
    assert measured < 0.75 * ours.token_ms
    assert abs(measured - predicted) <= 0.15 * predicted, (measured, predicted, per_ring)


def _logistic_median(points: list[tuple[float, bool]]) -> float:
    """Maximum-likelihood 50 % point m of P(new membership | t) = 1 / (1 + exp(-(t - m) / s)),
    by grid search (m in 5 ms steps over the tried range, s from 10 to 200 ms)."""
    import math

    ts = [t for t, _ in points]
    best = (-math.inf, (min(ts) + max(ts)) / 2)
    m = min(ts)
    while m <= max(ts):
        for s in range(10, 201, 10):
            ll = 0.0
            for t, c in points:
                p = 1 / (1 + math.exp(-(t - m) / s))
                p = min(max(p, 1e-9), 1 - 1e-9)
                ll += math.log(p if c else 1 - p)
            if ll > best[0]:
                best = (ll, m)
        m += 5
    return best[1]


def _rotation_ms(r: Ring, window_s: float) -> float:
    c0, t0 = r.token_rx(WATCH), time.monotonic()
    time.sleep(window_s)
    c1, t1 = r.token_rx(WATCH), time.monotonic()
    assert c1 > c0, "no token received"
    return (t1 - t0) * 1000 / (c1 - c0)


def _netem_available() -> bool:
    probe = f"fsp{os.getpid()}q"
    subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True)
    try:
        res = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                              "delay", "1ms"], capture_output=True)
        return res.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def test_added_latency_moves_rotation_as_modelled(make_ring: Callable[..., Ring]) -> None:
    _need()
    netem = _netem_available()
    # A short hold keeps the idle rotation well under token_retransmit even with the added
    # latency: beyond it the sender retransmits the token every rotation and the receipt counter
    # counts copies (corosync.conf(5) hold; totemsrp.c token_retransmit timer).
    r = make_ring("l", "bridge" if netem else "hub", totem_extra=f"  hold: {HOLD_MS}\n")
    r.wait_formed()
    timers = corosync.derive_timers(conf.settings_from_conf(conf.parse_conf(r.conf_text(1))))
    time.sleep(3)  # the representative holds an idle token only after 30 quiet rotations
    results = []
    assert timers.hold_ms == HOLD_MS
    for delay_ms in (0.0, 50.0):
        if netem:
            for i in range(1, NODES + 1):
                verb = "replace" if delay_ms else "add"
                _run("ip", "netns", "exec", r.ns(i), "tc", "qdisc", verb, "dev", f"eth{i}", "root", "netem",
                     "delay", f"{delay_ms}ms")
        else:
            r.set_delay(delay_ms)
        time.sleep(2)
        measured = _rotation_ms(r, 6.0)
        params = ring.ModelParams(nodes=NODES, token_ms=TOKEN_MS, hold_ms=HOLD_MS, network_latency_ms=delay_ms + 0.1,
                                  jitter_ms=0.0)
        predicted = ring.rotation_ms(timers, params, [0.0] * NODES)
        results.append((delay_ms, measured, predicted))
    how = "tc netem on the veths" if netem else "a userspace delay hub (this kernel has no sch_netem)"
    print(f"\nrotation via {how}:\n" + "\n".join(
        f"  +{d:4.0f} ms/hop: measured {m:6.1f} ms, model {p:6.1f} ms" for d, m, p in results))
    for _, m, p in results:
        assert abs(m - p) <= 0.15 * p, results
    (_, m0, p0), (_, m1, p1) = results
    assert abs((m1 - m0) - (p1 - p0)) <= 0.25 * (p1 - p0), results
