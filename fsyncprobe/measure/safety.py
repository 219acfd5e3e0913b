"""What a run on a production node must never do, decided before anything is written (issue 14;
shared/DESIGN.md, "Safety on a production node").

- pmxcfs (`/etc/pve`) is refused: every file made there is a cluster-wide transaction that
  corosync orders and every node's pmxcfs applies (pve-cluster src/pmxcfs/database.c), so a
  benchmark there would load the whole cluster. Its database lives in /var/lib/pve-cluster, which
  is what to measure instead.
- Kernel interfaces shown as files (`PSEUDO_FSTYPES`) are refused by name: nothing to measure, and
  a directory made there can be an object of its own.
- Shared storage keeps running, but with a warning: the load lands on every user of it.

Refusals are usage errors (exit 2): the path the user gave is the wrong one, and saying which one
to give is the fix.
"""

from __future__ import annotations

import os

from fsyncprobe.device.fstypes import PMXCFS_MOUNTPOINT, PSEUDO_FSTYPES, SHARED_FSTYPES, is_pmxcfs
from fsyncprobe.device.types import DeviceClass, DeviceReport
from fsyncprobe.errors import UsageError

CLUSTER_STATE_DIR = "/var/lib/pve-cluster"
"""Where pmxcfs keeps config.db (pve-cluster src/pmxcfs/database.c): the disk to measure."""


def refuse_unsafe(path: str, real_path: str, mountpoint: str, fstype: str, source: str) -> None:
    """Raise UsageError when the filesystem holding `real_path` must not be written to."""
    under_pve = real_path == PMXCFS_MOUNTPOINT or real_path.startswith(PMXCFS_MOUNTPOINT + os.sep)
    if is_pmxcfs(mountpoint, fstype, source) or under_pve:
        raise UsageError(
            f"{path} is on pmxcfs ({fstype} from {source} at {mountpoint}): every file written there is a "
            f"cluster-wide transaction; measure {CLUSTER_STATE_DIR}, where pmxcfs keeps its database, instead"
        )
    if fstype in PSEUDO_FSTYPES:
        raise UsageError(
            f"{path} is on {fstype} at {mountpoint}, a kernel interface, not a disk: "
            "give a directory on the filesystem to measure"
        )


def shared_storage_warning(path: str, fstype: str, device: DeviceReport | None) -> str | None:
    """The warning for a run on storage other machines use too (NFS, CIFS, CephFS, GlusterFS, a
    network block device: RBD, iSCSI, DRBD, NBD, NVMe over fabrics), or None."""
    what: str | None = None
    if fstype in SHARED_FSTYPES:
        what = f"{fstype}, a shared filesystem"
    elif device is not None:
        shared = [leaf.name for leaf in device.leaves if leaf.device_class is DeviceClass.NETWORK_BLOCK]
        if shared:
            what = f"a network block device ({', '.join(shared)})"
    if what is None:
        return None
    return (f"{path} is on {what}: the benchmark's load lands on every user of that storage, "
            "other nodes and their guests included; run it when they can bear it")
