"""The sync-write workloads: what one measured operation is (shared/DESIGN.md, "Workloads").

Each workload prepares its files inside the private temp directory the engine made, and hands
back a zero-argument callable that performs exactly one operation. The engine times the call.
Files are created with O_CREAT|O_EXCL|O_NOFOLLOW (open(2)) so that nothing planted in advance,
not even in a directory we own, can redirect a write; after that, reopening uses O_NOFOLLOW.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from fsyncprobe.measure.types import PVEPERF_WORKLOADS, SyncMethod, Workload

PVEPERF_FILES = 300
PVEPERF_WRITE_BYTES = 4001  # pveperf writes ('A' x 4000) . "\n" (pve-manager bin/pveperf, test_fsync)
BLOCK_BYTES_DEFAULT = 4096
"""Bytes per write of every workload but pveperf when none is given: one page, a database page."""

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _sync_call(sync: SyncMethod) -> Callable[[int], None] | None:
    """The call made after each write, or None when the open flags make every write durable."""
    if sync is SyncMethod.FSYNC:
        return os.fsync
    if sync is SyncMethod.FDATASYNC:
        return os.fdatasync
    return None


def _open_flags(sync: SyncMethod) -> int:
    # O_DSYNC: data and the metadata needed to read it back are durable when write() returns;
    # O_SYNC adds all other metadata (open(2), "Synchronized I/O").
    if sync is SyncMethod.DSYNC:
        return os.O_DSYNC
    if sync is SyncMethod.SYNC:
        return os.O_SYNC
    return 0


def create_file(path: str, extra_flags: int = 0) -> int:
    """Create `path` exclusively (never follow or reuse what is there) and return the fd."""
    return os.open(path, _CREATE_FLAGS | extra_flags, 0o600)


@dataclass
class Prepared:
    """A workload ready to run: `op` does one operation; `close` releases what it holds."""

    op: Callable[[], None]
    """Performs exactly one operation (write + sync)."""
    notes: list[str] = field(default_factory=list)
    """What the reader should know about how this workload ran."""
    rotating: RotatingWrite | None = None
    """For overwrite and append: `op` spelled out, so the engine can run it inline."""
    begin_measure: Callable[[], None] | None = None
    """Called once after the warm-up, before the first measured operation (the pveperf workloads start over)."""
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close files and connections; safe to call twice."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except (OSError, sqlite3.Error):
                pass


def default_block_size(workload: Workload) -> int:
    """Bytes per write when the user or the profile names none (pveperf's own 4,001 for both pveperf workloads)."""
    return PVEPERF_WRITE_BYTES if workload in PVEPERF_WORKLOADS else BLOCK_BYTES_DEFAULT


def space_needed(workload: Workload, block_size: int, file_size: int) -> int:
    """Bytes the workload may occupy on the filesystem at most (checked before starting)."""
    if workload in PVEPERF_WORKLOADS:
        # 300 files of one block each (twice: warm-up and measured names), rounded up to 4 KiB
        # blocks, plus directory entries.
        return 2 * PVEPERF_FILES * (((block_size + 4095) // 4096) * 4096 + 4096)
    if workload is Workload.SQLITE:
        # The database holds a few rows of block_size; the WAL grows to about 1,000 pages
        # (SQLite's default wal_autocheckpoint) of up to 4 KiB plus the rows written since.
        return 16 * block_size + 1000 * 4096 * 2 + (1 << 20)
    return file_size


def prepare(
    workload: Workload, directory: str, sync: SyncMethod, block_size: int, file_size: int
) -> Prepared:
    """Create the workload's files in `directory` (private, made by the engine)."""
    if workload in PVEPERF_WORKLOADS:
        return _prepare_pveperf(directory, sync, block_size, durable=workload is Workload.PVEPERF_DURABLE)
    if workload is Workload.OVERWRITE:
        return _prepare_overwrite(directory, sync, block_size, file_size)
    if workload is Workload.APPEND:
        return _prepare_append(directory, sync, block_size, file_size)
    if workload is Workload.SQLITE:
        return _prepare_sqlite(directory, block_size)
    raise ValueError(f"unknown workload {workload}")


def _prepare_pveperf(directory: str, sync: SyncMethod, block_size: int, durable: bool) -> Prepared:
    # pveperf (pve-manager bin/pveperf, test_fsync): for count = 1.., file tf_(count % 300).dat is
    # opened for writing with truncation (Perl's open(">file"): O_WRONLY|O_CREAT|O_TRUNC), 4,001
    # bytes are printed to it, File::Sync::fsync is called on it, it is closed; after 3 s it prints
    # count / elapsed as FSYNCS/SECOND.
    #
    # The order of the system calls is not the order of the Perl statements. `print TMP $data` only
    # fills PerlIO's buffer, and File::Sync::fsync (libfile-sync-perl 0.11, File/Sync.pm:
    # `fsync_fd(fileno(...))`) calls fsync(2) on the handle's descriptor without flushing that
    # buffer (its own POD: "Doing fsync() if the stdio buffers aren't flushed ... is probably
    # pointless"); the buffer reaches the file at close.
    # Under strace, each operation is: openat(O_WRONLY|O_CREAT|O_TRUNC), ioctl(TCGETS), lseek(0,
    # SEEK_CUR), fstat, fsync, write(4001), close; the middle three are PerlIO's own on opening a
    # handle (perlio.c: is it a tty, where does it start, what is it).
    # So pveperf's fsync syncs the just-created or just-truncated, empty file (a metadata commit:
    # a new inode and directory entry, or a size change), and its 4,001 bytes are never synced.
    # `pveperf` copies that order, so its rate is the FSYNCS/SECOND of forum threads;
    # `pveperf-durable` writes first and then syncs, which is what pveperf means to measure.
    #
    # PerlIO's fstat is not free, and is copied too: since Linux 6.13 ext4, xfs, btrfs and tmpfs
    # stamp a file whose ctime has been queried (stat, fstat) with a fine-grained time at its next
    # change (multigrain timestamps, Documentation/filesystems/multigrain-ts.rst; fs/stat.c marks
    # the query). Without the fstat, pveperf's write lands in the same coarse tick as the open and
    # leaves the inode's times alone; after it, the write changes mtime and ctime, dirtying the
    # inode, which the next operation's fsync commits. Measured on Linux 6.18 ext4 with a 1 KiB
    # block size: 317 of pveperf's operations put 1,987 KiB in the journal with the fstat, 1,928
    # without, and on a 50-IOPS disk that was 3 % of pveperf's rate (docs/validation.md).
    #
    # Perl's O_CREAT means the first lap of 300 creates its files and later laps truncate them; a
    # 3-second pveperf run on a slow disk never leaves the first lap. Creating costs more than
    # truncating (a new inode and directory entry to journal): on a 50-IOPS disk, pre-created files
    # made us 2.5x faster than pveperf. So the measured run starts as pveperf does, in a directory
    # holding none of its files, and nothing else: the warm-up writes other files in a directory
    # of its own (a directory grown by the warm-up's entries would journal more blocks per
    # creation). O_CREAT without O_EXCL is safe here: the directory is our private mkdtemp (mode
    # 0700), and O_NOFOLLOW refuses a symlink anyway.
    #
    # --sync fdatasync puts fdatasync(2) where pveperf calls fsync (a truncation changes the size,
    # which fdatasync must commit too). --sync dsync/sync open with O_DSYNC/O_SYNC and make no
    # separate call: the write itself is the sync, so there is no sync before the write and
    # `pveperf` then makes the same calls as `pveperf-durable` (a note in the report says so).
    data = (b"A" * (block_size - 1) + b"\n") if block_size > 0 else b""
    warm_dir = os.path.join(directory, "warmup")
    os.mkdir(warm_dir, 0o700)
    warm = [os.path.join(warm_dir, f"tf_{i}.dat") for i in range(PVEPERF_FILES)]
    measured = [os.path.join(directory, f"tf_{i}.dat") for i in range(PVEPERF_FILES)]
    current = [warm]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | _open_flags(sync)
    sync_call = _sync_call(sync)
    state = [0]

    def begin_measure() -> None:
        current[0] = measured
        state[0] = 0
    open_ = os.open
    write = os.write
    close = os.close
    isatty, lseek, fstat, SEEK_CUR = os.isatty, os.lseek, os.fstat, os.SEEK_CUR

    def perlio_open(path: str) -> int:
        """Perl's open(TMP, ">file"): the open, then PerlIO's isatty, tell and fstat."""
        fd = open_(path, flags, 0o600)
        try:
            isatty(fd)
            lseek(fd, 0, SEEK_CUR)
            fstat(fd)
        except BaseException:
            close(fd)
            raise
        return fd

    if sync_call is None:

        def op() -> None:
            i = state[0] = (state[0] + 1) % PVEPERF_FILES
            fd = perlio_open(current[0][i])
            try:
                write(fd, data)
            finally:
                close(fd)

    elif durable:

        def op() -> None:
            i = state[0] = (state[0] + 1) % PVEPERF_FILES
            fd = perlio_open(current[0][i])
            try:
                write(fd, data)
                sync_call(fd)
            finally:
                close(fd)

    else:

        def op() -> None:
            i = state[0] = (state[0] + 1) % PVEPERF_FILES
            fd = perlio_open(current[0][i])
            try:
                sync_call(fd)
                write(fd, data)
            finally:
                close(fd)

    notes = []
    if block_size != PVEPERF_WRITE_BYTES:
        notes.append(
            f"block size {block_size} B differs from pveperf's {PVEPERF_WRITE_BYTES} B: "
            "the rate will not compare with pveperf's FSYNCS/SECOND"
        )
    if not durable and sync_call is not None:
        notes.append(
            f"pveperf's own order: the {sync.value} comes before the write, so it syncs the newly created or "
            f"truncated, empty file, and the {block_size:,} bytes written after it are never synced "
            "(as pveperf's FSYNCS/SECOND); -w pveperf-durable syncs them"
        )
    elif not durable:
        notes.append(
            f"--sync {sync.value} makes the write itself durable (O_{sync.value.upper()}): no sync comes before "
            "the write as in pveperf, so this measures what -w pveperf-durable does, not pveperf's FSYNCS/SECOND"
        )
    return Prepared(op=op, notes=notes, begin_measure=begin_measure)


def _layout(fd: int, file_size: int, block_size: int) -> None:
    """Write the whole file once, then drop it from the page cache, as fio does before an
    overwrite job (`overwrite=1` lays the file out in `bs`-sized writes, `invalidate=1` then
    calls posix_fadvise(POSIX_FADV_DONTNEED)); so the measured writes hit allocated blocks
    (writing into fallocate'd space would convert unwritten extents on every sync, ext4) and
    find the page cache as a database's page writes leave it.

    Why the write size and the cache matter: the page cache sizes a new folio from the length
    of the write that creates it (mm/filemap.c, fgf_set_order; ext4 regular files get large
    folios since Linux 6.16). A layout in 1 MiB writes left 1 MiB folios behind, and every 4 KiB
    rewrite then dirtied and wrote back part of a large folio: measured on Linux 6.18 ext4,
    pwrite took 7 us instead of 4 and fdatasync about 10 % longer, which put fsyncprobe at 0.89 to
    0.94 of fio's rate (issue 7)."""
    chunk_size = max(_PAGE, -(-block_size // _PAGE) * _PAGE)  # whole pages, at least one
    chunk = bytes(chunk_size)
    done = 0
    while done < file_size:
        n = min(chunk_size, file_size - done)
        done += os.pwrite(fd, chunk[:n] if n < chunk_size else chunk, done)
    os.fsync(fd)
    # After the fsync the pages are clean, so DONTNEED drops them (mm/fadvise.c; tmpfs and other
    # filesystems without a backing device ignore it). Advisory, so a failure is not an error:
    # the pages only stay cached.
    try:
        os.posix_fadvise(fd, 0, file_size, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


@dataclass
class RotatingWrite:
    """One operation of overwrite and append: pwrite `buf` at the slot's offset, then `sync_call`.

    The engine's hot loop runs this inline (no Python call per operation, issue 7) and keeps
    `next_slot` up to date, so the warm-up and the measured phase continue the same rotation
    as `op` does.
    """

    fd: int
    """The open file (O_DSYNC/O_SYNC set for those sync methods)."""
    buf: bytes
    """The block written each time, allocated once."""
    block_size: int
    """len(buf): the offset step."""
    slots: int
    """Offsets rotate through 0, block_size, ... (slots - 1) * block_size, then wrap to 0."""
    sync_call: Callable[[int], None] | None
    """os.fsync or os.fdatasync after each write, or None when the open flags make it durable."""
    next_slot: int = 0
    """The slot the next operation writes."""


def _rotating_writer(fd: int, sync: SyncMethod, block_size: int, file_size: int) -> RotatingWrite:
    return RotatingWrite(
        fd=fd,
        buf=os.urandom(block_size),  # incompressible, so a compressing device cannot cheat
        block_size=block_size,
        slots=max(1, file_size // block_size),
        sync_call=_sync_call(sync),
    )


def _rotating_op(spec: RotatingWrite) -> Callable[[], None]:
    """The same operation as a callable, for callers that do not inline it."""
    fd, buf, block_size, slots = spec.fd, spec.buf, spec.block_size, spec.slots
    pwrite = os.pwrite
    sync_call = spec.sync_call
    if sync_call is None:

        def op() -> None:
            i = spec.next_slot
            pwrite(fd, buf, i * block_size)
            spec.next_slot = i + 1 if i + 1 < slots else 0

    else:

        def op() -> None:
            i = spec.next_slot
            pwrite(fd, buf, i * block_size)
            sync_call(fd)
            spec.next_slot = i + 1 if i + 1 < slots else 0

    return op


def _prepare_overwrite(directory: str, sync: SyncMethod, block_size: int, file_size: int) -> Prepared:
    # A database page rewrite: the file is laid out (written) first, then block_size bytes are
    # rewritten at a rotating offset, each followed by the sync call.
    path = os.path.join(directory, "overwrite.dat")
    fd = create_file(path, _open_flags(sync))
    p = Prepared(op=lambda: None, _closers=[lambda: os.close(fd)])
    _layout(fd, file_size, block_size)
    p.rotating = _rotating_writer(fd, sync, block_size, file_size)
    p.op = _rotating_op(p.rotating)
    return p


def _prepare_append(directory: str, sync: SyncMethod, block_size: int, file_size: int) -> Prepared:
    # A write-ahead log: sequential writes of block_size bytes, each followed by the sync call,
    # into a file preallocated with posix_fallocate(3) -- as etcd preallocates its 64 MB WAL
    # segments and as fio does for its etcd test (fallocate=native is fio's default) -- and
    # wrapping to the start at file_size.
    path = os.path.join(directory, "append.wal")
    fd = create_file(path, _open_flags(sync))
    p = Prepared(op=lambda: None, _closers=[lambda: os.close(fd)])
    try:
        os.posix_fallocate(fd, 0, file_size)
    except OSError as exc:
        # EOPNOTSUPP on filesystems without fallocate (e.g. some FUSE and network filesystems).
        if exc.errno != errno.EOPNOTSUPP:
            raise
        p.notes.append("the filesystem does not support preallocation; the log grows as it is written")
    p.rotating = _rotating_writer(fd, sync, block_size, file_size)
    p.op = _rotating_op(p.rotating)
    return p


# pmxcfs's schema and write path (pve-cluster src/pmxcfs/database.c): one table `tree`; a
# change replaces the file's row and the `__version__` row (inode 0) in one transaction,
# with journal_mode=WAL and synchronous=NORMAL, so commits append to the WAL without syncing and
# syncs happen at checkpoints (default wal_autocheckpoint = 1,000 pages; sqlite.org/wal.html).
_PMXCFS_SCHEMA = (
    "CREATE TABLE tree ("
    " inode INTEGER PRIMARY KEY NOT NULL,"
    " parent INTEGER NOT NULL CHECK(typeof(parent)=='integer'),"
    " version INTEGER NOT NULL CHECK(typeof(version)=='integer'),"
    " writer INTEGER NOT NULL CHECK(typeof(writer)=='integer'),"
    " mtime INTEGER NOT NULL CHECK(typeof(mtime)=='integer'),"
    " type INTEGER NOT NULL CHECK(typeof(type)=='integer'),"
    " name TEXT NOT NULL,"
    " data BLOB)"
)
_PMXCFS_REPLACE = (
    "REPLACE INTO tree (inode, parent, version, writer, mtime, type, name, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_FILES = 8  # rows rotated through, like a handful of guest configs being edited
_DT_REG = 8  # pmxcfs stores dirent types (DT_REG for files, DT_DIR = 4 for directories)


def _prepare_sqlite(directory: str, block_size: int) -> Prepared:
    path = os.path.join(directory, "config.db")
    os.close(create_file(path))  # exclusive creation; SQLite then opens the empty file
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    p = Prepared(op=lambda: None, _closers=[con.close])
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(_PMXCFS_SCHEMA)
    con.execute(_PMXCFS_REPLACE, (0, 0, 0, 0, 0, _DT_REG, "__version__", None))
    payload = os.urandom(block_size)
    for i in range(1, _SQLITE_FILES + 1):
        con.execute(_PMXCFS_REPLACE, (i, 0, i, 0, 0, _DT_REG, f"qemu-server/{100 + i}.conf", payload))
    state = [_SQLITE_FILES]
    execute = con.execute
    replace = _PMXCFS_REPLACE

    def op() -> None:
        version = state[0] = state[0] + 1
        inode = version % _SQLITE_FILES + 1
        execute("BEGIN")
        try:
            execute(replace, (inode, 0, version, 1, version, _DT_REG, f"qemu-server/{100 + inode}.conf", payload))
            execute(replace, (0, 0, version, 1, version, _DT_REG, "__version__", None))
            execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                execute("ROLLBACK")
            raise

    p.op = op
    p.notes.append(
        "sqlite: pmxcfs-shaped transactions (WAL, synchronous=NORMAL): most commits do not sync, "
        "checkpoints about every 1,000 pages do; --sync does not apply"
    )
    return p
