"""Filesystem types by what lies under them: RAM, a network (or a host share), or nothing at all.

The one definition the engine (what a run's figures mean, what it refuses), the stack resolver
(where resolution stops) and the rules (the no-disk finding) share. Names are as the kernel
registers them and /proc/self/mountinfo shows them (`register_filesystem` in each fs/*/ driver;
FUSE filesystems show as `fuse.<subtype>`, fs/fuse/inode.c).
"""

from __future__ import annotations

RAM_FSTYPES = frozenset({"tmpfs", "ramfs", "devtmpfs", "hugetlbfs"})
"""No disk under them: files live in the page cache and fsync returns at once (mm/shmem.c
`noop_fsync`; ramfs and hugetlbfs use `noop_fsync` too)."""

NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.ceph",
    "fuse.cephfs", "9p", "virtiofs", "afs", "fuse.sshfs", "lustre", "ocfs2", "gfs2",
})
"""A server (or the hypervisor, for 9p and virtiofs) makes every sync durable, over a network or a
transport: the latency includes its round trip, and no local block device holds the files."""

PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore", "bpf",
    "configfs", "devpts", "mqueue", "fusectl", "binfmt_misc", "efivarfs", "nsfs", "selinuxfs",
    "rpc_pipefs",
})
"""Kernel interfaces shown as files (shared/DESIGN.md, "Safety on a production node"): nothing to
measure, and a directory made there can be an object of its own (mkdir in a cgroup filesystem
creates a cgroup, cgroups(7)), so the engine refuses them before writing."""


def is_not_local_disk(fstype: str) -> bool:
    """Whether syncs on `fstype` go through a network, a host share or a FUSE daemon rather than
    to a local block device."""
    return fstype in NETWORK_FSTYPES or fstype.startswith("fuse")
