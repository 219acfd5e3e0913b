"""Write the man page fsyncprobe(1) to stdout, made from the command line's own click help.

Run at package build time (debian/rules), so the page always says what the installed `--help`
says: `python3 tools/manpage.py > fsyncprobe.1`. One page for the tool and every subcommand, in
the man(7) macros that groff and mandoc both render (man-pages(7), "Sections within a manual
page"). The date comes from SOURCE_DATE_EPOCH when set (reproducible builds), so a rebuild of
the same source gives the same page.
"""

from __future__ import annotations

import datetime
import os
import sys

import click

from fsyncprobe import __version__
from fsyncprobe.cli import main


def roff(text: str) -> str:
    """Text as roff: backslashes and hyphens escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines())


def paragraphs(text: str) -> list[str]:
    """A click help text's paragraphs, each joined to one line (click's `\\b` marks a verbatim block)."""
    out = []
    for block in click.unstyle(text).split("\n\n"):
        lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip() != "\b"]
        if lines:
            out.append(" ".join(lines))
    return out


def options(cmd: click.Command, ctx: click.Context) -> list[str]:
    """`.TP` entries for a command's options, as click formats them for --help."""
    out = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        out += [".TP", f"\\fB{roff(names)}\\fR", roff(help_text) if help_text else ""]
    return out


def usage(cmd: click.Command, ctx: click.Context) -> str:
    return roff(" ".join(cmd.collect_usage_pieces(ctx)))


def page() -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
    when = datetime.datetime.fromtimestamp(epoch, datetime.UTC) if epoch else datetime.datetime.now(datetime.UTC)
    root = click.Context(main, info_name="fsyncprobe", **main.context_settings)
    intro = paragraphs(main.help or "")
    lines = [
        f'.TH FSYNCPROBE 1 "{when:%Y-%m-%d}" "fsyncprobe {__version__}" "User Commands"',
        ".SH NAME",
        f"fsyncprobe \\- {roff(intro[0])}",
        ".SH SYNOPSIS",
        "\\fBfsyncprobe\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
    ]
    for para in intro[1:]:
        lines += [roff(para), ".PP"]
    lines += [".SH OPTIONS", *options(main, root), ".SH COMMANDS"]
    for name in main.list_commands(root):
        cmd = main.get_command(root, name)
        if cmd is None or cmd.hidden:
            continue
        ctx = click.Context(cmd, info_name=name, parent=root)
        lines += [f".SS fsyncprobe {roff(name)} {usage(cmd, ctx)}"]
        for para in paragraphs(cmd.help or ""):
            lines += [roff(para), ".PP"]
        lines += options(cmd, ctx)
    lines += [
        ".SH EXIT STATUS",
        "0 PASS or WARN; 1 FAIL (and WARN with \\fB\\-\\-strict\\fR); 2 usage error; 3 could not measure.",
        ".SH FILES",
        ".TP",
        "/usr/lib/python3/dist\\-packages/fsyncprobe/verdict/profiles/*.toml",
        "The shipped verdict profiles (\\fB\\-\\-profile\\fR NAME).",
        ".TP",
        "/usr/lib/python3/dist\\-packages/fsyncprobe/report/schema.json",
        "The JSON Schema of the \\fB\\-\\-json\\fR report.",
        ".SH SEE ALSO",
        "\\fBcorosync.conf\\fR(5), \\fBfsync\\fR(2), \\fBpveperf\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(page())
