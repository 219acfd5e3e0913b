"""Signals while measuring or watching: SIGTERM ends a run as Ctrl-C does, and cleanup cannot be
cut short. Shared by the measuring engine and the watch, which both clean up on every path."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from fsyncprobe.errors import Interrupted


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises `Interrupted` as SIGINT raises KeyboardInterrupt, so the
    cleanup after it runs (signal(7): Python handles signals in the main thread only, so from
    another thread this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """While inside, a second Ctrl-C or SIGTERM cannot interrupt the cleanup (half a temp dir
    left behind, a watch's last maps lost)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
