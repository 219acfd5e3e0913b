"""`fsyncprobe device PATH`: the device stack behind a path, its class and the evidence."""

from __future__ import annotations

import click

from fsyncprobe import pipeline
from fsyncprobe.cli.errors import handle_errors
from fsyncprobe.cli.options import output_options, resolve_format
from fsyncprobe.cli.output import FsyncprobeOutputError, emit, feedback, write_output
from fsyncprobe.errors import UsageError
from fsyncprobe.render import Format


@click.command("device")
@click.argument("path", required=False, default=None)
@click.option("--snapshot", "snapshot_file", metavar="FILE",
              help="Also save the raw facts to FILE (JSON), e.g. to attach to a bug report.")
@click.option("--from-snapshot", "from_snapshot", metavar="FILE",
              help="Classify facts saved with --snapshot instead of looking at this machine.")
@output_options((Format.TABLE, Format.JSON, Format.MARKDOWN))
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
    if snapshot_file == "-" and output == "-" and from_snapshot is None:
        raise UsageError("--snapshot - and the report would both go to stdout: give --output FILE")

    def save(text: str) -> None:
        assert snapshot_file is not None
        try:
            write_output(text, snapshot_file)
        except FsyncprobeOutputError as exc:
            # write_output names --output; here the file was the snapshot's
            raise FsyncprobeOutputError(str(exc).replace("--output", "--snapshot", 1)) from None

    with feedback(quiet, no_progress) as fb:
        report = pipeline.device(path, from_snapshot, save if snapshot_file is not None else None, fb)
    emit(report, out_format, output)
