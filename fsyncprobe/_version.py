"""The tool's version, written in one place: `[project] version` of pyproject.toml (issue 15).

An installed copy (pip, pipx, the Debian package built by pybuild) reads it from its own
distribution metadata, which the build took from pyproject.toml; a source checkout run without
installing (`python3 -m fsyncprobe` from the repository) reads pyproject.toml beside the package.
The checkout's file wins when it is there, so a tree imported while another tree's copy is
installed still reports its own version.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    """The version of this copy of fsyncprobe ("0+unknown" when neither source says)."""
    try:
        with _PYPROJECT.open("rb") as f:
            project = tomllib.load(f).get("project", {})
        if project.get("name") == "fsyncprobe" and isinstance(project.get("version"), str):
            return str(project["version"])
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version("fsyncprobe")
    except metadata.PackageNotFoundError:
        return "0+unknown"
