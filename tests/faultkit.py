"""What every fault and bad-argument test checks: one clear line, the design's exit code,
nothing left behind, nothing that was there changed (shared/DESIGN.md, "Commands")."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

from tests import realfs

PREEXISTING = "precious.txt"


def plant(directory: Path) -> None:
    """A pre-existing file and subdirectory the tool must never touch."""
    (directory / PREEXISTING).write_text("the user's data, which a benchmark must not change\n")
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "sub" / "inner.bin").write_bytes(os.urandom(3000))


def tree_digest(directory: Path) -> dict[str, str]:
    """Every entry under `directory` with its type, mode, size and content hash (symlinks by target)."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, directory)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link -> {os.readlink(p)}"
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = f"file {stat.S_IMODE(st.st_mode):o} {st.st_size} {digest}"
            else:
                out[rel] = f"{stat.S_IFMT(st.st_mode):o} {stat.S_IMODE(st.st_mode):o}"
    return out


def one_line_error(proc: subprocess.CompletedProcess[str], exit_code: int, *needles: str) -> str:
    """Assert the run failed with `exit_code`, no traceback, and exactly one `fsyncprobe: error:` line
    (warnings may precede it) that contains every needle; return that line."""
    err = proc.stderr
    assert proc.returncode == exit_code, (proc.returncode, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("fsyncprobe: error:")]
    others = [line for line in err.splitlines() if line.strip() and not line.startswith("fsyncprobe: ")]
    assert len(errors) == 1, err
    assert others == [], err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    log = os.environ.get("FSYNCPROBE_FAULT_LOG")  # collects the real lines for docs/failures.md's table
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?')}\t{proc.returncode}\t{errors[0]}\n")
    return errors[0]


def assert_untouched(directory: Path, before: dict[str, str]) -> None:
    """No temp dir left and every pre-existing entry exactly as it was."""
    assert realfs.leftovers(directory) == []
    assert tree_digest(directory) == before
