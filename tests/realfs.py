"""Real filesystems for tests: loop-mounted ext4, blkio-throttled ("USB stick") disks, tmpfs.

Everything made here is removed by name on every exit path (context managers), so a failing
test leaves no mount, loop device or throttle rule behind. Needs root; callers skip otherwise.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BLKIO_WRITE_IOPS = "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device"
BLKIO_WRITE_BPS = "/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device"


def is_root() -> bool:
    """True when the tests may make loop devices and mounts."""
    return os.geteuid() == 0


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; raise with its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class LoopFs:
    """A filesystem on a loop device that a test made."""

    mountpoint: Path
    """Where it is mounted."""
    device: str
    """`/dev/loopN`."""
    image: Path
    """The backing file."""

    @property
    def major_minor(self) -> str:
        """`7:3`, as the blkio controller wants it."""
        st = os.stat(self.device)
        return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"

    @property
    def kernel_name(self) -> str:
        """`loop3`."""
        return os.path.basename(self.device)


@contextlib.contextmanager
def loop_device(image: Path, partscan: bool = False) -> Iterator[str]:
    """Attach `image` to a free loop device (losetup picks it atomically) and detach it after."""
    args = ["losetup", "--find", "--show"] + (["--partscan"] if partscan else []) + [str(image)]
    dev = run(*args).stdout.strip()
    try:
        yield dev
    finally:
        run("losetup", "--detach", dev, check=False)


@contextlib.contextmanager
def mounted(source: str, mountpoint: Path, fstype: str | None = None, options: str | None = None) -> Iterator[Path]:
    """Mount and always unmount (lazily if busy, so a stuck test still cleans up)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    args = ["mount"] + (["-t", fstype] if fstype else []) + (["-o", options] if options else [])
    args += [source, str(mountpoint)]
    run(*args)
    try:
        yield mountpoint
    finally:
        if run("umount", str(mountpoint), check=False).returncode != 0:
            run("umount", "-l", str(mountpoint), check=False)


@contextlib.contextmanager
def loop_ext4(base: Path, size_mb: int = 64, name: str = "ext4") -> Iterator[LoopFs]:
    """An ext4 filesystem of `size_mb` on a loop device, mounted under `base`."""
    image = base / f"{name}.img"
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    try:
        with loop_device(image) as dev:
            # -E nodiscard: nothing to discard on a fresh sparse file; lazy init off so the
            # kernel's background inode-table zeroing does not write during measurements.
            run("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev)
            with mounted(dev, base / f"{name}-mnt") as mnt:
                yield LoopFs(mountpoint=mnt, device=dev, image=image)
    finally:
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def _blkio_rule(rule_file: str, fs: LoopFs, value: int) -> Iterator[None]:
    """One cgroup-v1 blkio throttle rule (root cgroup: every process) on the loop device, lifted
    afterwards (writing 0 removes it, blkio-controller.rst)."""
    with open(rule_file, "w") as f:
        f.write(f"{fs.major_minor} {value}\n")
    try:
        yield
    finally:
        with open(rule_file, "w") as f:
            f.write(f"{fs.major_minor} 0\n")


def write_iops_limit(fs: LoopFs, iops: int) -> contextlib.AbstractContextManager[None]:
    """Throttle writes to the loop device to `iops`, and lift the rule afterwards."""
    return _blkio_rule(BLKIO_WRITE_IOPS, fs, iops)


def write_bps_limit(fs: LoopFs, bytes_per_s: int) -> contextlib.AbstractContextManager[None]:
    """Throttle the loop device's write bandwidth to `bytes_per_s`, and lift the rule afterwards."""
    return _blkio_rule(BLKIO_WRITE_BPS, fs, bytes_per_s)


def settle(mountpoint: Path) -> None:
    """Start the next run on a filesystem that owes nothing: syncfs(2) it (coreutils `sync -f`), so
    the previous run's leftovers (its deleted files' metadata) are committed now and not by the
    next run's first sync; then one 4 KiB O_DIRECT write and fdatasync of a scratch file there.

    The write is for a throttled loop device (`write_iops_limit`). The cgroup-v1 throttle let the
    journal's writes through at once but counted them, and held back the next plain data write
    until the count was paid at the limit's pace: on Linux 6.18, 317 of pveperf's operations put
    2,300 journal bios through within a second on a 50-IOPS device, and the next data write then
    waited 46 s (2,300 / 50; block tracepoints showed no request issued meanwhile), and the
    syncfs of a run's 300 deleted files left 3.5 s owing. A run that starts owing the previous
    run's count inherits its wait; this write pays it before the run. On an unthrottled device it
    takes a millisecond.
    """
    subprocess.run(["sync", "-f", str(mountpoint)], check=True)
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
    fd = os.open(mountpoint / ".settle", os.O_WRONLY | os.O_CREAT | os.O_DIRECT | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, buf, 0)
        os.fdatasync(fd)
    finally:
        os.close(fd)
        buf.close()


@contextlib.contextmanager
def dirty_limit(fs: LoopFs, max_bytes: int) -> Iterator[None]:
    """Scale the kernel's dirty-page limit down to a test disk: the loop device's writeback domain
    may hold at most `max_bytes` of dirty pages, enforced on its own (`strict_limit`, as FUSE's
    strictlimit; Documentation/ABI/testing/sysfs-class-bdi). A node's limit is 20 % of its memory
    (vm.dirty_ratio), GiBs a small test disk never reaches; here a writer past `max_bytes` meets
    writeback and balance_dirty_pages (mm/page-writeback.c) as a backup meets them on a node.
    The device's own settings are restored afterwards (the loop device outlives the test)."""
    bdi = Path("/sys/class/bdi") / fs.major_minor
    strict, ratio = (bdi / "strict_limit").read_text().strip(), (bdi / "max_ratio_fine").read_text().strip()
    try:
        (bdi / "max_bytes").write_text(f"{max_bytes}\n")
        (bdi / "strict_limit").write_text("1\n")
        yield
    finally:
        (bdi / "strict_limit").write_text(f"{strict}\n")
        (bdi / "max_ratio_fine").write_text(f"{ratio}\n")


@contextlib.contextmanager
def tmpfs(base: Path, size: str = "64m", name: str = "tmpfs") -> Iterator[Path]:
    """A private tmpfs mounted under `base`."""
    with mounted("tmpfs", base / name, fstype="tmpfs", options=f"size={size}") as mnt:
        yield mnt


def leftovers(directory: Path) -> list[str]:
    """Entries the tool may have left in `directory` (its temp dirs start with `fsyncprobe-`)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(("fsyncprobe-", ".fsyncprobe")))
