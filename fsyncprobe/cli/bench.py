"""`fsyncprobe bench PATH`: measure one sync-write workload."""

from __future__ import annotations

import click

from fsyncprobe import pipeline
from fsyncprobe.cli.errors import handle_errors
from fsyncprobe.cli.options import (
    allow_concurrent_option,
    duration_option,
    output_options,
    rate_option,
    resolve_format,
    ring_id_options,
    ring_id_settings,
    size_option,
)
from fsyncprobe.cli.output import emit, feedback
from fsyncprobe.errors import UsageError
from fsyncprobe.measure.background import parse_rate
from fsyncprobe.measure.pacing import MAX_RATE_PER_S, MIN_RATE_PER_S
from fsyncprobe.measure.types import BackgroundWrite, BenchParams, SyncMethod, Workload
from fsyncprobe.measure.workloads import default_block_size
from fsyncprobe.render import Format
from fsyncprobe.units import format_size

MAX_FILE_SIZE = 1 << 40  # 1 TiB: beyond that a typo is likelier than a plan
MAX_BLOCK_SIZE = 64 << 20
DAY_NS = 86_400 * 1_000_000_000
DEFAULT_DURATION_NS = 5_000_000_000
MIN_INTERVAL_NS = round(1e9 / MAX_RATE_PER_S)
MAX_INTERVAL_NS = round(1e9 / MIN_RATE_PER_S)


def bench_options(fn: click.decorators.FC) -> click.decorators.FC:
    """The workload options of `bench`."""
    opts = [
        click.option("--workload", "-w", type=click.Choice([w.value for w in Workload]), default="pveperf",
                     show_default=True, help="What one operation is (see README, 'Workloads')."),
        click.option("--sync", "sync", type=click.Choice([s.value for s in SyncMethod]), default="fsync",
                     show_default=True, help="The sync call: fsync(2), fdatasync(2), or O_DSYNC/O_SYNC writes."),
        click.option("--block-size", "-b", callback=size_option("--block-size", 1, MAX_BLOCK_SIZE),
                     default=None, metavar="SIZE",
                     help="Bytes per write, e.g. 4k, 2300, 1M (default: 4001 for pveperf*, else 4k; 1 B to 64 MiB)."),
        click.option("--file-size", callback=size_option("--file-size", 4096, MAX_FILE_SIZE), default="16M",
                     show_default=True, metavar="SIZE",
                     help="File that overwrite rotates in and append wraps at (range 4 KiB to 1 TiB)."),
        click.option("--duration", "-d", callback=duration_option(1_000_000, DAY_NS), default=None, metavar="TIME",
                     help="Measured time, e.g. 3s, 1m (default 5s; range 1 ms to 24 h)."),
        click.option("--ops", "-n", type=click.IntRange(1, 10**12), default=None,
                     help="Measure exactly N operations instead of a duration."),
        click.option("--warmup", callback=duration_option(0, DAY_NS), default="1s", show_default=True, metavar="TIME",
                     help="Uncounted warm-up before measuring."),
        click.option("--stall-threshold", callback=duration_option(1_000, DAY_NS), default="100ms",
                     show_default=True, metavar="TIME", help="An operation slower than this counts as a stall."),
        click.option("--rate", "rate", callback=rate_option(MIN_RATE_PER_S, MAX_RATE_PER_S), default=None,
                     metavar="N",
                     help="Pace operations open-loop at N per second (operation k starts at k/N; a late one "
                          "does not shift the rest) instead of back to back; range 0.001 to 100000."),
        click.option("--interval", callback=duration_option(MIN_INTERVAL_NS, MAX_INTERVAL_NS), default=None,
                     metavar="TIME", help="Same as --rate 1/TIME, e.g. 100ms (range 10 us to 1000 s)."),
        click.option("--background-write", "background_write", callback=_background_option, default=None,
                     metavar="RATE|max",
                     help="Meanwhile, a separate process makes 1 MiB buffered writes (like a backup) on the same "
                          "filesystem at RATE bytes/s (e.g. 50M) or max; capped by the free space, removed after."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _background_option(ctx: click.Context, param: click.Parameter, value: str | None) -> BackgroundWrite | None:
    if value is None:
        return None
    try:
        return parse_rate(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--background-write {value!r}: ")) from None


def make_params(
    path: str, workload: str, sync: str, block_size: int | None, file_size: int,
    duration: int | None, ops: int | None, warmup: int, stall_threshold: int,
    rate: float | None = None, interval: int | None = None,
    background_write: BackgroundWrite | None = None,
) -> BenchParams:
    """Validate the combination of options and build the parameters."""
    wl = Workload(workload)
    if duration is not None and ops is not None:
        raise click.UsageError("--duration and --ops exclude each other: give one")
    if rate is not None and interval is not None:
        raise click.UsageError("--rate and --interval exclude each other: give one (--interval T is --rate 1/T)")
    if interval is not None:
        rate = 1e9 / interval
    if block_size is None:
        block_size = default_block_size(wl)
    if wl in (Workload.OVERWRITE, Workload.APPEND) and block_size > file_size:
        raise click.UsageError(
            f"--block-size {format_size(block_size)} is larger than --file-size {format_size(file_size)}: "
            f"accepted 1 B up to the file size"
        )
    if duration is None and ops is None:
        duration = DEFAULT_DURATION_NS
    return BenchParams(
        path=path, workload=wl, sync=SyncMethod(sync), block_size_bytes=block_size,
        file_size_bytes=file_size, duration_ns=duration, ops_limit=ops, warmup_ns=warmup,
        stall_threshold_ns=stall_threshold, rate_per_s=rate, background_write=background_write,
    )


@click.command()
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True), default=pipeline.DEFAULT_BENCH_PATH)
@bench_options
@click.option("--sched-probe/--no-sched-probe", default=True, show_default=True,
              help="Measure how late a real-time sleeper process wakes beside the workload (what corosync "
              "would suffer). It samples in probe windows, 200 ms of each second; the rate and latency come "
              "from the rest, so its wake-ups do not move them (README 'Performance').")
@allow_concurrent_option
@ring_id_options
@output_options((Format.TABLE, Format.JSON, Format.MARKDOWN))
@handle_errors
def bench(
    path: str, workload: str, sync: str, block_size: int | None, file_size: int, duration: int | None,
    ops: int | None, warmup: int, stall_threshold: int, rate: float | None, interval: int | None,
    background_write: BackgroundWrite | None,
    sched_probe: bool, allow_concurrent: bool, ring_id: bool,
    state_dir: str | None, fmt: str | None,
    as_json: bool, output: str, quiet: bool, no_progress: bool,
) -> None:
    """Measure a sync-write workload on the filesystem holding PATH (default /var/lib).

    Runs in a private temp directory created inside PATH and removed afterwards, whatever
    happens. The report goes to stdout; progress and warnings to stderr.
    """
    out_format = resolve_format(fmt, as_json)
    params = make_params(path, workload, sync, block_size, file_size, duration, ops, warmup, stall_threshold,
                         rate, interval, background_write)
    rid = ring_id_settings(ring_id, state_dir)
    with feedback(quiet, no_progress) as fb:
        try:
            report = pipeline.bench(params, sched_probe=sched_probe, feedback=fb, allow_concurrent=allow_concurrent,
                                    ring_id=rid)
        except pipeline.PartialRun as exc:
            emit(exc.report, out_format, output)
            raise exc.cause from None
    emit(report, out_format, output)
