"""Classify recorded device facts: a pure function from a Snapshot to a DeviceReport.

Signals are tried strongest first (shared/DESIGN.md, "Device classes"): the mount's fstype,
then the stack, then a `usb` ancestor (a USB-SATA bridge is still USB even when udev says
`ID_BUS=ata`, and an SD card in a USB reader is USB), an `mmc` ancestor, NVMe (by its
controller's `transport`: pcie is local, tcp/rdma/fc are network block devices), hypervisor
buses and virtual SCSI models, network block drivers, then the medium: udev's
`ID_ATA_ROTATION_RATE_RPM` (from ATA IDENTIFY word 217: 1 = non-rotating) and `queue/rotational`.
`rotational=1` on its own is weak: virtio-blk and many USB bridges report 1 for any disk
(drivers/block/virtio_blk.c never clears QUEUE_FLAG_NONROT unless the host says so).
"""

from __future__ import annotations

import re

from fsyncprobe.device.facts import Node, Snapshot
from fsyncprobe.device.fstypes import NETWORK_FSTYPES, RAM_FSTYPES
from fsyncprobe.device.types import Confidence, DeviceClass, DeviceReport, LeafDevice, MountInfo

# Best to worst for holding cluster state; a path is as bad as its worst leaf.
SEVERITY: tuple[DeviceClass, ...] = (
    DeviceClass.NVME, DeviceClass.SAS_SSD, DeviceClass.SATA_SSD, DeviceClass.VIRTUAL,
    DeviceClass.UNKNOWN, DeviceClass.HDD, DeviceClass.NETWORK_BLOCK, DeviceClass.NETWORK_FS,
    DeviceClass.SD, DeviceClass.USB, DeviceClass.RAM,
)
_CONFIDENCE_ORDER = (Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW)

# Models that hypervisors give their emulated disks (QEMU hw/scsi/scsi-disk.c "QEMU HARDDISK",
# VMware "Virtual disk", Hyper-V "Virtual Disk" by vendor "Msft", VirtualBox "VBOX HARDDISK").
_VIRTUAL_MODELS = re.compile(r"QEMU|VBOX|VIRTUAL[ _]DISK|VMWARE|XEN", re.IGNORECASE)
_VIRTUAL_VENDORS = re.compile(r"^(QEMU|VMware|Msft|VBOX|Xen|Google|Amazon)", re.IGNORECASE)
_VIRTUAL_DRIVERS = {
    "virtio_blk": "virtio-blk", "virtio_scsi": "virtio-scsi", "vbd": "Xen", "xen-blkfront": "Xen",
    "hv_storvsc": "Hyper-V", "vmw_pvscsi": "VMware PVSCSI",
}
_VIRTUAL_SUBSYSTEMS = {"virtio": "virtio", "xen": "Xen", "xen-backend": "Xen", "vmbus": "Hyper-V VMBus"}


def _props(chain: tuple[Node, ...]) -> dict[str, str]:
    """udev properties of the leaf block device (udev puts ID_* on the block device itself)."""
    merged: dict[str, str] = {}
    for node in chain:
        if node.subsystem == "block" or node is chain[0]:
            for k, v in node.properties.items():
                merged.setdefault(k, v)
    return merged


def _disk(chain: tuple[Node, ...]) -> Node:
    """The whole-disk block node of a chain (a partition's parent), for its queue attributes."""
    for node in chain:
        if node.subsystem in ("block", None) and node.devtype != "partition" and (
            "queue/rotational" in node.attributes or node.devtype == "disk"
        ):
            return node
    return chain[0]


def _attr(node: Node, name: str) -> str | None:
    return node.attributes.get(name)


# Cloud block volumes, by the model or serial their platform gives them (underscores read as spaces:
# udev's ID_MODEL/ID_SERIAL replace blanks). Whether such a volume is `network-block` or `virtual`
# is its nature: a network volume's flush crosses the network, a host-local disk's does not.
_CLOUD_VOLUMES: tuple[tuple[re.Pattern[str], DeviceClass, str], ...] = (
    (re.compile(r"^Amazon Elastic Block Store", re.IGNORECASE), DeviceClass.NETWORK_BLOCK,
     "AWS EBS volume: network-attached block storage that Nitro exposes as an NVMe controller (AWS EC2 user "
     "guide, \"Amazon EBS and NVMe\"); its flushes cross the network"),
    (re.compile(r"^MSFT NVMe Accelerator", re.IGNORECASE), DeviceClass.NETWORK_BLOCK,
     "Azure remote (managed) disk behind the MSFT NVMe Accelerator (Azure/azure-vm-utils udev/80-azure-disk.rules: "
     "azure_disk_nvme_remote_v1); its flushes cross the network"),
    (re.compile(r"^(Google )?PersistentDisk|^nvme_card-pd$", re.IGNORECASE), DeviceClass.NETWORK_BLOCK,
     "Google Persistent Disk (GoogleCloudPlatform/guest-configs src/lib/udev/google_nvme_id: controller "
     "nvme_card-pd, ID_SERIAL Google_PersistentDisk_*): network block storage; its flushes cross the network"),
    (re.compile(r"^Microsoft NVMe Direct Disk", re.IGNORECASE), DeviceClass.VIRTUAL,
     "Azure local (temporary) NVMe disk (Azure/azure-vm-utils udev/80-azure-disk.rules: azure_disk_nvme_direct): "
     "on the host, presented by the hypervisor, not a network volume"),
    (re.compile(r"^nvme_card\d*$|^Google EphemeralDisk", re.IGNORECASE), DeviceClass.VIRTUAL,
     "Google Local SSD behind the hypervisor's emulated NVMe controller nvme_card (GoogleCloudPlatform/guest-configs "
     "65-gce-disk-naming.rules: Google_EphemeralDisk): host-local, not a network volume"),
)

# PCI vendor IDs of hypervisors' and clouds' emulated controllers (the PCI ID repository, pci.ids):
# a passed-through physical NVMe keeps its maker's ID (0x144d Samsung, 0x8086 Intel...).
_VIRTUAL_PCI_VENDORS = {
    "0x1af4": "Red Hat virtio", "0x1b36": "Red Hat (QEMU)", "0x15ad": "VMware", "0x80ee": "VirtualBox",
    "0x5853": "Xen", "0x1414": "Microsoft (Hyper-V/Azure)", "0x1d0f": "Amazon (Nitro)", "0x1ae0": "Google",
}

# Transports of NVMe over Fabrics (drivers/nvme/host/core.c nvme_class_uevent puts the controller's
# ops->name into NVME_TRTYPE; the sysfs `transport` attribute says the same): the namespace is remote.
_FABRIC_TRANSPORTS = ("tcp", "rdma", "fc")

_Verdict = tuple[DeviceClass, Confidence, list[str]]


def _norm(value: str) -> str:
    return value.replace("_", " ").strip()


def _cloud_volume(chain: tuple[Node, ...], props: dict[str, str]) -> _Verdict | None:
    """A cloud platform's block volume, by its model or serial (before the `nvme` name is looked at)."""
    seen = [(k, props[k]) for k in ("ID_MODEL", "ID_SERIAL") if props.get(k)]
    seen += [(f"{n.sys_name} model", m) for n in chain if (m := _attr(n, "model"))]
    for key, value in seen:
        for pattern, cls, why in _CLOUD_VOLUMES:
            if pattern.search(value.strip()) or pattern.search(_norm(value)):
                return cls, Confidence.HIGH, [f"{key} {value!r}: {why}"]
    return None


def _nvme_fabric(chain: tuple[Node, ...], name: str) -> _Verdict | None:
    """NVMe over Fabrics: the controller's `transport` attribute, else its NVME_TRTYPE udev/uevent
    property (a dump may carry one without the other), else an `nvme-fabrics` ancestor."""
    if not (name.startswith("nvme") or any(n.subsystem in ("nvme", "nvme-subsystem", "nvme-fabrics") for n in chain)):
        return None
    transport = next((t for n in chain if (t := _attr(n, "transport"))), None)
    source = "controller transport"
    if transport is None:
        transport = next((t for n in chain if (t := n.properties.get("NVME_TRTYPE"))), None)
        source = "NVME_TRTYPE"
    fabrics = next((n.sys_name for n in chain if n.subsystem == "nvme-fabrics"), None)
    if transport in _FABRIC_TRANSPORTS:
        ev = [f"NVMe over {transport} ({source}={transport})"]
        traddr = next((a for n in chain if (a := n.properties.get("NVME_TRADDR"))), None)
        if traddr:
            ev.append(f"target address {traddr}")
        if fabrics:
            ev.append(f"controller under the nvme-fabrics device {fabrics}")
        ev.append("a fabric-attached namespace is remote, often shared storage: its flushes cross the fabric")
        return DeviceClass.NETWORK_BLOCK, Confidence.HIGH, ev
    if transport == "loop":
        return DeviceClass.UNKNOWN, Confidence.LOW, [
            "NVMe over the loop transport: a local nvmet target whose backing device is not visible from here"]
    if fabrics and not transport:
        return DeviceClass.NETWORK_BLOCK, Confidence.MEDIUM, [
            f"controller under the nvme-fabrics device {fabrics} (NVMe over Fabrics; transport not recorded)"]
    return None


def _hypervisor(chain: tuple[Node, ...], props: dict[str, str], name: str) -> _Verdict | None:
    """A disk a hypervisor emulates or paravirtualises: its driver, bus, VMBus path, PCI vendor, model."""
    for node in chain:
        if node.driver in _VIRTUAL_DRIVERS:
            what = _VIRTUAL_DRIVERS[node.driver]
            return DeviceClass.VIRTUAL, Confidence.HIGH, [f"{what} device ({node.sys_name}, driver {node.driver})"]
        if node.subsystem in _VIRTUAL_SUBSYSTEMS:
            what = _VIRTUAL_SUBSYSTEMS[node.subsystem]
            return DeviceClass.VIRTUAL, Confidence.HIGH, [f"{what} ancestor at {node.sys_name}"]
    id_path = props.get("ID_PATH", "")
    if "VMBUS" in id_path.upper():
        # udev's path_id names Hyper-V storvsc disks acpi-VMBUS:NN-... (src/udev/udev-builtin-path_id.c)
        return DeviceClass.VIRTUAL, Confidence.HIGH, [f"Hyper-V VMBus disk: ID_PATH={id_path}"]
    for node in chain:
        vendor_id = _attr(node, "vendor") if node.subsystem == "pci" else None
        if vendor_id in _VIRTUAL_PCI_VENDORS:
            return DeviceClass.VIRTUAL, Confidence.MEDIUM, [
                f"PCI device {node.sys_name} from vendor {vendor_id} ({_VIRTUAL_PCI_VENDORS[vendor_id]}): "
                "an emulated or cloud controller; its model would say whether the volume is local or remote"]
    if re.match(r"^(vd[a-z]|xvd[a-z])", name):
        return DeviceClass.VIRTUAL, Confidence.MEDIUM, [f"name {name} is a paravirtual disk's"]
    model = props.get("ID_MODEL") or next((m for n in chain if (m := _attr(n, "model"))), "")
    vendor = props.get("ID_VENDOR") or next(
        (v for n in chain if n.subsystem != "pci" and (v := _attr(n, "vendor"))), "")
    if _VIRTUAL_MODELS.search(model) or _VIRTUAL_VENDORS.match(vendor):
        what = f"vendor {vendor!r}, model {model!r}" if vendor else f"model {model!r}"
        return DeviceClass.VIRTUAL, Confidence.HIGH, [f"hypervisor's emulated disk: {what}"]
    return None


def classify_chain(chain: tuple[Node, ...]) -> tuple[DeviceClass, Confidence, list[str]]:
    """Class, confidence and evidence of one physical leaf."""
    props = _props(chain)
    disk = _disk(chain)
    name = disk.sys_name
    ev: list[str] = []

    for node in chain:
        if node.subsystem == "usb" or node.driver in ("usb-storage", "uas"):
            ev.append(f"usb ancestor at {node.sys_name}" + (f" (driver {node.driver})" if node.driver else ""))
            if props.get("ID_BUS") and props["ID_BUS"] != "usb":
                ev.append(f"ID_BUS={props['ID_BUS']} ignored: a USB bridge translates to {props['ID_BUS']}")
            return DeviceClass.USB, Confidence.HIGH, ev
    if props.get("ID_BUS") == "usb":
        return DeviceClass.USB, Confidence.HIGH, ["ID_BUS=usb"]

    for node in chain:
        if node.subsystem == "mmc" or node.sys_name.startswith("mmcblk") or node.driver == "mmcblk":
            kind = props.get("MMC_TYPE") or node.attributes.get("type") or node.attributes.get("device/type")
            ev.append(f"mmc ancestor at {node.sys_name}" + (f" (type {kind})" if kind else ""))
            return DeviceClass.SD, Confidence.HIGH, ev

    # Hypervisor, cloud and fabric evidence comes before the `nvme` name: a cloud volume or a SAN
    # namespace reaches the guest through an NVMe controller too (issue 13).
    cloud = _cloud_volume(chain, props)
    if cloud is not None:
        return cloud
    fabric = _nvme_fabric(chain, name)
    if fabric is not None:
        return fabric
    hypervisor = _hypervisor(chain, props, name)
    if hypervisor is not None:
        return hypervisor

    if name.startswith("nvme") or any(n.subsystem in ("nvme", "nvme-subsystem") for n in chain):
        transport = next((t for n in chain if (t := _attr(n, "transport"))), None)
        subsys = next((n.sys_name for n in chain if n.subsystem == "nvme-subsystem"), None)
        ev.append(f"NVMe namespace {name}" + (f", controller transport={transport}" if transport else ""))
        if subsys:
            ev.append(f"native multipath under nvme-subsystem {subsys}: still NVMe")
        ev.append("no hypervisor, cloud or fabric evidence on its chain")
        return DeviceClass.NVME, Confidence.HIGH, ev

    if re.match(r"^(nbd|rbd|drbd)\d", name):
        return DeviceClass.NETWORK_BLOCK, Confidence.HIGH, [f"{re.sub(r'[0-9].*', '', name)} device {name}"]
    for node in chain:
        iscsi_path = "-iscsi-" in props.get("ID_PATH", "")
        if node.sys_name.startswith("session") or (node.subsystem or "").startswith("iscsi") or iscsi_path:
            return DeviceClass.NETWORK_BLOCK, Confidence.HIGH, [f"iSCSI session at {node.sys_name}"]
    if re.match(r"^(zram|ram)\d", name):
        return DeviceClass.RAM, Confidence.HIGH, [f"{name} keeps its blocks in RAM"]
    if re.match(r"^loop\d", name):
        return DeviceClass.UNKNOWN, Confidence.LOW, [f"{name}: loop device whose backing file could not be followed"]

    bus = None
    for node in chain:
        if (node.subsystem or "").startswith("sas") or node.sys_name.startswith(("end_device-", "expander-")):
            bus = "sas"
            ev.append(f"SAS ancestor at {node.sys_name}")
            break
        if node.subsystem == "scsi" and _attr(node, "sas_address"):
            bus = "sas"
            ev.append(f"SAS address {_attr(node, 'sas_address')} on SCSI device {node.sys_name}")
            break
        if re.match(r"^ata\d+$", node.sys_name) or node.driver in ("ahci", "ata_piix"):
            bus = "sata"
            ev.append(f"ATA ancestor at {node.sys_name}" + (f" (driver {node.driver})" if node.driver else ""))
            break
    if bus is None:
        scsi_vendor = next((_attr(n, "vendor") for n in chain if n.subsystem == "scsi" and _attr(n, "vendor")), None)
        if props.get("ID_BUS") == "ata" or scsi_vendor == "ATA":
            bus = "sata"
            ev.append("ID_BUS=ata" if props.get("ID_BUS") == "ata" else "SCSI vendor 'ATA' (libata)")
        elif props.get("ID_BUS") == "scsi" and "-sas-" in props.get("ID_PATH", ""):
            bus = "sas"
            ev.append(f"ID_PATH={props['ID_PATH']}")
    elif bus == "sas":
        # A SAS HBA (mpt3sas, drivers/scsi/mpt3sas) also takes SATA drives, reached through SATA
        # tunnelling; libata-style SCSI vendor "ATA" and udev's ata_id (ID_BUS=ata, ID_ATA=1) say the
        # drive itself speaks ATA, so it is judged as the SATA drive it is.
        scsi_vendor = next((_attr(n, "vendor") for n in chain if n.subsystem == "scsi" and _attr(n, "vendor")), None)
        ata = [f"ID_BUS={props['ID_BUS']}"] if props.get("ID_BUS") == "ata" else []
        ata += ["ID_ATA=1"] if props.get("ID_ATA") == "1" else []
        ata += ["SCSI vendor 'ATA'"] if scsi_vendor == "ATA" else []
        if ata:
            bus = "sata"
            ev.append(f"SATA drive behind a SAS HBA: {', '.join(ata)}; judged by its ATA signals")

    rpm = props.get("ID_ATA_ROTATION_RATE_RPM")
    rotational = _attr(disk, "queue/rotational")
    if rpm is not None and rpm.isdigit():
        ev.insert(0, f"ID_ATA_ROTATION_RATE_RPM={rpm}")
        if int(rpm) > 0:
            return DeviceClass.HDD, Confidence.HIGH, ev
        return (DeviceClass.SAS_SSD if bus == "sas" else DeviceClass.SATA_SSD), Confidence.HIGH, ev
    if rotational == "0":
        ev.insert(0, "queue/rotational=0")
        return (DeviceClass.SAS_SSD if bus == "sas" else DeviceClass.SATA_SSD), (
            Confidence.HIGH if bus else Confidence.MEDIUM), ev
    if rotational == "1":
        ev.insert(0, "queue/rotational=1 (weak: bridges and hypervisors report it for SSDs too)")
        return DeviceClass.HDD, (Confidence.MEDIUM if bus else Confidence.LOW), ev
    return DeviceClass.UNKNOWN, Confidence.LOW, ev or [f"{name}: no usable facts"]


# udev properties worth showing as evidence, most telling first (set by udev's rules and builtins:
# 60-persistent-storage.rules, ata_id, scsi_id, path_id, blkid), never by the kernel's uevent.
_UDEV_EVIDENCE_KEYS = ("ID_BUS", "ID_VENDOR", "ID_MODEL", "ID_SERIAL", "ID_PATH", "ID_ATA_ROTATION_RATE_RPM",
                       "ID_WWN", "ID_TYPE", "ID_FS_TYPE", "ID_PART_TABLE_TYPE")


def _udev_evidence(props: dict[str, str]) -> list[str]:
    """One evidence line with the udev properties of the leaf, when udev recorded any."""
    seen = [f"{k}={props[k]}" for k in _UDEV_EVIDENCE_KEYS if props.get(k)]
    return ["udev: " + ", ".join(seen[:6])] if seen else []


# A stacked device's own udev record: what blkid found on it and what device-mapper or md say it is
# (60-persistent-storage.rules, 55-dm.rules, 63-md-raid-arrays.rules), never the kernel's uevent keys.
_LAYER_UDEV_KEYS = ("ID_FS_TYPE", "ID_FS_UUID", "ID_PART_TABLE_TYPE", "ID_PART_ENTRY_NUMBER", "DM_NAME", "DM_UUID",
                    "MD_LEVEL", "MD_UUID")


def _layer_evidence(node: Node) -> str:
    """One evidence line for a stacked device above the leaf: what it is (a loop device and its
    backing file, device-mapper, md, a partition) and its own udev properties when udev recorded it."""
    a = node.attributes
    if backing := a.get("loop/backing_file"):
        what = f"loop device, backing file {backing}"
    elif dm := a.get("dm/name"):
        what = f"device-mapper {dm}"
    elif md := a.get("md/level"):
        what = f"md {md}"
    elif node.devtype == "partition" or "partition" in a:
        what = "partition" + (f" {a['partition']}" if a.get("partition") else "")
    else:
        what = "stacked block device"
    seen = [f"{k}={node.properties[k]}" for k in _LAYER_UDEV_KEYS if node.properties.get(k)]
    return f"via {node.sys_name} ({what})" + (f"; its udev record: {', '.join(seen)}" if seen else "")


def _fs_leaf(m: MountInfo) -> LeafDevice:
    if m.fstype in RAM_FSTYPES:
        return LeafDevice(
            name=f"{m.fstype}:{m.mountpoint}", device_class=DeviceClass.RAM, confidence=Confidence.HIGH,
            evidence=(f"fstype {m.fstype}: files live in RAM, fsync is a no-op (mm/shmem.c)",),
        )
    if m.fstype in NETWORK_FSTYPES or m.fstype.startswith("fuse."):
        cls = DeviceClass.NETWORK_FS if m.fstype in NETWORK_FSTYPES else DeviceClass.UNKNOWN
        return LeafDevice(
            name=f"{m.source or m.fstype}", device_class=cls,
            confidence=Confidence.HIGH if cls is DeviceClass.NETWORK_FS else Confidence.LOW,
            evidence=(f"fstype {m.fstype} from {m.source}",),
        )
    return LeafDevice(
        name=m.source or m.fstype, device_class=DeviceClass.UNKNOWN, confidence=Confidence.LOW,
        evidence=(f"fstype {m.fstype} from {m.source}: no block device behind it",),
    )


def classify(snapshot: Snapshot) -> DeviceReport:
    """The device section for a snapshot's facts."""
    leaves: list[LeafDevice] = []
    for i, chain in enumerate(snapshot.chains):
        cls, conf, ev = classify_chain(chain)
        disk = _disk(chain)
        props = _props(chain)
        ev += _udev_evidence(props)
        ev += [_layer_evidence(n) for n in (snapshot.layers[i] if i < len(snapshot.layers) else ())]
        stack = snapshot.stacks[i] if i < len(snapshot.stacks) else (disk.sys_name,)
        model = props.get("ID_MODEL") or next((m for n in chain if (m := _attr(n, "model"))), None)
        rot = _attr(disk, "queue/rotational")
        fua = _attr(disk, "queue/fua")
        leaves.append(LeafDevice(
            name=disk.sys_name, device_class=cls, confidence=conf, evidence=tuple(ev), stack=tuple(stack),
            model=model, rotational=None if rot is None else rot == "1",
            write_cache=_attr(disk, "queue/write_cache"), fua=None if fua is None else fua == "1",
        ))
    leaves += [_fs_leaf(m) for m in snapshot.filesystems]
    path_ev: list[str] = [f"mount {snapshot.mount.mountpoint} ({snapshot.mount.fstype} from {snapshot.mount.source})"]
    for st in snapshot.stacks:
        if len(st) > 1:
            path_ev.append("stack " + " -> ".join(st))
    if not snapshot.udev:
        # No /run/udev/data, or a database without these devices: either way nothing but sysfs.
        path_ev.append("udev properties unavailable (no udev record of these devices): classified from sysfs alone")
    warnings = list(snapshot.warnings)
    if not leaves:
        leaves.append(LeafDevice(name=snapshot.mount.source or "?", device_class=DeviceClass.UNKNOWN,
                                 confidence=Confidence.LOW, evidence=("nothing under the mount could be resolved",)))
    worst = max(leaves, key=lambda leaf: SEVERITY.index(leaf.device_class))
    conf = max((leaf.confidence for leaf in leaves if leaf.device_class is worst.device_class),
               key=_CONFIDENCE_ORDER.index)
    return DeviceReport(
        path=snapshot.path, mount=snapshot.mount, device_class=worst.device_class, confidence=conf,
        leaves=tuple(leaves), evidence=tuple(path_ev), udev=snapshot.udev, warnings=tuple(warnings),
    )
