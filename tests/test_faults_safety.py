"""A run must never harm the node it measures (issue 14): refusals before anything is written,
the shared-storage warning, one measurement at a time.

Every case runs the real CLI. The filesystems are real: each pseudo filesystem, and a FUSE
filesystem (Debian's bindfs) at /etc/pve, are mounted inside a private mount namespace the test
makes (`unshare -m --propagation private`), so nothing of them is seen outside it and they go
with it; /etc itself gets a private overlay there, so /etc/pve can be made without writing into
the machine's /etc.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsyncprobe.device.fstypes import PSEUDO_FSTYPES
from fsyncprobe.errors import UsageError
from fsyncprobe.measure import safety
from fsyncprobe.measure.nodelock import ENV_LOCK_FILE, LOCK_NAME, lock_path
from tests import faultkit
from tests.cli_helpers import fsyncprobe
from tests.conftest import requires_root

REPO = Path(__file__).resolve().parent.parent
QUICK = ("--warmup", "0", "--no-sched-probe", "--no-progress")

MOUNTABLE_PSEUDO = (
    "proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "bpf", "pstore",
    "devpts", "mqueue", "hugetlbfs", "fusectl", "binfmt_misc",
)
"""The kernel interfaces the tests mount for real (this kernel, and CI's, has them built in)."""
UNMOUNTABLE_PSEUDO = ("configfs", "efivarfs", "nsfs", "selinuxfs", "rpc_pipefs")
"""Types this kernel cannot mount here (no configfs module, no EFI variables, nsfs is internal,
no SELinux, no NFS): their refusal is checked on the decision itself (`safety.refuse_unsafe`)."""


def in_namespace(tmp_path: Path, setup: str, teardown: str, *args: str, timeout: float = 60
                 ) -> subprocess.CompletedProcess[str]:
    """Run `fsyncprobe ARGS` after the shell lines `setup` in a private mount namespace; the
    lines `teardown` run on every exit (a FUSE daemon would keep the namespace alive)."""
    cmd = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "fsyncprobe", *args))
    script = f"set -e\ntrap {shlex.quote(teardown)} EXIT\n{setup}\nset +e\n{cmd}\n"
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


# --- kernel interfaces ------------------------------------------------------------------------


def test_the_two_lists_cover_every_pseudo_filesystem() -> None:
    assert set(MOUNTABLE_PSEUDO) | set(UNMOUNTABLE_PSEUDO) == PSEUDO_FSTYPES


@requires_root
@pytest.mark.parametrize("fstype", MOUNTABLE_PSEUDO)
def test_each_pseudo_filesystem_is_refused_before_writing(tmp_path: Path, fstype: str) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    listing = tmp_path / "listing"
    # A cgroup v1 mount needs a hierarchy: a named one of its own, gone when the mount goes.
    options = "-o none,name=fsyncprobe-test" if fstype == "cgroup" else ""
    setup = (f"mount -t {fstype} {options} {fstype} {mnt}\n"
             f"grep -q ' {mnt} .* - {fstype} ' /proc/self/mountinfo\n"
             f"ls -1a {mnt} > {listing}.before")
    for command in ("bench", "verdict"):
        extra = ("--no-corosync-conf",) if command == "verdict" else ()
        proc = in_namespace(tmp_path, setup, f"ls -1a {mnt} > {listing}.after; umount {mnt}",
                            command, str(mnt), "--json", "-d", "1s", *QUICK, *extra)
        faultkit.one_line_error(proc, 2, str(mnt), f"is on {fstype} at {mnt}", "a kernel interface, not a disk")
        assert proc.stdout == ""
        before = set(Path(f"{listing}.before").read_text().split("\n"))
        after = set(Path(f"{listing}.after").read_text().split("\n"))
        new = {n for n in after - before if not (fstype == "proc" and n.isdigit())}  # /proc's pids come and go
        assert new == set(), new
    assert os.listdir(mnt) == []  # the mount went with the namespace


@pytest.mark.parametrize("fstype", UNMOUNTABLE_PSEUDO)
def test_pseudo_filesystems_this_kernel_cannot_mount_are_refused_too(fstype: str) -> None:
    with pytest.raises(UsageError, match=f"is on {fstype} at /x, a kernel interface"):
        safety.refuse_unsafe("/x/y", "/x/y", "/x", fstype, fstype)


# --- pmxcfs -----------------------------------------------------------------------------------


def _pve_setup(tmp_path: Path, fuse_options: str = "") -> tuple[str, str, Path]:
    """Shell lines that give the namespace a private /etc (an overlay whose upper layer is in
    tmp_path) and a bindfs FUSE filesystem at /etc/pve backed by tmp_path/pve-data."""
    data = tmp_path / "pve-data"
    (data / "nodes" / "pve1").mkdir(parents=True)
    (data / "corosync.conf").write_text("totem { version: 2 }\n")
    upper, work = tmp_path / "etc-upper", tmp_path / "etc-work"
    upper.mkdir()
    work.mkdir()
    setup = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc\n"
             "mkdir -p /etc/pve\n"
             f"bindfs {fuse_options} {data} /etc/pve\n"
             "grep -q ' /etc/pve .* - fuse' /proc/self/mountinfo")
    return setup, "umount /etc/pve 2>/dev/null; true", data


@requires_root
@pytest.mark.parametrize("command", ["bench", "verdict"])
@pytest.mark.parametrize("where", ["/etc/pve", "/etc/pve/nodes/pve1"])
def test_pmxcfs_at_etc_pve_is_refused_and_nothing_is_written(tmp_path: Path, command: str, where: str) -> None:
    setup, teardown, data = _pve_setup(tmp_path)
    before = faultkit.tree_digest(data)
    extra = ("--no-corosync-conf",) if command == "verdict" else ()
    proc = in_namespace(tmp_path, setup, teardown, command, where, "--json", "-d", "1s", *QUICK, *extra)
    line = faultkit.one_line_error(proc, 2, f"{where} is on pmxcfs (fuse from {data} at /etc/pve)",
                                   "cluster-wide transaction", "measure /var/lib/pve-cluster")
    assert line.count("/var/lib/pve-cluster") == 1
    assert proc.stdout == ""
    assert faultkit.tree_digest(data) == before


@requires_root
def test_a_fuse_mount_of_subtype_pmxcfs_is_refused_wherever_it_is(tmp_path: Path) -> None:
    data, mnt = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    mnt.mkdir()
    faultkit.plant(data)
    before = faultkit.tree_digest(data)
    proc = in_namespace(tmp_path, f"bindfs -o subtype=pmxcfs {data} {mnt}", f"umount {mnt} 2>/dev/null; true",
                        "bench", str(mnt), "-d", "1s", *QUICK)
    faultkit.one_line_error(proc, 2, f"{mnt} is on pmxcfs (fuse.pmxcfs", "measure /var/lib/pve-cluster")
    assert faultkit.tree_digest(data) == before


def test_pmxcfs_is_recognised_by_mount_point_source_or_subtype() -> None:
    for mountpoint, fstype, source in (("/etc/pve", "fuse", "/dev/fuse"), ("/srv/x", "fuse", "pmxcfs"),
                                       ("/srv/x", "fuse.pmxcfs", "/dev/fuse"), ("/", "ext4", "/dev/sda1")):
        with pytest.raises(UsageError, match="measure /var/lib/pve-cluster"):
            # "/" holding /etc/pve: pmxcfs not running, its mount point still belongs to it
            safety.refuse_unsafe("/etc/pve", "/etc/pve", mountpoint, fstype, source)
    safety.refuse_unsafe("/srv/x", "/srv/x", "/srv/x", "fuse", "/dev/fuse")  # another FUSE mount: measured
    safety.refuse_unsafe("/etc/pvefoo", "/etc/pvefoo", "/", "ext4", "/dev/sda1")


# --- shared storage ---------------------------------------------------------------------------


@requires_root
def test_shared_filesystem_runs_with_a_warning(tmp_path: Path) -> None:
    # A FUSE filesystem whose type says glusterfs (fuse.glusterfs, as the GlusterFS client mounts
    # it): the type is all the tool decides by, so bindfs with that subtype is a faithful stand-in.
    data, mnt = tmp_path / "data", tmp_path / "gluster"
    data.mkdir()
    mnt.mkdir()
    proc = in_namespace(tmp_path, f"bindfs -o subtype=glusterfs {data} {mnt}", f"umount {mnt} 2>/dev/null; true",
                        "bench", str(mnt), "--json", "--ops", "20", *QUICK)
    assert proc.returncode == 0, proc.stderr
    warnings = [w for w in proc.stderr.splitlines() if "lands on every user of that storage" in w]
    assert len(warnings) == 1 and warnings[0].startswith(f"fsyncprobe: warning: {mnt} is on fuse.glusterfs"), \
        proc.stderr
    report = json.loads(proc.stdout)
    assert report["benches"][0]["ops"] == 20
    assert any("every user of that storage" in w for w in report["warnings"])
    assert os.listdir(data) == []


def test_network_block_devices_warn_from_the_device_class() -> None:
    from fsyncprobe.device.types import Confidence, DeviceClass, DeviceReport, LeafDevice, MountInfo

    def report(cls: DeviceClass, name: str) -> DeviceReport:
        leaf = LeafDevice(name=name, device_class=cls, confidence=Confidence.HIGH, evidence=())
        return DeviceReport(path="/x", mount=MountInfo("/x", "ext4", f"/dev/{name}"), device_class=cls,
                            confidence=Confidence.HIGH, leaves=(leaf,))

    for name in ("rbd0", "drbd1", "sdb"):  # sdb: an iSCSI session's disk, classified by its session
        w = safety.shared_storage_warning("/x", "ext4", report(DeviceClass.NETWORK_BLOCK, name))
        assert w is not None and f"a network block device ({name})" in w and "every user" in w
    for fstype in ("nfs4", "cifs", "ceph", "fuse.cephfs", "glusterfs"):
        assert safety.shared_storage_warning("/x", fstype, None) is not None
    assert safety.shared_storage_warning("/x", "ext4", report(DeviceClass.NVME, "nvme0n1")) is None
    assert safety.shared_storage_warning("/x", "virtiofs", None) is None  # one host's directory


# --- one measurement at a time ----------------------------------------------------------------


@requires_root
@pytest.mark.parametrize("second", ["bench", "verdict"])
def test_a_second_run_says_who_measures_and_exits_3(ramfs: Path, tmp_path: Path, second: str) -> None:
    lock = tmp_path / "node.lock"
    env = {**os.environ, ENV_LOCK_FILE: str(lock)}
    first = subprocess.Popen([sys.executable, "-m", "fsyncprobe", "bench", str(ramfs), "-d", "20s", "--json", *QUICK],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not [p for p in ramfs.iterdir() if p.name.startswith("fsyncprobe-")]:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        extra = ("--no-corosync-conf",) if second == "verdict" else ()
        proc = fsyncprobe(second, str(ramfs), "-d", "1s", "--json", *QUICK, *extra, env={ENV_LOCK_FILE: str(lock)})
        faultkit.one_line_error(proc, 3, "another measurement is running on this node",
                                f"pid {first.pid}: ", "fsyncprobe bench", f"lock {lock}", "--allow-concurrent")
        assert proc.stdout == ""
        both = fsyncprobe("bench", str(ramfs), "--ops", "50", "--json", "--allow-concurrent", *QUICK,
                          env={ENV_LOCK_FILE: str(lock)})
        assert both.returncode == 0, both.stderr
        assert json.loads(both.stdout)["benches"][0]["ops"] == 50
    finally:
        first.terminate()
        out, err = first.communicate(timeout=30)
    assert first.returncode == 143, err  # it was measuring all along, undisturbed by the refused run
    assert json.loads(out)["benches"][0]["partial"] is True
    after = fsyncprobe("bench", str(ramfs), "--ops", "20", "--json", *QUICK, env={ENV_LOCK_FILE: str(lock)})
    assert after.returncode == 0, after.stderr  # the lock went with the process that held it
    assert [p.name for p in ramfs.iterdir()] == []


def test_the_lock_is_under_run_where_it_may_be() -> None:
    env = os.environ.pop(ENV_LOCK_FILE, None)
    try:
        expected = f"/run/{LOCK_NAME}" if os.access("/run", os.W_OK) else None
        if expected is not None:
            assert lock_path() == expected
        else:
            assert lock_path().endswith(LOCK_NAME)
    finally:
        if env is not None:
            os.environ[ENV_LOCK_FILE] = env


def test_a_symlink_at_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("someone's file\n")
    link = tmp_path / "node.lock"
    link.symlink_to(victim)
    work = tmp_path / "work"
    work.mkdir()
    proc = fsyncprobe("bench", str(work), "--ops", "3", "--json", *QUICK, env={ENV_LOCK_FILE: str(link)})
    faultkit.one_line_error(proc, 3, f"cannot open the lock file {link}", "--allow-concurrent")
    assert victim.read_text() == "someone's file\n" and os.listdir(work) == []
