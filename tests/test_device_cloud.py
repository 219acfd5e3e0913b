"""Cloud volumes, NVMe over Fabrics and SATA drives on SAS HBAs (issue 13): hypervisor, cloud and fabric
evidence is weighed before the `nvme` name, and a SATA drive is judged by its ATA signals wherever it hangs.
The real public dumps are replayed by tests/test_device_snapshots.py; these check the rules around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsyncprobe.device.classify import classify_chain
from fsyncprobe.device.facts import Node
from fsyncprobe.device.types import Confidence, DeviceClass

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _node(name: str, subsystem: str | None = None, driver: str | None = None, devtype: str | None = None,
          attributes: dict[str, str] | None = None, properties: dict[str, str] | None = None) -> Node:
    return Node(sys_name=name, subsystem=subsystem, devtype=devtype, driver=driver,
                attributes=attributes or {}, properties=properties or {})


def _pcie_nvme(model: str | None = None, props: dict[str, str] | None = None, pci_vendor: str | None = None,
               transport: str | None = "pcie") -> tuple[Node, ...]:
    ctrl_attrs = {k: v for k, v in (("model", model), ("transport", transport)) if v is not None}
    return (
        _node("nvme0n1", "block", devtype="disk", properties=props),
        _node("nvme0", "nvme", attributes=ctrl_attrs),
        _node("0000:00:04.0", "pci", "nvme", attributes={"vendor": pci_vendor} if pci_vendor else {}),
    )


def test_plain_pcie_nvme_stays_nvme() -> None:
    cls, conf, ev = classify_chain(_pcie_nvme(model="Samsung SSD 980 PRO 1TB", pci_vendor="0x144d"))
    assert cls is DeviceClass.NVME and conf is Confidence.HIGH
    assert any("no hypervisor, cloud or fabric evidence" in e for e in ev)


@pytest.mark.parametrize(
    ("model", "props", "expected", "needle"),
    [
        ("Amazon Elastic Block Store", None, DeviceClass.NETWORK_BLOCK, "AWS EBS"),
        (None, {"ID_MODEL": "MSFT NVMe Accelerator v1.0"}, DeviceClass.NETWORK_BLOCK, "Azure remote"),
        ("nvme_card-pd", None, DeviceClass.NETWORK_BLOCK, "Google Persistent Disk"),
        (None, {"ID_SERIAL": "Google_PersistentDisk_pvc-8ee0cf44"}, DeviceClass.NETWORK_BLOCK, "Persistent Disk"),
        (None, {"ID_MODEL": "Microsoft NVMe Direct Disk v2"}, DeviceClass.VIRTUAL, "Azure local"),
        ("nvme_card", None, DeviceClass.VIRTUAL, "Google Local SSD"),
        ("QEMU NVMe Ctrl", None, DeviceClass.VIRTUAL, "QEMU"),
    ],
)
def test_cloud_and_emulated_nvme_are_not_local_nvme(model: str | None, props: dict[str, str] | None,
                                                    expected: DeviceClass, needle: str) -> None:
    cls, _, ev = classify_chain(_pcie_nvme(model=model, props=props))
    assert cls is expected, ev
    assert any(needle in e for e in ev), ev


def test_a_cloud_pci_vendor_alone_is_virtual_with_medium_confidence() -> None:
    cls, conf, ev = classify_chain(_pcie_nvme(pci_vendor="0x1d0f"))
    assert (cls, conf) == (DeviceClass.VIRTUAL, Confidence.MEDIUM)
    assert "Amazon" in ev[0] and "model would say" in ev[0]


@pytest.mark.parametrize("transport", ["tcp", "rdma", "fc"])
def test_nvme_trtype_without_a_transport_attribute_is_network_block(transport: str) -> None:
    chain = (
        _node("nvme3n1", "block", devtype="disk"),
        _node("nvme3", "nvme", properties={"NVME_TRTYPE": transport, "NVME_TRADDR": "traddr=x"}),
    )
    cls, conf, ev = classify_chain(chain)
    assert (cls, conf) == (DeviceClass.NETWORK_BLOCK, Confidence.HIGH)
    assert ev[0] == f"NVMe over {transport} (NVME_TRTYPE={transport})"


def test_an_nvme_fabrics_ancestor_alone_is_network_block() -> None:
    chain = (_node("nvme3n1", "block", devtype="disk"), _node("nvme3", "nvme"), _node("ctl", "nvme-fabrics"))
    cls, conf, _ = classify_chain(chain)
    assert (cls, conf) == (DeviceClass.NETWORK_BLOCK, Confidence.MEDIUM)


def test_the_fc_dump_really_lacks_a_transport_attribute() -> None:
    """The public NVMe/FC dump is the case the issue names: NVME_TRTYPE=fc and no `transport`."""
    raw = json.loads((SNAPSHOTS / "nvme-over-fc.json").read_text())
    nodes = raw["chains"][0]
    assert not any("transport" in n["attributes"] for n in nodes)
    assert any(n["properties"].get("NVME_TRTYPE") == "fc" for n in nodes)


def _behind_sas(props: dict[str, str] | None = None, scsi_vendor: str | None = None) -> tuple[Node, ...]:
    return (
        _node("sdc", "block", devtype="disk", attributes={"queue/rotational": "0"}, properties=props),
        _node("0:0:3:0", "scsi", "sd", attributes={"vendor": scsi_vendor} if scsi_vendor else {}),
        _node("target0:0:3", "scsi"),
        _node("end_device-0:3"),
        _node("port-0:3"),
        _node("host0", "scsi"),
        _node("0000:01:00.0", "pci", "mpt3sas"),
    )


@pytest.mark.parametrize(
    ("props", "scsi_vendor", "needle"),
    [
        ({"ID_BUS": "ata", "ID_ATA": "1", "ID_ATA_ROTATION_RATE_RPM": "0"}, None, "ID_BUS=ata"),
        (None, "ATA", "SCSI vendor 'ATA'"),
    ],
)
def test_a_sata_ssd_on_mpt3sas_is_a_sata_ssd(props: dict[str, str] | None, scsi_vendor: str | None,
                                              needle: str) -> None:
    cls, conf, ev = classify_chain(_behind_sas(props, scsi_vendor))
    assert (cls, conf) == (DeviceClass.SATA_SSD, Confidence.HIGH), ev
    assert any("SATA drive behind a SAS HBA" in e and needle in e for e in ev), ev


def test_a_sas_ssd_on_mpt3sas_stays_a_sas_ssd() -> None:
    cls, _, ev = classify_chain(_behind_sas(scsi_vendor="HGST"))
    assert cls is DeviceClass.SAS_SSD, ev
