"""What the watch tests and bench/watch_overhead.py run: a stand-in `pmxcfs` (a Python process
under that command name committing pmxcfs-shaped SQLite transactions, timing each of its own
sync calls through an LD_PRELOAD shim), a SCHED_FIFO CPU hog of known burst length, and a
`fsyncprobe watch` subprocess that says when its probes are attached.

Every process made here is ended by its pid (`Proc.stop`); the files are under the caller's
temp directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SHIM_C = r"""
/* Times every fsync/fdatasync of the process it is preloaded into (CLOCK_MONOTONIC around the
   real call, found with dlsym(RTLD_NEXT)); synctimes_dump writes the samples, one per line. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>
#define MAXS (1 << 20)
static long long samples[MAXS];
static long n;
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
static int timed(int (*f)(int), int fd) {
    long long a = now();
    int r = f(fd);
    long long b = now();
    if (n < MAXS) samples[n++] = b - a;
    return r;
}
int fsync(int fd) {
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return timed(real_fsync, fd);
}
int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return timed(real_fdatasync, fd);
}
void synctimes_reset(void) { n = 0; }
long synctimes_dump(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (long i = 0; i < n; i++) fprintf(f, "%lld\n", samples[i]);
    fclose(f);
    return n;
}
"""

STANDIN = textwrap.dedent('''
    # A stand-in pmxcfs: one SQLite database in WAL mode; each change is one transaction that
    # replaces a file row and bumps the version row, as pve-cluster src/pmxcfs/database.c
    # (bdb_backend_write) does. argv: db, transactions, block bytes, synchronous mode, times file.
    import ctypes, os, sqlite3, sys, time
    db, n, block, sync_mode, times = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    libc = ctypes.CDLL(None)
    shim = hasattr(libc, "synctimes_reset")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={sync_mode}")
    con.execute("CREATE TABLE IF NOT EXISTS tree (inode INTEGER PRIMARY KEY, version INTEGER, data BLOB)")
    con.execute("INSERT OR REPLACE INTO tree VALUES (0, 0, x'')")
    print("ready", flush=True)
    while True:
        line = sys.stdin.readline()
        if not line.startswith("go"):
            break
        if shim:
            libc.synctimes_reset()
        t0 = time.monotonic()
        for i in range(n):
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO tree VALUES (?, ?, ?)", (1 + i % 64, i, os.urandom(block)))
            con.execute("UPDATE tree SET version = ? WHERE inode = 0", (i,))
            con.execute("COMMIT")
        elapsed = time.monotonic() - t0
        count = libc.synctimes_dump(times.encode()) if shim else -1
        print(f"done {n} {elapsed:.6f} {count}", flush=True)
''')

HOG = textwrap.dedent('''
    # A SCHED_FIFO CPU hog: spins for `burst` seconds, sleeps for the rest of `period`, on one CPU.
    import os, sys, time
    burst, period, cpu = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
    print("ready", flush=True)
    while True:
        end = time.monotonic() + burst
        while time.monotonic() < end:
            pass
        time.sleep(period - burst)
''')


def python_named(directory: Path, name: str) -> Path:
    """A link to this Python called `name`: a process started through it has command name `name`
    (the kernel takes comm from the executed file's name, fs/exec.c `__set_task_comm`)."""
    link = directory / name
    if not link.exists():
        link.symlink_to(os.path.realpath(sys.executable))
    return link


def build_shim(directory: Path) -> Path:
    """Compile the sync-timing shim (gcc is in tools/test.sh's APT_PACKAGES)."""
    src = directory / "synctimes.c"
    src.write_text(SHIM_C)
    out = directory / "synctimes.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(src), "-ldl"], check=True,
                   capture_output=True)
    return out


class Proc:
    """A child process with line-based stdin/stdout; `stop` ends it by pid."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.pid = self.p.pid

    def line(self) -> str:
        assert self.p.stdout is not None
        return self.p.stdout.readline().strip()

    def send(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def start_standin(tmp: Path, db: Path, transactions: int, block: int = 4096, sync_mode: str = "FULL",
                  shim: Path | None = None) -> tuple[Proc, Path]:
    """A ready stand-in pmxcfs (send "go" for each batch of transactions) and its times file."""
    exe = python_named(tmp, "pmxcfs")
    times = tmp / "synctimes.txt"
    env = dict(os.environ)
    if shim is not None:
        env["LD_PRELOAD"] = str(shim)
    p = Proc([str(exe), "-c", STANDIN, str(db), str(transactions), str(block), sync_mode, str(times)], env)
    assert p.line() == "ready"
    return p, times


def start_hog(tmp: Path, burst_s: float, period_s: float, cpu: int) -> Proc:
    """A running SCHED_FIFO hog of `burst_s` every `period_s` on `cpu`."""
    p = Proc([str(python_named(tmp, "fsp-hog")), "-c", HOG, str(burst_s), str(period_s), str(cpu)])
    assert p.line() == "ready"
    return p


class Watch:
    """`python -m fsyncprobe watch ARGS` in a subprocess; `wait_attached` blocks until bpftrace's
    probes are in place (the "attached" line on stderr)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "fsyncprobe", "watch", *args], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.pid = self.p.pid
        self.err: list[str] = []
        self.attached = threading.Event()
        self.out: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._o = threading.Thread(target=lambda: self.out.append(self.p.stdout.read() if self.p.stdout else ""),
                                   daemon=True)
        self._o.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.err.append(line)
            if "attached" in line:
                self.attached.set()
        self.attached.set()

    def wait_attached(self, timeout_s: float = 60) -> None:
        assert self.attached.wait(timeout_s), "watch did not attach:\n" + "".join(self.err)
        assert self.p.poll() is None, "watch ended before attaching:\n" + "".join(self.err)

    def finish(self, sig: int | None = signal.SIGINT, timeout_s: float = 60) -> tuple[int, str, str]:
        """Send `sig` (None: let it end by itself), wait; (exit code, stdout, stderr)."""
        if sig is not None and self.p.poll() is None:
            os.kill(self.pid, sig)
        try:
            self.p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self._t.join(timeout=5)
        self._o.join(timeout=5)
        return self.p.returncode, "".join(self.out), "".join(self.err)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def wait_until(cond: object, timeout_s: float) -> bool:
    """Poll `cond()` every 50 ms until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
