"""Device rules on real machines' device facts: the saved snapshots in tests/snapshots replayed
through the classifier (`fsyncprobe device --from-snapshot`'s path) and then through the rules.

No hardware needed: a USB stick, an SD card, an HDD or an NFS mount behind /var/lib is a
snapshot away.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsyncprobe.device import from_snapshot_file
from fsyncprobe.device.types import DeviceClass
from fsyncprobe.verdict import profiles, rules
from fsyncprobe.verdict.types import Level
from tests.factories import pmx_benches

SNAPSHOTS = sorted((Path(__file__).parent / "snapshots").glob("*.json"))

# The pmxcfs profile's [device] table: what a cluster node's state disk may not be.
EXPECTED = {
    DeviceClass.USB: Level.FAIL, DeviceClass.SD: Level.FAIL, DeviceClass.RAM: Level.FAIL,
    DeviceClass.HDD: Level.WARN, DeviceClass.NETWORK_FS: Level.WARN, DeviceClass.NETWORK_BLOCK: Level.WARN,
    DeviceClass.UNKNOWN: Level.WARN,
}


@pytest.mark.parametrize("snap", SNAPSHOTS, ids=[p.stem for p in SNAPSHOTS])
def test_device_class_rule_on_every_saved_machine(snap: Path) -> None:
    dev = from_snapshot_file(str(snap))
    v = rules.evaluate(profiles.load("pmxcfs"), pmx_benches(rate=150.0), dev, None)
    rule = "no-disk" if dev.device_class is DeviceClass.RAM else "device-class"
    (f,) = [f for f in v.findings if f.rule == rule]
    assert f.level is EXPECTED.get(dev.device_class, Level.PASS), (snap.stem, dev.device_class)
    assert f.level.rank <= v.level.rank


def test_usb_stick_and_sd_card_fail_a_cluster_node() -> None:
    names = {p.stem for p in SNAPSHOTS}
    for stem in ("usb-stick", "sd-card", "sd-in-usb-reader", "emmc"):
        assert stem in names
        dev = from_snapshot_file(str(Path(__file__).parent / "snapshots" / f"{stem}.json"))
        v = rules.evaluate(profiles.load("pmxcfs"), pmx_benches(), dev, None)
        assert v.level is Level.FAIL and rules.exit_code(v) == 1, stem


def test_sata_hdd_reporting_write_through_at_ssd_rates_lies(tmp_path: Path) -> None:
    # The real laptop HDD's facts, plus the one attribute the source did not print: the kernel's
    # queue/write_cache as a drive with its volatile cache off reports it.
    data = json.loads((Path(__file__).parent / "snapshots" / "sata-hdd.json").read_text())
    disk = next(n for n in data["chains"][0] if n["devtype"] == "disk")
    disk["attributes"]["queue/write_cache"] = "write through"
    snap = tmp_path / "sata-hdd-write-through.json"
    snap.write_text(json.dumps(data))
    dev = from_snapshot_file(str(snap))
    assert dev.device_class is DeviceClass.HDD
    v = rules.evaluate(profiles.load("pmxcfs"), pmx_benches(rate=2400.0), dev, None)
    (f,) = [f for f in v.findings if f.rule == "impossible-rate"]
    assert f.level is Level.FAIL and v.level is Level.FAIL
    assert "this disk lies about flushes: write-through cache reported" in f.title
    # the same disk at a rate a 5,400 rpm drive can make: nothing impossible, just an HDD
    v2 = rules.evaluate(profiles.load("pmxcfs"), pmx_benches(rate=90.0), dev, None)
    assert not [f for f in v2.findings if f.rule == "impossible-rate"]
