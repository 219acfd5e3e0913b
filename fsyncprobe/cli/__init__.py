"""The command line: parse, call the core, render, map errors to exit codes. Nothing else.

Each command lives in its own module here; `main` adds them. A command module never imports
`main` or another command's module, so the package's imports form no cycle.
"""

from __future__ import annotations

import click

from fsyncprobe import __version__
from fsyncprobe.cli import bench, cluster, device, model, verdict, watch
from fsyncprobe.cli.errors import OneLineErrorGroup


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fsyncprobe")
def main() -> None:
    """Is this node's disk fit to hold cluster state?

    Measures sync-write rate and latency on the disk that really holds a path, says what that
    disk is, and turns the numbers into Corosync token-ring consequences.

    Exit codes: 0 PASS/WARN, 1 FAIL, 2 usage error, 3 could not measure.
    """


for _command in (bench.bench, device.device, model.model, verdict.verdict, cluster.cluster, watch.watch):
    main.add_command(_command)

__all__ = ["main"]
