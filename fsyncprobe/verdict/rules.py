"""Rules: measurements, device facts, the model and a profile -> findings and a verdict. Pure.

Every finding names the measured value, the limit, why it matters (and through which of the three
paths DESIGN.md names: HA self-fencing, a frozen /etc/pve, corosync scheduling stalls) and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from fsyncprobe.device.fstypes import RAM_FSTYPES
from fsyncprobe.device.types import DeviceClass, DeviceReport
from fsyncprobe.measure.types import BenchResult, Workload
from fsyncprobe.ring.types import ModelReport
from fsyncprobe.units import format_duration_ns, format_rate_per_year, format_seconds, format_size
from fsyncprobe.verdict import plp
from fsyncprobe.verdict.profiles import Metric, Profile, Threshold
from fsyncprobe.verdict.types import Finding, Level, NodeVerdict, Verdict, worst

HDD_MAX_FLUSHES_PER_S = 500.0
"""The most sync writes per second any spinning disk can make durable: a flush that really
reaches the platter waits for the head and the rotation; the fastest drives spin at 15,000 rpm
(250 revolutions a second). Twice that allows for writes that land on the same track in one turn."""

SYNC_PER_OP_WORKLOADS = frozenset({Workload.PVEPERF, Workload.PVEPERF_DURABLE, Workload.OVERWRITE, Workload.APPEND})
"""Workloads where every operation makes its own sync, so each must reach the device (the `sqlite`
workload syncs only at checkpoints). `pveperf`'s sync comes before its write, but it still commits a
change of its own each time: the file it just created or truncated (a new inode, or a size of 0)."""

WRITES_PER_SYNC_WARN = 0.5
"""WARN when the device saw fewer write requests than half the syncs: each fsync of new data waits
for at least one write to complete, so two syncs cannot share one request."""
WRITES_PER_SYNC_FAIL = 0.1
"""FAIL below one write request per ten syncs: the syncs are swallowed by a cache above the device."""


RING_ID_WARN_FRACTION = 0.5
"""WARN when the slowest measured ring-id write took half the token bound or more: within a factor
of two of re-forming the ring, where a longer run or a busier hour may cross it (corosync itself
warns at 80 % of the token: exec/main.c `timer_function_scheduler_timeout`)."""


@dataclass(frozen=True)
class Gates:
    """CI gate options of `verdict` (`--min-ops`, `--max-p99`, `--strict`)."""

    min_ops_per_s: float | None = None
    """Every measured workload must reach this rate (FAIL otherwise)."""
    max_p99_ns: int | None = None
    """Every measured workload's p99 must stay under this (FAIL otherwise)."""
    strict: bool = False
    """A WARN fails the gate too (exit 1)."""


def _is_rate(metric: Metric) -> bool:
    """ops/s gets worse as it falls; every other metric as it rises."""
    return metric.value == "ops_per_s"


def _is_latency(metric: Metric) -> bool:
    return metric.value not in ("ops_per_s", "stalls")


def _fmt(metric: Metric, v: float) -> str:
    if _is_latency(metric):
        return format_duration_ns(v)
    if _is_rate(metric):
        return f"{v:,.1f} ops/s"
    return f"{v:,.0f}"


def metric_value(b: BenchResult, metric: Metric) -> float:
    """The figure `metric` names from one measured workload (ns, ops/s or a count)."""
    lat = b.latency
    values = {
        "ops_per_s": b.ops_per_s, "mean": lat.mean_ns, "p50": float(lat.p50_ns), "p90": float(lat.p90_ns),
        "p99": float(lat.p99_ns), "p999": float(lat.p999_ns), "max": float(lat.max_ns),
        "stalls": float(b.stalls.count),
    }
    return values[metric.value]


def threshold_finding(t: Threshold, b: BenchResult) -> Finding:
    """One profile threshold held against one measured workload."""
    v = metric_value(b, t.metric)
    if _is_rate(t.metric):
        level = Level.FAIL if v < t.fail else Level.WARN if t.warn is not None and v < t.warn else Level.PASS
        limit = f"FAIL below {_fmt(t.metric, t.fail)}" + (
            f", WARN below {_fmt(t.metric, t.warn)}" if t.warn is not None else "")
    else:
        level = Level.FAIL if v >= t.fail else Level.WARN if t.warn is not None and v >= t.warn else Level.PASS
        limit = f"FAIL at {_fmt(t.metric, t.fail)} or more" + (
            f", WARN at {_fmt(t.metric, t.warn)} or more" if t.warn is not None else "")
    name = {"ops_per_s": "sync-write rate", "p999": "p99.9 latency", "stalls": "stalls"}.get(
        t.metric.value, f"{t.metric.value} latency")
    verb = {Level.PASS: "is within limits", Level.WARN: "is poor", Level.FAIL: "is too poor for this use"}[level]
    return Finding(
        rule=t.rule, level=level, title=f"{t.workload} {name} {_fmt(t.metric, v)} {verb}",
        measured=_fmt(t.metric, v), threshold=limit, reason=t.reason,
        advice=None if level is Level.PASS else t.advice, value=v,
        unit="ns" if _is_latency(t.metric) else "ops_per_s" if _is_rate(t.metric) else "count",
    )


_CLASS_WHY = {
    DeviceClass.USB: ("USB storage (sticks, SD readers, many USB-SATA bridges) lacks power-loss protection, "
                      "often gives under 50 syncs per second and wears out under pmxcfs's constant rewrites",
                      "install the system (or at least /var/lib/pve-cluster) on an internal SSD"),
    DeviceClass.SD: ("SD cards and eMMC are slow to sync, wear out quickly under constant small rewrites and have "
                     "no power-loss protection", "move /var/lib/pve-cluster to an SSD"),
    DeviceClass.RAM: ("no disk was measured: the path is on a RAM filesystem, where fsync returns at once "
                      "(mm/shmem.c noop_fsync); the figures say nothing about any disk and the state does not "
                      "survive a reboot", "run the verdict on the path that really holds the state "
                                          "(/var/lib/pve-cluster on a Proxmox VE node)"),
    DeviceClass.HDD: ("a spinning disk makes at most a few hundred syncs durable per second and its tail "
                      "latency grows under other load (VM disks, backups, scrubs)",
                      "move /var/lib/pve-cluster to an SSD, or keep VM and backup I/O off this disk"),
    DeviceClass.NETWORK_BLOCK: ("a network block device adds the network's round trip and its failures to every "
                                "sync; cluster state then depends on another system staying up",
                                "keep the cluster state on a local disk"),
    DeviceClass.NETWORK_FS: ("a network filesystem adds the network's round trip to every sync and ties the node "
                             "to a server", "keep the cluster state on a local disk"),
    DeviceClass.UNKNOWN: ("the device could not be classified, so its class-specific risks are unknown",
                          "run `fsyncprobe device PATH` and attach its --snapshot to a bug report"),
}


def device_findings(profile: Profile, device: DeviceReport | None, benches: tuple[BenchResult, ...]) -> list[Finding]:
    """Device class rules (USB/SD system disk: FAIL for a cluster node) and the no-disk case."""
    out: list[Finding] = []
    ram_fs = sorted({b.fstype for b in benches if b.fstype in RAM_FSTYPES})
    if device is None:
        if ram_fs:
            why, advice = _CLASS_WHY[DeviceClass.RAM]
            out.append(Finding(rule="no-disk", level=Level.FAIL, title=f"no disk was measured ({', '.join(ram_fs)})",
                               measured=", ".join(ram_fs), threshold="a block device must hold the path",
                               reason=why, advice=advice))
        else:
            out.append(Finding(rule="device-class", level=Level.WARN, title="the device could not be identified",
                               measured=None, threshold=None,
                               reason="without the device class, USB/SD system disks and lying caches go unnoticed",
                               advice="run `fsyncprobe device PATH` to see why"))
        return out
    cls = device.device_class
    level = (Level.FAIL if cls in profile.device_fail else Level.WARN if cls in profile.device_warn else Level.PASS)
    names = ", ".join(f"{leaf.name} ({leaf.device_class.value})" for leaf in device.leaves) or "no block device"
    why, advice = _CLASS_WHY.get(cls, ("this class of device is fit to hold cluster state", ""))
    rule = "no-disk" if cls is DeviceClass.RAM else "device-class"
    title = (f"no disk was measured: {device.mount.fstype} at {device.mount.mountpoint}" if cls is DeviceClass.RAM
             else f"{device.path} is on {cls.value} storage")
    limits = []
    if profile.device_fail:
        limits.append("FAIL: " + ", ".join(c.value for c in profile.device_fail))
    if profile.device_warn:
        limits.append("WARN: " + ", ".join(c.value for c in profile.device_warn))
    out.append(Finding(rule=rule, level=level, title=title,
                       measured=f"{cls.value} ({device.confidence.value} confidence; {names})",
                       threshold="; ".join(limits) or None, reason=why,
                       advice=None if level is Level.PASS else (advice or None)))
    return out


def impossible_rate_findings(device: DeviceReport | None, benches: tuple[BenchResult, ...]) -> list[Finding]:
    """Rates the medium cannot give: more durable syncs than a spinning disk can make, or far more
    syncs than the device saw write requests (a cache swallowing them)."""
    out: list[Finding] = []
    sync_benches = [b for b in benches if b.params.workload in SYNC_PER_OP_WORKLOADS and b.fstype not in RAM_FSTYPES]
    hdds = [leaf for leaf in (device.leaves if device else ()) if leaf.device_class is DeviceClass.HDD]
    # One finding per disk, from the fastest sync workload: the default profile runs pveperf's loop
    # twice (pveperf-durable and pveperf), and the same lie need not be told twice.
    fastest = max(sync_benches, key=lambda b: b.ops_per_s, default=None)
    for b in sync_benches:
        for leaf in hdds if b is fastest else ():
            if b.ops_per_s <= HDD_MAX_FLUSHES_PER_S:
                continue
            through = (leaf.write_cache or "").strip() == "write through"
            claim = ("write-through cache reported" if through else
                     f"write cache {leaf.write_cache or 'unknown'}")
            out.append(Finding(
                rule="impossible-rate", level=Level.FAIL if through else Level.WARN,
                title=(f"this disk lies about flushes: {claim} but {b.ops_per_s:,.0f} ops/s on an HDD is physically "
                       "impossible" if through else
                       f"{b.ops_per_s:,.0f} durable syncs/s is more than an HDD ({leaf.name}) can make"),
                measured=f"{b.ops_per_s:,.1f} ops/s ({b.params.workload.value}) on {leaf.name}",
                threshold=f"at most {HDD_MAX_FLUSHES_PER_S:,.0f} ops/s on a spinning disk (15,000 rpm, twice per turn)",
                reason=("a sync that returns faster than the platter turns was not made durable: a power cut loses "
                        "changes every node believes committed"
                        + ("" if through else "; a RAID controller with a battery-backed cache can do this honestly")),
                advice=("disable the drive's volatile write cache (hdparm -W0 /dev/X) or replace it; check the "
                        "controller's cache and battery"),
                value=b.ops_per_s, unit="ops_per_s"))
        mounted = [d for d in b.device_writes if d.role == "mounted"]
        if not mounted or b.device_ops < 100:
            continue
        writes = min(d.write_ops for d in mounted)
        ratio = writes / b.device_ops
        if ratio >= WRITES_PER_SYNC_WARN:
            continue
        dev = ", ".join(d.device for d in mounted)
        out.append(Finding(
            rule="syncs-without-writes", level=Level.FAIL if ratio < WRITES_PER_SYNC_FAIL else Level.WARN,
            title=f"{b.device_ops:,} syncs but only {writes:,} write requests reached {dev}",
            measured=f"{ratio:.2f} write requests per sync ({b.params.workload.value})",
            threshold=f"WARN below {WRITES_PER_SYNC_WARN}, FAIL below {WRITES_PER_SYNC_FAIL} requests per sync",
            reason=("each sync of new data must wait for at least one write to the device; far fewer writes mean a "
                    "layer above the disk (a virtual disk's cache, a loop device, a controller) acknowledges syncs "
                    "it has not made durable"),
            advice="check the hypervisor's disk cache mode (cache=none or writethrough) and the storage stack",
            value=ratio, unit="writes_per_sync"))
    return out


_DOUBTFUL_WRITE_THROUGH = (DeviceClass.USB, DeviceClass.SD, DeviceClass.HDD, DeviceClass.UNKNOWN)
"""Leaves whose `write through` claim is doubtful: USB bridges, SD cards and spinning disks keep volatile
caches, and an unknown device's claim cannot be weighed."""

PVE_PLP_SOURCE = "https://pve.proxmox.com/wiki/System_Requirements"
"""Proxmox VE's system requirements: enterprise-class SSDs with power-loss protection are recommended."""


def flush_findings(device: DeviceReport | None, benches: tuple[BenchResult, ...]) -> list[Finding]:
    """Flushes per sync (a write-back device that receives far fewer flushes than syncs; a write-through
    device the kernel sends none) and each leaf's power-loss-protection hint (`fsyncprobe.verdict.plp`)."""
    out: list[Finding] = []
    leaves = {leaf.name: leaf for leaf in (device.leaves if device else ())}
    sync_benches = [b for b in benches if b.params.workload in SYNC_PER_OP_WORKLOADS
                    and b.fstype not in RAM_FSTYPES and b.device_ops >= 100]
    for b in sync_benches:
        wl = b.params.workload.value
        # A write-through device the kernel sends no flushes stops them for everything under it too
        # (a loop device then never syncs its backing file): the write-through finding says so.
        stopped = any((d.write_cache or "").strip() == "write through" and d.flush_ops == 0 for d in b.device_writes)
        for d in b.device_writes:
            per = plp.flushes_per_sync(d, b.device_ops)
            if per is None:
                continue
            cache = (d.write_cache or "").strip()
            if cache == "write back" and per < plp.FLUSHES_PER_SYNC_WARN and not stopped:
                out.append(Finding(
                    rule="flushes-per-sync", level=Level.FAIL if per < plp.FLUSHES_PER_SYNC_FAIL else Level.WARN,
                    title=(f"{b.device_ops:,} syncs but only {d.flush_ops:,} flushes reached {d.device} "
                           "(write-back cache)"),
                    measured=f"{per:.2f} flushes per sync ({wl}) on {d.device}",
                    threshold=f"WARN below {plp.FLUSHES_PER_SYNC_WARN}, FAIL below {plp.FLUSHES_PER_SYNC_FAIL} "
                              "flushes per sync",
                    reason=("a sync reaches a device with a volatile write cache as a flush "
                            "(Documentation/block/writeback_cache_control.rst); far fewer flushes mean a layer between "
                            "the filesystem and the device drops them (a nobarrier/barrier=0 mount, a layer that "
                            "acknowledges flushes itself), so a power cut loses changes every node believes committed"),
                    advice="remove nobarrier/barrier=0 from the mount options; check every layer of the storage stack",
                    value=per, unit="flushes_per_sync"))
            elif cache == "write through" and d.flush_ops == 0:
                leaf = leaves.get(d.device)
                logical = leaf is None
                doubtful = logical or (leaf is not None and leaf.device_class in _DOUBTFUL_WRITE_THROUGH)
                if logical:
                    why = (f"; {d.device} is not a physical drive (a loop or device-mapper device), so it never "
                           "flushes the storage under it either: syncs on it are not durable")
                    advice: str | None = (f"give it back its write-back mode (echo 'write back' > "
                                          f"/sys/block/{d.device}/queue/write_cache) so the kernel flushes it")
                elif doubtful:
                    why = "; a USB, SD or spinning drive that says so may be misreporting a volatile cache"
                    advice = "check that the drive really has no volatile cache, or restore write back"
                elif leaf is not None and leaf.device_class is DeviceClass.VIRTUAL:
                    why = ("; a virtual disk says so when the hypervisor writes every request through to the host's "
                           "storage (QEMU cache=writethrough or directsync)")
                    advice = None
                else:
                    why = "; drives with power-loss protection say so honestly"
                    advice = None
                out.append(Finding(
                    rule="flushes-write-through", level=Level.WARN if doubtful else Level.PASS,
                    title=f"the kernel sent no flushes to {d.device}: it says its cache is write through",
                    measured=f"0 flushes during {b.device_ops:,} syncs ({wl}); queue/write_cache = write through",
                    threshold="a write-back device receives a flush per sync, a write-through one none",
                    reason=("each sync ends when its write completes, without a flush: its durability rests on the "
                            "device's claim that it keeps no volatile cache" + why),
                    advice=advice, value=0.0, unit="flushes_per_sync"))
    b0 = sync_benches[0] if sync_benches else None
    for leaf in leaves.values():
        if b0 is None:
            break
        writes = next((d for d in b0.device_writes if d.device == leaf.name), None)
        a = plp.assess(leaf, writes, b0, b0.device_ops)
        if a.hint is plp.PlpHint.NOT_APPLICABLE:
            continue
        mean = plp.mean_flush_ns(writes) if writes else None
        # WARN only on measured flush latency; the sync rate alone (no flush counters) is weaker evidence.
        measured_no_plp = a.hint is plp.PlpHint.NO_PLP and mean is not None
        out.append(Finding(
            rule="power-loss-protection", level=Level.WARN if measured_no_plp else Level.PASS,
            title=f"{leaf.name}: {a.summary}", measured="; ".join(a.evidence[:-1]),
            threshold=(f"consistent with PLP: write through, or flushes within "
                       f"{format_duration_ns(plp.PLP_FLUSH_MAX_NS)}; no PLP: flushes of "
                       f"{format_duration_ns(plp.NO_PLP_FLUSH_MIN_NS)} or more (without flush counters, under "
                       f"{plp.NO_PLP_SYNC_RATE_MAX:,.0f} syncs/s)"),
            reason=(f"Proxmox VE recommends SSDs with power-loss protection ({PVE_PLP_SOURCE}): without it a power "
                    f"cut can lose what the cluster believes committed; a hint, not proof: {plp.PROOF}"),
            advice=("hold /var/lib/pve-cluster on an SSD with power-loss protection (a data-centre model)"
                    if measured_no_plp else None),
            value=mean, unit="ns" if mean is not None else None))
    return out


def model_findings(model: ModelReport, benches: tuple[BenchResult, ...], node: str | None = None) -> list[Finding]:
    """The token-ring model's conclusions as findings: HA ceiling, false-loss rate against the
    target, and the sync tail against the stall tolerance (the token budget)."""
    out: list[Finding] = []
    ha = model.ha_ceiling
    out.append(Finding(
        rule="ha-ceiling", level=Level.PASS if ha.ok else Level.FAIL,
        title=("HA can recover before the watchdog fires" if ha.ok else
               "HA recovery may not finish before the 60 s watchdog: nodes may self-fence"),
        measured=f"{ha.total_ms / 1000:,.1f} s (includes commit p99.9 {ha.commit_p999_ms:,.0f} ms)",
        threshold=f"under {ha.watchdog_ms / 1000:,.0f} s watchdog minus {ha.margin_ms / 1000:,.0f} s margin",
        reason=("HA path: the LRM renews its watchdog only after its lock write to pmxcfs succeeds; detection, "
                "re-formation, the LRM loop, the lock retry and a slow commit must all fit under the watchdog"),
        advice=None if ha.ok else "lower totem.token or the node count, or move /var/lib/pve-cluster to an SSD",
        value=ha.headroom_ms, unit="ms", node=node))
    rate = model.false_losses_per_year
    target = 1.0 / model.target_years_per_false_loss
    level = Level.PASS if rate <= target else Level.FAIL if rate > 1.0 else Level.WARN
    per = format_rate_per_year(rate)
    answers = model.answers
    beyond = ""
    if answers is not None and not answers.evidence.covered and any(
            nm.extrapolated for nm in model.node_models if not nm.assumed):
        beyond = (f"; the fitted tail's estimate from {format_seconds(answers.evidence.observed_s)} of "
                  f"{answers.evidence.kind} stalls, not an observed rate")
    # The advice never names a token below the configured one unless the evidence covers it.
    setting = answers.token_min_setting_ms if answers is not None else model.min_safe_token_setting_ms
    out.append(Finding(
        rule="false-membership-changes", level=level,
        title=f"expected false membership changes of a {model.nodes}-node ring: {per}",
        measured=f"{per} (stall tolerance {model.stall_tolerance_ms:,.0f} ms, bound by "
                 f"{model.stall_tolerance_bound_by}; bottleneck {model.bottleneck_node or '—'}){beyond}",
        threshold=f"WARN above 1 per {model.target_years_per_false_loss:g} years, FAIL above 1 per year",
        reason=("corosync scheduling path: heavy host I/O can keep corosync from running (corosync issue 520); "
                "a node silent longer than the stall tolerance is dropped and the ring re-forms"),
        advice=None if level is Level.PASS else (
            "raise totem.token to at least the model's minimum safe token"
            + (f" ({setting:,.0f} ms)" if setting else "")
            + ", or take I/O load off the node's system disk"),
        value=rate, unit="per_year", node=node))
    sync = [b for b in benches if b.params.workload in SYNC_PER_OP_WORKLOADS]
    if sync:
        worst_b = max(sync, key=lambda b: b.latency.p999_ns)
        p999_ms = worst_b.latency.p999_ns / 1e6
        tol = model.stall_tolerance_ms
        level = Level.WARN if p999_ms >= tol else Level.PASS
        out.append(Finding(
            rule="sync-tail-vs-token", level=level,
            title=f"sync p99.9 {format_duration_ns(worst_b.latency.p999_ns)} against a stall tolerance "
                  f"of {tol:,.0f} ms",
            measured=f"{format_duration_ns(worst_b.latency.p999_ns)} ({worst_b.params.run_name} p99.9)",
            threshold=f"WARN at the stall tolerance ({tol:,.0f} ms) or more",
            reason=("folk path only (coupling 1): corosync forwards the token before delivering to pmxcfs and never "
                    "waits for it (exec/totemsrp.c, exec/ipc_glue.c), so a slow sync alone does not drop a node; "
                    "WARN at most"),
            advice=None if level is Level.PASS else "move /var/lib/pve-cluster to an SSD",
            value=worst_b.latency.p999_ns, unit="ns", node=node))
    out += ring_id_findings(model, node)
    return out


def _pct(p: float) -> str:
    return f"{p * 100:.2g} %" if p < 0.1 else f"{p * 100:.0f} %"


def ring_id_findings(model: ModelReport, node: str | None = None) -> list[Finding]:
    """corosync's ring-id write (exec/main.c `corosync_ring_id_store`) against the token bound:
    FAIL when a measured write outlasted it, WARN from `RING_ID_WARN_FRACTION` of it; the chance
    that a membership change is followed by another, with its exact interval (ring/ringid.py)."""
    r = model.ring_id_store
    if r is None:
        return []
    tol = r.tolerance_ms
    level = (Level.FAIL if r.over_tolerance else
             Level.WARN if r.max_ms >= RING_ID_WARN_FRACTION * tol else Level.PASS)
    where = ", ".join(r.state_dirs) or "the state dir"
    pct = int(r.confidence_level * 100)
    cascade = ("" if r.extra_reformations_per_change is None or not r.over_tolerance else
               f"; {r.extra_reformations_per_change:.2g} further re-formations per membership change")
    return [Finding(
        rule="ring-id-write", level=level,
        title=f"corosync's ring-id write in {where}: slowest {r.max_ms:,.1f} ms against the token bound "
              f"of {tol:,.0f} ms",
        measured=(f"{r.over_tolerance} of {r.samples} writes over {tol:,.0f} ms (p99 {r.p99_ms:,.1f} ms); a membership "
                  f"change of the {model.nodes}-node ring is followed by another with P "
                  + (f"at most {_pct(r.change_probability_high)} ({pct} % upper end: {r.samples} writes cannot rule "
                     "out more)" if not r.over_tolerance else
                     f"= {_pct(r.change_probability)} ({pct} %: {_pct(r.change_probability_low)} to "
                     f"{_pct(r.change_probability_high)})") + cascade),
        threshold=(f"FAIL when a write outlasts the token bound ({tol:,.0f} ms, bound by {r.tolerance_bound_by}), "
                   f"WARN at {RING_ID_WARN_FRACTION:.0%} of it"),
        reason=("corosync's own disk path: at every new membership corosync stores the ring id in "
                "<state_dir>/ringid_<nodeid> from its main thread while it holds the commit token (exec/main.c "
                "corosync_ring_id_store: creat, an 8-byte write, close; called by exec/totemsrp.c "
                "memb_state_commit_enter); a write that blocks past the token bound lets the others' token timers "
                "expire, the ring forms again and writes again (corosync issue 520: a 4.687 s write, then \"main "
                "process was not scheduled for 4987 ms\")"),
        advice=None if level is Level.PASS else (
            "keep corosync's state dir (system.state_dir, default /var/lib/corosync) on a disk free of VM and backup "
            "I/O, or take that load off this disk"),
        value=r.max_ms * 1e6, unit="ns", node=node)]


def background_findings(benches: tuple[BenchResult, ...]) -> list[Finding]:
    """Each run under a background writer (`--background-write`, a profile's `background_write`)
    beside the same workload's run without it: the p99 with and without, so the verdict names the
    load its figures were measured under. PASS: the profile's thresholds judge the loaded runs."""
    out: list[Finding] = []
    for b in benches:
        spec, bw = b.params.background_write, b.background_write
        if spec is None:
            continue
        same = (b.params.workload, b.params.sync, b.params.block_size_bytes)
        alone = next((a for a in benches if a.params.background_write is None
                      and (a.params.workload, a.params.sync, a.params.block_size_bytes) == same), None)
        p99 = b.latency.p99_ns
        wl = b.params.workload.value
        asked = "max" if spec.rate_bytes_per_s is None else f"{format_size(spec.rate_bytes_per_s)}/s"
        got = (f"{format_size(bw.written_bytes_per_s)}/s" if bw is not None else "no result from the writer")
        measured = f"p99 {format_duration_ns(p99)} with the writer ({got}, asked {asked})"
        title = f"{wl} p99 {format_duration_ns(p99)} under a backup-like background writer ({got})"
        if alone is not None:
            p99_alone = alone.latency.p99_ns
            ratio = f" ({p99 / p99_alone:.1f}x)" if p99_alone > 0 else ""
            measured += f", {format_duration_ns(p99_alone)} without{ratio}"
            title += f", {format_duration_ns(p99_alone)} without it{ratio}"
        if bw is not None and bw.dirty_max_bytes is not None:
            measured += f"; system Dirty up to {format_size(bw.dirty_max_bytes)}"
        out.append(Finding(
            rule="background-write", level=Level.PASS, title=title, measured=measured,
            threshold="none here: the profile's thresholds judge the loaded runs",
            reason=("a backup (vzdump) or a VM disk on the system disk fills the page cache with dirty data; the "
                    "kernel's writeback of it and the journal commits it brings hold the disk while pmxcfs syncs "
                    "(mm/page-writeback.c): the figures under the writer are what the cluster meets then"),
            advice=None, value=float(p99), unit="ns"))
    return out


def gate_findings(gates: Gates, benches: tuple[BenchResult, ...]) -> list[Finding]:
    """`--min-ops` (every closed-loop run) and `--max-p99` (every run) must be met."""
    out: list[Finding] = []
    for b in benches:
        wl = b.params.run_name
        # A paced run makes the rate it was asked for (or less): its rate says nothing of what the
        # disk could do back to back, so --min-ops reads only the closed-loop runs.
        if gates.min_ops_per_s is not None and b.params.rate_per_s is None:
            ok = b.ops_per_s >= gates.min_ops_per_s
            out.append(Finding(
                rule="gate-min-ops", level=Level.PASS if ok else Level.FAIL,
                title=f"{wl} rate {b.ops_per_s:,.1f} ops/s {'meets' if ok else 'is below'} --min-ops",
                measured=f"{b.ops_per_s:,.1f} ops/s", threshold=f"at least {gates.min_ops_per_s:,.0f} ops/s",
                reason="a CI gate given on the command line", advice=None if ok else "see the other findings",
                value=b.ops_per_s, unit="ops_per_s"))
        if gates.max_p99_ns is not None:
            ok = b.latency.p99_ns < gates.max_p99_ns
            out.append(Finding(
                rule="gate-max-p99", level=Level.PASS if ok else Level.FAIL,
                title=f"{wl} p99 {format_duration_ns(b.latency.p99_ns)} {'meets' if ok else 'exceeds'} --max-p99",
                measured=format_duration_ns(b.latency.p99_ns),
                threshold=f"under {format_duration_ns(gates.max_p99_ns)}",
                reason="a CI gate given on the command line", advice=None if ok else "see the other findings",
                value=float(b.latency.p99_ns), unit="ns"))
    return out


def paced_findings(b: BenchResult) -> list[Finding]:
    """A paced run whose disk did not keep up with the rate: its syncs were not isolated ones."""
    p = b.pacing
    if p is None or not p.late_ops:
        return []
    return [Finding(
        rule="paced-late", level=Level.WARN,
        title=f"{b.params.run_name}: {p.late_ops:,} of {b.ops:,} operations started late at {p.rate_per_s:g}/s",
        measured=f"{p.late_ops:,} late, schedule lag up to {format_duration_ns(p.lag.max_ns)}",
        threshold="none late: each operation due every " + format_duration_ns(p.interval_ns),
        reason="the operation before was still running when the next fell due, so the disk cannot keep up with "
               "this rate and the run measured queued syncs, not isolated ones",
        advice="find what slows this disk (the other findings), or run at a lower rate",
        value=float(p.late_ops), unit="count")]


def node_findings(profile: Profile, benches: tuple[BenchResult, ...], device: DeviceReport | None,
                  gates: Gates = Gates()) -> list[Finding]:
    """Every rule that reads one node alone: thresholds, device, impossible rates, gates."""
    out: list[Finding] = []
    for t in profile.thresholds:
        b = next((b for b in benches if b.params.run_name == t.workload), None)
        if b is None:
            out.append(Finding(rule=t.rule, level=Level.WARN, title=f"{t.workload} was not measured",
                               measured=None, threshold=None, reason=t.reason,
                               advice=f"run the {t.workload} workload (the profile's [[workload]]s)"))
        else:
            out.append(threshold_finding(t, b))
    for b in benches:
        if b.partial:
            out.append(Finding(rule="partial-run", level=Level.WARN,
                               title=f"{b.params.run_name} run was cut short",
                               measured=b.partial_reason, threshold=None,
                               reason="the figures cover only what ran", advice="run again"))
        out += paced_findings(b)
    out += device_findings(profile, device, benches)
    out += impossible_rate_findings(device, benches)
    out += flush_findings(device, benches)
    out += gate_findings(gates, benches)
    out += background_findings(benches)
    return out


def sort_findings(findings: list[Finding]) -> tuple[Finding, ...]:
    """Worst first; stable otherwise."""
    return tuple(sorted(findings, key=lambda f: -f.level.rank))


def evaluate(profile: Profile, benches: tuple[BenchResult, ...], device: DeviceReport | None,
             model: ModelReport | None, gates: Gates = Gates(), model_missing_reason: str | None = None) -> Verdict:
    """The verdict of one node: the worst of every finding."""
    findings = node_findings(profile, benches, device, gates)
    if model is not None:
        findings += model_findings(model, benches)
    elif profile.model:
        findings.append(Finding(rule="model", level=Level.WARN, title="the token-ring model did not run",
                                measured=None, threshold=None,
                                reason=model_missing_reason or "no measurement to model",
                                advice="see the warnings"))
    ordered = sort_findings(findings)
    return Verdict(level=worst([f.level for f in ordered]), profile=profile.name, findings=ordered,
                   strict=gates.strict)


def evaluate_cluster(profile: Profile, nodes: Sequence[tuple[str, str, tuple[BenchResult, ...], DeviceReport | None]],
                     model: ModelReport | None, gates: Gates = Gates()) -> Verdict:
    """One verdict for a ring: each node's own findings (tagged with its name), the ring model's
    findings, and the node that holds the ring back (the worst level; among equals, the model's
    bottleneck, then the slowest sync rate)."""
    findings: list[Finding] = []
    node_verdicts: list[NodeVerdict] = []
    rank: list[tuple[int, int, float, str]] = []
    for hostname, source, benches, device in nodes:
        own = [replace(f, node=hostname) for f in node_findings(profile, benches, device, gates)]
        lv = worst([f.level for f in own])
        findings += own
        node_verdicts.append(NodeVerdict(hostname=hostname, level=lv, source=source))
        sync = [b.ops_per_s for b in benches if b.params.workload in SYNC_PER_OP_WORKLOADS] or \
               [b.ops_per_s for b in benches] or [0.0]
        is_model_bottleneck = int(model is not None and model.bottleneck_node == hostname
                                  and model.false_losses_per_year > 0)
        rank.append((lv.rank, is_model_bottleneck, -min(sync), hostname))
    if model is not None:
        all_benches = tuple(b for _, _, bs, _ in nodes for b in bs)
        findings += [replace(f, node="ring") for f in model_findings(model, all_benches)]
    bottleneck = max(rank)[3] if rank else None
    ordered = sort_findings(findings)
    return Verdict(level=worst([f.level for f in ordered]), profile=profile.name, findings=ordered,
                   strict=gates.strict, nodes=tuple(node_verdicts), bottleneck_node=bottleneck)


def exit_code(verdict: Verdict) -> int:
    """0 PASS/WARN, 1 FAIL (and WARN with --strict)."""
    if verdict.level is Level.FAIL or (verdict.strict and verdict.level is Level.WARN):
        return 1
    return 0
