"""The package's structure, checked from its source (issue 11): which stage may import what.

- The core (everything outside `cli/` and `render/`) never imports click, rich or tabulate: it
  returns data and reports progress through callbacks, so it can be called without a terminal.
- A command module in `cli/` never imports another command's module (shared options and output
  live in `cli/options.py` and `cli/output.py`), nor `cli/__init__` (which adds the commands).
- The import graph of the package has no cycle, counting every import (also inside functions
  and under `TYPE_CHECKING`), so each stage can be read, and loaded, on its own; and neither has
  the graph of its stages (the subpackages and top-level modules), so the stages form layers:
  a stage below (ring, say) never reaches up into one above it (report).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fsyncprobe"
UI_LIBRARIES = {"click", "rich", "tabulate"}
COMMANDS = {"bench", "cluster", "device", "model", "verdict", "watch"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def imports_of(name: str, path: Path) -> set[str]:
    """Every module `name` imports: absolute names; `from a import b` counts as `a.b` where that
    is a module of the package, else as `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


def graph() -> dict[str, set[str]]:
    return {m: {t for t in imports_of(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `edges` as a path that starts and ends on the same node, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_is_found() -> None:
    # Guards the checks below against passing on an empty walk.
    assert {"fsyncprobe.pipeline", "fsyncprobe.cli.verdict", "fsyncprobe.ring.model"} <= set(MODULES)
    assert "fsyncprobe.pipeline" in graph()["fsyncprobe.cli.verdict"]


def test_core_never_imports_ui_libraries() -> None:
    offenders = {
        name: sorted(lib for lib in imports_of(name, path) if lib.split(".")[0] in UI_LIBRARIES)
        for name, path in MODULES.items()
        if not name.startswith(("fsyncprobe.cli", "fsyncprobe.render"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_command_module_imports_another() -> None:
    edges = graph()
    bad = {}
    for cmd in COMMANDS:
        name = f"fsyncprobe.cli.{cmd}"
        assert name in MODULES, name
        wrong = {t for t in edges[name] if t == "fsyncprobe.cli" or t.removeprefix("fsyncprobe.cli.") in COMMANDS}
        if wrong:
            bad[name] = sorted(wrong)
    assert bad == {}


def test_import_graph_has_no_cycle() -> None:
    assert find_cycle(graph()) is None


def stage(module: str) -> str:
    """The stage a module belongs to: its subpackage, or itself at the top level."""
    return ".".join(module.split(".")[:2])


def test_stages_form_layers() -> None:
    edges: dict[str, set[str]] = {}
    for src, targets in graph().items():
        edges.setdefault(stage(src), set()).update(stage(t) for t in targets if stage(t) != stage(src))
    assert find_cycle(edges) is None
    # the data flow of shared/DESIGN.md, "Architecture": measurements below the model below the
    # report below its renderers and the command line
    assert "fsyncprobe.report" in edges["fsyncprobe.render"] and "fsyncprobe.ring" in edges["fsyncprobe.report"]


def test_cycle_finder_finds_a_cycle() -> None:
    # The check above would pass vacuously if the finder could not see one.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
