"""Filesystem types by what lies under them: RAM, a network (or a host share), or nothing at all.

The one definition the engine (what a run's figures mean, what it refuses), the stack resolver
(where resolution stops) and the rules (the no-disk finding) share. Names are as the kernel
registers them and /proc/self/mountinfo shows them (`register_filesystem` in each fs/*/ driver;
FUSE filesystems show as `fuse.<subtype>`, fs/fuse/inode.c).
"""

from __future__ import annotations

RAM_FSTYPES = frozenset({"tmpfs", "ramfs"})
"""No disk under them: files live in the page cache and fsync returns at once (mm/shmem.c
`noop_fsync`; ramfs uses `noop_fsync` too). Measurable (the figure says so): a tmpfs is how the
tests and a user see the tool's own ceiling."""

NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.ceph",
    "fuse.cephfs", "9p", "virtiofs", "afs", "fuse.sshfs", "lustre", "ocfs2", "gfs2",
})
"""A server (or the hypervisor, for 9p and virtiofs) makes every sync durable, over a network or a
transport: the latency includes its round trip, and no local block device holds the files."""

PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore", "bpf",
    "configfs", "devpts", "mqueue", "hugetlbfs", "fusectl", "binfmt_misc", "efivarfs", "nsfs", "selinuxfs",
    "rpc_pipefs",
})
"""Kernel interfaces shown as files (shared/DESIGN.md, "Safety on a production node"; issue 14):
nothing to measure, and a directory made there can be an object of its own (mkdir in a cgroup
filesystem creates a cgroup, cgroups(7)), so the engine refuses them before writing. devtmpfs is
a tmpfs underneath (drivers/base/devtmpfs.c) but it is the node's `/dev`: files made there sit
among the device nodes every program opens. hugetlbfs holds huge-page mappings, not files one
writes: write(2) on it fails with EINVAL (fs/hugetlbfs/inode.c has no `write_iter`)."""


SHARED_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.ceph", "fuse.cephfs",
    "afs", "lustre", "ocfs2", "gfs2",
})
"""Filesystems other machines use at the same time (a file server, a Ceph or Gluster cluster, a
cluster filesystem on a shared disk): a benchmark's load lands on every user of the storage, so a
run on them warns (issue 14). 9p, virtiofs and sshfs reach one host's directory and are not here."""

PMXCFS_MOUNTPOINT = "/etc/pve"
"""Where pmxcfs mounts its FUSE filesystem (pve-cluster src/pmxcfs/pmxcfs.c, `CFSDIR`); every
change there is a cluster-wide transaction ordered through corosync."""


def is_pmxcfs(mountpoint: str, fstype: str, source: str) -> bool:
    """Whether a mount is pmxcfs: any FUSE mount at /etc/pve (pmxcfs shows as `fuse` from
    `/dev/fuse` there), or one whose source or subtype names pmxcfs, wherever it is mounted."""
    if not (fstype == "fuse" or fstype.startswith("fuse.")):
        return False
    return mountpoint == PMXCFS_MOUNTPOINT or source == "pmxcfs" or fstype == "fuse.pmxcfs"


def is_not_local_disk(fstype: str) -> bool:
    """Whether syncs on `fstype` go through a network, a host share or a FUSE daemon rather than
    to a local block device."""
    return fstype in NETWORK_FSTYPES or fstype.startswith("fuse")
