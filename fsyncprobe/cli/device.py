"""`fsyncprobe device PATH`: the device stack behind a path, its class and the evidence."""

from __future__ import annotations

import click

from fsyncprobe import device as devices
from fsyncprobe.cli import main
from fsyncprobe.cli.bench import new_report
from fsyncprobe.cli.common import (
    FsyncprobeOutputError,
    OutputFormat,
    handle_errors,
    output_options,
    resolve_format,
    warn,
    write_output,
)
from fsyncprobe.device.classify import classify
from fsyncprobe.errors import UsageError
from fsyncprobe.render import render


@main.command("device")
@click.argument("path", required=False, default=None)
@click.option("--snapshot", "snapshot_file", metavar="FILE",
              help="Also save the raw facts to FILE (JSON), e.g. to attach to a bug report.")
@click.option("--from-snapshot", "from_snapshot", metavar="FILE",
              help="Classify facts saved with --snapshot instead of looking at this machine.")
@output_options((OutputFormat.TABLE, OutputFormat.JSON, OutputFormat.MARKDOWN))
@handle_errors
def device(
    path: str | None, snapshot_file: str | None, from_snapshot: str | None, fmt: str | None, as_json: bool,
    output: str, quiet: bool, no_progress: bool,
) -> None:
    """Show what really holds PATH (default /var/lib): mount, stack, physical leaves, class, evidence.

    Resolves partitions, LVM/LUKS/multipath, md RAID, loop files, btrfs and ZFS pools and
    overlayfs down to the physical devices; the path's class is the worst leaf's.
    """
    out_format = resolve_format(fmt, as_json)
    if from_snapshot is not None:
        if path is not None or snapshot_file is not None:
            raise UsageError("--from-snapshot classifies saved facts: give no PATH and no --snapshot with it")
        report_device = devices.from_snapshot_file(from_snapshot)
        where = report_device.path
    else:
        where = path or "/var/lib"
        snap = devices.snapshot(where)
        if snapshot_file is not None:
            if snapshot_file == "-" and output == "-":
                raise UsageError("--snapshot - and the report would both go to stdout: give --output FILE")
            try:
                write_output(devices.snapshot_json(snap), snapshot_file)
            except FsyncprobeOutputError as exc:
                # write_output names --output; here the file was the snapshot's
                raise FsyncprobeOutputError(str(exc).replace("--output", "--snapshot", 1)) from None
        report_device = classify(snap)
    for w in report_device.warnings:
        warn(w, quiet)
    write_output(render(new_report("device", where, device=report_device), out_format.value), output)
