"""Classification of recorded facts: snapshots of real machines (tests/snapshots/, each naming its
public source) and the priority rules of shared/DESIGN.md, without any disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsyncprobe.device import from_snapshot_file
from fsyncprobe.device.classify import classify, classify_chain
from fsyncprobe.device.facts import Node, snapshot_from_json, snapshot_to_json
from fsyncprobe.device.types import Confidence, DeviceClass
from fsyncprobe.errors import InputError
from tests.cli_helpers import fsyncprobe

SNAPSHOTS = sorted((Path(__file__).parent / "snapshots").glob("*.json"))


def test_every_class_has_a_snapshot() -> None:
    wanted = {c.value for c in DeviceClass} - {"sas-ssd"}
    seen = {json.loads(p.read_text())["expect"]["class"] for p in SNAPSHOTS}
    assert wanted - {"unknown"} <= seen, wanted - seen


@pytest.mark.parametrize("path", SNAPSHOTS, ids=[p.stem for p in SNAPSHOTS])
def test_snapshot_replays_to_its_class(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw["source"], "every snapshot says where its facts come from"
    expect = raw["expect"]
    report = from_snapshot_file(str(path))
    assert report.device_class.value == expect["class"], report
    if "leaves" in expect:
        assert len(report.leaves) == expect["leaves"]
    if "stack" in expect:
        assert any(" -> ".join(leaf.stack) == expect["stack"] for leaf in report.leaves)
    if "evidence" in expect:
        assert any(expect["evidence"] in e for leaf in report.leaves for e in leaf.evidence)
    # the evidence is never empty, and a snapshot survives a save/load round trip unchanged
    assert all(leaf.evidence for leaf in report.leaves)
    snap = snapshot_from_json(raw)
    assert snapshot_from_json(snapshot_to_json(snap)) == snap


def _node(name: str, subsystem: str | None = None, driver: str | None = None, devtype: str | None = None,
          attributes: dict[str, str] | None = None, properties: dict[str, str] | None = None) -> Node:
    return Node(sys_name=name, subsystem=subsystem, devtype=devtype, driver=driver,
                attributes=attributes or {}, properties=properties or {})


def test_usb_bridge_beats_id_bus_ata() -> None:
    chain = (
        _node("sda", "block", devtype="disk", properties={"ID_BUS": "ata", "ID_ATA_ROTATION_RATE_RPM": "0"}),
        _node("0:0:0:0", "scsi", "sd"),
        _node("2-1:1.0", "usb", "uas"),
        _node("2-1", "usb", "usb"),
    )
    cls, conf, ev = classify_chain(chain)
    assert cls is DeviceClass.USB and conf is Confidence.HIGH
    assert any("ID_BUS=ata ignored" in e for e in ev)


def test_sd_card_in_usb_reader_is_usb_not_sd() -> None:
    chain = (
        _node("sdb", "block", devtype="disk", properties={"ID_DRIVE_FLASH_SD": "1", "ID_BUS": "usb"}),
        _node("1-2:1.0", "usb", "usb-storage"),
    )
    assert classify_chain(chain)[0] is DeviceClass.USB


def test_virtio_rotational_one_is_virtual_not_hdd() -> None:
    chain = (
        _node("vda", "block", devtype="disk", attributes={"queue/rotational": "1"}),
        _node("virtio1", "virtio", "virtio_blk"),
        _node("0000:00:02.0", "pci", "virtio-pci"),
    )
    assert classify_chain(chain)[0] is DeviceClass.VIRTUAL


def test_rotational_one_alone_is_a_low_confidence_hdd() -> None:
    cls, conf, ev = classify_chain((_node("sdz", "block", devtype="disk", attributes={"queue/rotational": "1"}),))
    assert cls is DeviceClass.HDD and conf is Confidence.LOW
    assert "weak" in ev[0]


def test_nvme_native_multipath_is_nvme() -> None:
    chain = (
        _node("nvme0n1", "block", devtype="disk"),
        _node("nvme-subsys0", "nvme-subsystem"),
    )
    cls, _, ev = classify_chain(chain)
    assert cls is DeviceClass.NVME
    assert any("nvme-subsystem" in e for e in ev)


def test_nvme_over_tcp_is_network_block() -> None:
    chain = (_node("nvme1n1", "block", devtype="disk"), _node("nvme1", "nvme", attributes={"transport": "tcp"}))
    assert classify_chain(chain)[0] is DeviceClass.NETWORK_BLOCK


def test_sas_ssd() -> None:
    chain = (
        _node("sdc", "block", devtype="disk", attributes={"queue/rotational": "0"}),
        _node("7:0:0:0", "scsi", "sd"),
        _node("end_device-7:0:0"),
    )
    assert classify_chain(chain)[0] is DeviceClass.SAS_SSD


@pytest.mark.parametrize("name", ["nbd0", "rbd3", "drbd1"])
def test_network_block_devices(name: str) -> None:
    assert classify_chain((_node(name, "block", devtype="disk"),))[0] is DeviceClass.NETWORK_BLOCK


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"snapshot_version": 1, "path": "/x"', "not a valid snapshot"),
        ("[]", "expected an object"),
        ('{"snapshot_version": 2, "path": "/", "mount": {}, "chains": []}', "not supported"),
        ('{"snapshot_version": 1, "path": "/", "mount": {"mountpoint": "/"}, "chains": []}', "fstype"),
        ('{"snapshot_version": 1, "path": "/", "mount": {"mountpoint": "/", "fstype": "ext4"}, "chains": [[{}]]}',
         "sys_name"),
        ('{"snapshot_version": 1, "path": "/", "mount": {"mountpoint": "/", "fstype": "ext4"}, "chains": [3]}',
         "chains[0]"),
        ('{"snapshot_version": 1, "path": "/", "mount": {"mountpoint": "/", "fstype": "ext4"}, "chains": [],'
         ' "warnings": true}', "warnings"),
    ],
)
def test_malformed_snapshot_is_a_clear_usage_error(tmp_path: Path, text: str, needle: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(InputError, match=None) as info:
        from_snapshot_file(str(bad))
    assert needle in str(info.value)
    proc = fsyncprobe("device", "--from-snapshot", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr


def test_truncated_real_snapshot(tmp_path: Path) -> None:
    text = SNAPSHOTS[0].read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    proc = fsyncprobe("device", "--from-snapshot", str(cut))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


# --- malformed input never escapes as anything but InputError (found: `"warnings": true` was a TypeError)

_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=4))
_VALUE = st.recursive(
    _LEAF, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c, max_size=3)),
    max_leaves=6,
)


def _paths(obj: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


_BASES = [json.loads(p.read_text()) for p in SNAPSHOTS]
_TARGETS = [(i, path) for i, base in enumerate(_BASES) for path in _paths(base)[1:]]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_TARGETS), _VALUE)
def test_any_value_anywhere_is_an_input_error_or_a_report(target: tuple[int, tuple[str | int, ...]],
                                                         value: object) -> None:
    i, path = target
    data = json.loads(json.dumps(_BASES[i]))
    obj = data
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    try:
        report = classify(snapshot_from_json(data))
    except InputError:
        return
    assert report.leaves


@pytest.mark.parametrize("path", SNAPSHOTS[:3], ids=[p.stem for p in SNAPSHOTS[:3]])
def test_every_truncation_is_an_input_error(tmp_path: Path, path: Path) -> None:
    text = path.read_text()
    cut = tmp_path / "cut.json"
    for n in range(0, len(text) - 2, max(1, len(text) // 97)):
        cut.write_text(text[:n])
        with pytest.raises(InputError):
            from_snapshot_file(str(cut))


# --- the stack's own devices above the leaf (a loop device, its partition, dm, md): evidence, not class


def _layered_snapshot(layers: list[list[dict[str, Any]]]) -> dict[str, Any]:
    raw = json.loads((Path(__file__).parent / "snapshots" / "virtio.json").read_text())
    raw["stacks"] = [["loop0p1", "loop0", raw["stacks"][0][-1] if raw.get("stacks") else "vda"]]
    raw["layers"] = layers
    return raw


def test_layers_are_shown_as_evidence_and_never_change_the_class() -> None:
    loop: dict[str, Any] = {"sys_name": "loop0", "subsystem": "block", "devtype": "disk", "driver": None,
            "attributes": {"loop/backing_file": "/srv/img/disk.img"}, "properties": {"ID_PART_TABLE_TYPE": "gpt"}}
    part: dict[str, Any] = {"sys_name": "loop0p1", "subsystem": "block", "devtype": "partition", "driver": None,
            "attributes": {"partition": "1"}, "properties": {"ID_FS_TYPE": "ext4", "DEVNAME": "/dev/loop0p1"}}
    plain = classify(snapshot_from_json(_layered_snapshot([])))
    layered = snapshot_from_json(_layered_snapshot([[part, loop]]))
    report = classify(layered)
    assert report.device_class is plain.device_class
    (leaf,) = report.leaves
    assert leaf.evidence[-2:] == ("via loop0p1 (partition 1); its udev record: ID_FS_TYPE=ext4",
                                  "via loop0 (loop device, backing file /srv/img/disk.img); its udev record: "
                                  "ID_PART_TABLE_TYPE=gpt")
    assert snapshot_from_json(snapshot_to_json(layered)) == layered
    # without a udev record the line still names the device and its backing file (the uevent's DEVNAME is no udev)
    bare = dict(loop, properties={"DEVNAME": "/dev/loop0"})
    (leaf,) = classify(snapshot_from_json(_layered_snapshot([[bare]]))).leaves
    assert leaf.evidence[-1] == "via loop0 (loop device, backing file /srv/img/disk.img)"


@pytest.mark.parametrize("layers", [3, [3], [[3]], [[{"subsystem": "block"}]]])
def test_malformed_layers_are_an_input_error(layers: object) -> None:
    raw = _layered_snapshot([])
    raw["layers"] = layers
    with pytest.raises(InputError, match="layers"):
        snapshot_from_json(raw)


@pytest.mark.parametrize(
    ("attributes", "properties", "line"),
    [
        ({"dm/name": "vg0-root"}, {"DM_NAME": "vg0-root", "ID_FS_TYPE": "ext4"},
         "via dm-0 (device-mapper vg0-root); its udev record: ID_FS_TYPE=ext4, DM_NAME=vg0-root"),
        ({"md/level": "raid1"}, {"MD_LEVEL": "raid1"}, "via dm-0 (md raid1); its udev record: MD_LEVEL=raid1"),
        ({}, {}, "via dm-0 (stacked block device)"),
    ],
)
def test_layer_lines_for_dm_and_md(attributes: dict[str, str], properties: dict[str, str], line: str) -> None:
    node = {"sys_name": "dm-0", "subsystem": "block", "devtype": "disk", "driver": None,
            "attributes": attributes, "properties": properties}
    (leaf,) = classify(snapshot_from_json(_layered_snapshot([[node]]))).leaves
    assert leaf.evidence[-1] == line
