"""`fsyncprobe watch`: passive observation of the real pmxcfs and corosync with bpftrace."""

from __future__ import annotations

import click

from fsyncprobe import pipeline
from fsyncprobe.cli.errors import handle_errors
from fsyncprobe.cli.options import duration_option, output_options, resolve_format
from fsyncprobe.cli.output import emit, feedback
from fsyncprobe.watch.runner import DEFAULT_PROCESSES, SCHED_PROCESSES, WatchParams

MAX_WATCH_NS = 366 * 86_400 * 10**9


@click.command("watch")
@click.option("--duration", "-d", callback=duration_option(1_000_000_000, MAX_WATCH_NS), default=None,
              metavar="TIME", help="How long to watch, e.g. 30m, 1h, 48h (default: until Ctrl-C or SIGTERM, "
                                   "which then end the watch normally).")
@click.option("--process", "-p", "processes", multiple=True, metavar="NAME",
              help=f"Command name to watch (repeatable; default: {', '.join(DEFAULT_PROCESSES)}). "
                   f"{', '.join(SCHED_PROCESSES)} also gets run delay and main-thread blocking.")
@click.option("--pid", "pids", multiple=True, type=click.IntRange(1, 1 << 22), metavar="PID",
              help="Watch this process (repeatable); with --pid alone, no process is watched by name.")
@click.option("--interval", callback=duration_option(1_000_000_000, 3_600 * 10**9), default="10s",
              show_default=True, metavar="TIME", help="How often the in-kernel histograms are pulled.")
@click.option("--restart-wait", callback=duration_option(0, 3_600 * 10**9), default="60s", show_default=True,
              metavar="TIME", help="When every process of a --process name exits, go on watching the others and "
                                   "watch a new process of that name that starts within TIME (pmxcfs after "
                                   "`systemctl restart pve-cluster`); 0: end the watch at the first exit.")
@output_options()
@handle_errors
def watch(duration: int | None, processes: tuple[str, ...], pids: tuple[int, ...], interval: int,
          restart_wait: int, fmt: str | None, as_json: bool, output: str, quiet: bool, no_progress: bool) -> None:
    """Observe the real processes (default pmxcfs and corosync) with eBPF, writing nothing to disk.

    Times every sync call (fsync, fdatasync, sync_file_range, msync, O_SYNC/O_DSYNC writes),
    write, open, rename and unlink of the watched processes, and corosync's scheduling delay and
    main-thread blocking, in histograms kept in the kernel. Needs root, Debian's `bpftrace`
    (0.17 to 0.23), tracefs and kernel BTF. Ctrl-C or SIGTERM gives the report of what was seen.

    Exit codes: 0 watched, 2 usage error, 3 could not watch (or a watched process exited: the
    report is still written; a restarted process is followed, see
    --restart-wait), 130/143 a signal before --duration ended.
    """
    out_format = resolve_format(fmt, as_json)
    names = tuple(dict.fromkeys(processes)) or (() if pids else DEFAULT_PROCESSES)
    params = WatchParams(process_names=names, duration_ns=duration, interval_ns=interval,
                         pids=tuple(dict.fromkeys(pids)), restart_wait_ns=restart_wait)
    with feedback(quiet, no_progress, stages=True) as fb:
        try:
            report = pipeline.watch(params, fb)
        except pipeline.PartialRun as exc:
            emit(exc.report, out_format, output)
            raise exc.cause from None
    emit(report, out_format, output)
