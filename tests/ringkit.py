"""A real Corosync ring for tests: `corosync` processes (Debian's 3.1.x, knet) in network
namespaces, each in its own mount namespace with a private /run and its own
`system { state_dir }`, joined by a bridge or, where the kernel has no sch_netem and a test needs
added latency, by a userspace hub (TAP devices and a Python process that forwards frames after a
delay).

Everything a ring creates (namespaces named fsp<pid><tag>..., the corosync and hub processes) is
removed by name and pid on every path (`Ring.close`, and the `make_ring` fixture of
tests/conftest.py). Root only; CI runs as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TOKEN_MS = 1000
NODES = 3
"""Nodes in a ring unless a test asks for more."""
SUBNET = "10.213.{}.{}"
HOLD_MS = 30


def need() -> None:
    """Skip without root or without corosync, ip and unshare (CI has all of them)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, mount namespaces, SIGSTOP of corosync)")
    for tool in ("corosync", "corosync-cmapctl", "ip", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install corosync iproute2 util-linux)")


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
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
    """A corosync ring of `nodes` nodes in namespaces; `close()` removes everything it made."""

    def __init__(self, base: Path, tag: str, link: str = "bridge", token_ms: int = TOKEN_MS,
                 totem_extra: str = "", subnet: int = 213, nodes: int = NODES,
                 state_dirs: dict[int, Path] | None = None) -> None:
        self.base = base
        # Nodes whose `system { state_dir }` is not base/state<i> (one on a throttled disk, say).
        self.state_dirs = dict(state_dirs or {})
        self.nodes = nodes
        self.totem_extra = totem_extra
        self.prefix = f"fsp{os.getpid()}{tag}"
        self.link = link
        self.token_ms = token_ms
        self.netns: list[str] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.hub: subprocess.Popen[str] | None = None
        self.subnet = subnet

    def state_dir(self, i: int) -> Path:
        return self.state_dirs.get(i, self.base / f"state{i}")

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
        run("ip", "netns", "add", name)
        self.netns.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def start(self) -> None:
        for i in range(1, self.nodes + 1):
            self._netns_add(self.ns(i))
        if self.link == "bridge":
            br = f"{self.prefix}-br"
            self._netns_add(br)
            run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", br, "link", "set", "br0", "up")
            for i in range(1, self.nodes + 1):
                run("ip", "link", "add", f"eth{i}", "netns", self.ns(i), "type", "veth",
                     "peer", "name", f"p{i}", "netns", br)
                run("ip", "-n", br, "link", "set", f"p{i}", "master", "br0")
                run("ip", "-n", br, "link", "set", f"p{i}", "up")
                self._ifup(i, f"eth{i}")
        else:
            taps = [f"{self.prefix}t{i}"[-15:] for i in range(1, self.nodes + 1)]
            self.hub = subprocess.Popen([sys.executable, "-c", HUB, *taps], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
            assert self.hub.stdout is not None
            assert self.hub.stdout.readline().strip() == "ready"
            for i, tap in enumerate(taps, 1):
                run("ip", "link", "set", tap, "netns", self.ns(i))
                self._ifup(i, tap)
        for i in range(1, self.nodes + 1):
            self._start_node(i)

    def _ifup(self, i: int, dev: str) -> None:
        run("ip", "-n", self.ns(i), "addr", "add", f"{self.addr(i)}/24", "dev", dev)
        run("ip", "-n", self.ns(i), "link", "set", dev, "up")

    def conf_text(self, i: int) -> str:
        nodes = "\n".join(
            f"  node {{\n    nodeid: {j}\n    name: n{j}\n    ring0_addr: {self.addr(j)}\n  }}"
            for j in range(1, self.nodes + 1))
        return (
            "# fsyncprobe test ring\n"
            f"totem {{\n  version: 2\n  cluster_name: {self.prefix}\n  transport: knet\n"
            f"  token: {self.token_ms}\n{self.totem_extra}  crypto_cipher: none\n  crypto_hash: none\n"
            "  interface {\n    linknumber: 0\n  }\n}\n"
            f"nodelist {{\n{nodes}\n}}\n"
            "quorum {\n  provider: corosync_votequorum\n}\n"
            f"logging {{\n  to_stderr: no\n  to_syslog: no\n  to_logfile: yes\n  logfile: {self.base}/n{i}.log\n"
            "  timestamp: hires\n  debug: off\n}\n"
            f"system {{\n  state_dir: {self.state_dir(i)}\n}}\n"
        )

    def conf_path(self, i: int) -> Path:
        return self.base / f"n{i}.conf"

    def _start_node(self, i: int) -> None:
        self.state_dir(i).mkdir(exist_ok=True)
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
            if all(f"Members[{self.nodes}]:" in self.log(i) for i in range(1, self.nodes + 1)):
                return
            for i, p in self.procs.items():
                if p.poll() is not None:
                    raise AssertionError(f"corosync n{i} exited with {p.returncode}:\n{self.log(i)[-2000:]}")
            time.sleep(0.2)
        raise AssertionError("ring did not form:\n" + self.log(1)[-3000:])

    def cmap(self, i: int, *args: str) -> str:
        return run("ip", "netns", "exec", self.ns(i), "corosync-cmapctl", *args).stdout

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
        # libqb leaves each corosync's flight recorder in the host's /dev/shm
        # (qb-corosync-<pid>-blackbox-header/-data, libqb lib/log_blackbox.c); /dev/shm cannot be
        # private to the node, as corosync-cmapctl (run from outside) maps corosync's IPC there.
        for p in self.procs.values():
            for leftover in Path("/dev/shm").glob(f"qb-*-{p.pid}-*"):
                leftover.unlink(missing_ok=True)


def make_ring_fixture(tmp_path: Path) -> Iterator[Callable[..., Ring]]:
    """Body of the `make_ring` fixture: `make_ring(tag, link, totem_extra, nodes, state_dirs)` starts a ring;
    every ring is closed, and no namespace of this process is left, at the end of the test."""
    need()
    rings: list[Ring] = []

    def factory(tag: str, link: str = "bridge", totem_extra: str = "", nodes: int = NODES,
                state_dirs: dict[int, Path] | None = None) -> Ring:
        base = tmp_path / tag
        base.mkdir()
        r = Ring(base, tag, link, totem_extra=totem_extra, subnet=213 + len(rings), nodes=nodes,
                 state_dirs=state_dirs)
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


