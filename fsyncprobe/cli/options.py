"""Options more than one command takes, and the click callbacks that parse sizes and durations.

Parsing only: each option's value is checked here and handed on; what it means is the core's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from fsyncprobe.pipeline import RingIdOptions, RingOptions
from fsyncprobe.render import Format
from fsyncprobe.ring.model import MAX_NODES_SEARCHED
from fsyncprobe.units import format_duration_ns, format_size, parse_duration_ns, parse_size

F = TypeVar("F", bound=Callable[..., Any])


def output_options(formats: tuple[Format, ...] = tuple(Format)) -> Callable[[F], F]:
    """`--format/--json/--output/--quiet/--no-progress`, the options every command takes."""

    def deco(fn: F) -> F:
        fn = click.option(
            "--no-progress", is_flag=True, help="No progress bar on stderr (off anyway when stderr is not a terminal)."
        )(fn)
        fn = click.option("--quiet", "-q", is_flag=True, help="No progress and no warnings on stderr.")(fn)
        fn = click.option(
            "--output", "-o", "output", default="-", metavar="FILE",
            help="Write the report to FILE (`-` = stdout, the default). Written atomically.",
        )(fn)
        fn = click.option(
            "--json", "as_json", is_flag=True, help="Same as --format json."
        )(fn)
        fn = click.option(
            "--format", "-f", "fmt", type=click.Choice([f.value for f in formats]), default=None,
            help="Report format (default: table).",
        )(fn)
        return fn

    return deco


def resolve_format(fmt: str | None, as_json: bool) -> Format:
    """Combine --format and --json; both at once must agree."""
    if as_json and fmt not in (None, Format.JSON.value):
        raise click.UsageError(f"--json conflicts with --format {fmt}")
    if as_json:
        return Format.JSON
    return Format(fmt) if fmt else Format.TABLE


Callback = Callable[[click.Context, click.Parameter, str | None], int | None]


def size_option(name: str, minimum: int, maximum: int) -> Callback:
    """A click callback that parses a size and checks it against [minimum, maximum]."""
    def cb(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            n = parse_size(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if not minimum <= n <= maximum:
            raise click.BadParameter(
                f"{value} is out of range: accepted {format_size(minimum)} to {format_size(maximum)}"
            )
        return n

    return cb


def duration_option(minimum_ns: int, maximum_ns: int) -> Callback:
    """A click callback that parses a duration and checks it against [minimum, maximum]."""
    def cb(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        accepted = f"accepted {format_duration_ns(minimum_ns)} to {format_duration_ns(maximum_ns)}"
        if value.strip().startswith("-"):
            raise click.BadParameter(f"{value} is negative: {accepted}")
        try:
            n = parse_duration_ns(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if not minimum_ns <= n <= maximum_ns:
            raise click.BadParameter(f"{value} is out of range: {accepted}")
        return n

    return cb


def rate_option(minimum: float, maximum: float) -> Callable[[click.Context, click.Parameter, str | None], float | None]:
    """A click callback that parses a rate in operations per second (a plain number) and checks it."""
    def cb(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        accepted = f"accepted {minimum:g} to {maximum:g} operations per second"
        try:
            n = float(value.strip().removesuffix("/s"))
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number: {accepted}, e.g. 5 or 0.5") from None
        if not minimum <= n <= maximum:  # also rejects nan; inf is above the maximum
            raise click.BadParameter(f"{value} is out of range: {accepted}")
        return n

    return cb


def ring_options(fn: F) -> F:
    """Token-ring settings shared by `verdict` and `cluster` (see `fsyncprobe model --help`)."""
    opts = [
        click.option("--nodes", type=click.IntRange(2, MAX_NODES_SEARCHED), default=None,
                     help="Nodes in the ring (default: corosync.conf, else 3 for verdict, the reports for cluster)."),
        click.option("--token", "token_ms", type=click.FloatRange(min=1, max=600_000), default=None, metavar="MS",
                     help="totem.token in ms (default: corosync.conf, else 3000)."),
        click.option("--corosync-conf", "conf_path", default=None, metavar="FILE",
                     help="Read totem settings from FILE (default: /etc/pve/corosync.conf or "
                          "/etc/corosync/corosync.conf when present)."),
        click.option("--no-corosync-conf", is_flag=True, help="Do not read any corosync.conf."),
        click.option("--no-live-ring", is_flag=True,
                     help="Do not ask a running corosync (corosync-cmapctl) for its timers, members and link "
                          "latency (default: asked when it runs; its values beat corosync.conf's)."),
        click.option("--coupling", type=click.FloatRange(min=0, max=1000), default=None, metavar="K",
                     help="Model stalls as K x sync latency too (0 = source view, 1 = folk worst case)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def ring_settings(nodes: int | None, token_ms: float | None, conf_path: str | None, no_corosync_conf: bool,
                  coupling: float | None, no_live_ring: bool = False) -> RingOptions:
    """The values of `ring_options` as the pipeline takes them."""
    return RingOptions(nodes=nodes, token_ms=token_ms, conf_path=conf_path, read_conf=not no_corosync_conf,
                       coupling=coupling, live_ring=not no_live_ring)


def ring_id_options(fn: F) -> F:
    """`--ring-id/--no-ring-id` and `--state-dir`: corosync's ring-id write beside the workloads."""
    opts = [
        click.option("--ring-id/--no-ring-id", "ring_id", default=True, show_default=True,
                     help="Time corosync's ring-id write (creat + 8-byte write + close, as at every new "
                          "membership) a few times a second beside the workloads, in a private temp dir on "
                          "the filesystem of corosync's state dir."),
        click.option("--state-dir", "state_dir", default=None, metavar="DIR",
                     help="corosync's state dir (default: system.state_dir of corosync.conf, else "
                          "/var/lib/corosync when it exists, else PATH)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def ring_id_settings(ring_id: bool, state_dir: str | None) -> RingIdOptions:
    """The values of `ring_id_options` as the pipeline takes them."""
    if state_dir is not None and not ring_id:
        raise click.UsageError("--state-dir conflicts with --no-ring-id")
    return RingIdOptions(enabled=ring_id, state_dir=state_dir)


def gate_options(fn: F) -> F:
    """`--min-ops`, `--max-p99`, `--strict`."""
    opts = [
        click.option("--min-ops", type=click.FloatRange(min=0), default=None, metavar="N",
                     help="FAIL when any measured workload gives fewer than N ops/s (paced runs excepted)."),
        click.option("--max-p99", callback=duration_option(1_000, 3_600_000_000_000), default=None, metavar="TIME",
                     help="FAIL when any measured workload's p99 is TIME or more, e.g. 10ms."),
        click.option("--strict", is_flag=True, help="A WARN fails too (exit 1)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def allow_concurrent_option(fn: F) -> F:
    """`--allow-concurrent`: measure even while another run holds the node's lock."""
    return click.option(
        "--allow-concurrent", is_flag=True,
        help="Measure even while another fsyncprobe run measures on this node (both figures suffer). "
             "Without it a second run exits 3 naming the first.",
    )(fn)
