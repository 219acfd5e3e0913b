"""corosync.conf: the parser (exec/coroparse.c syntax), the totem settings it holds, and where to
find the file. Every problem is an `InputError` (exit 2) naming the file and the line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from fsyncprobe.errors import InputError
from fsyncprobe.ring.corosync import CorosyncSettings


@dataclass(frozen=True)
class ConfSection:
    """One `name { ... }` block of corosync.conf (the file itself is the unnamed root)."""

    name: str
    """Section name (`totem`, `nodelist`, `node`, `interface`, ...; empty for the root)."""
    items: tuple[tuple[str, str], ...] = ()
    """`key: value` pairs in file order, unknown keys kept."""
    sections: tuple[ConfSection, ...] = field(default=())
    """Nested sections in file order."""
    line: int = 0
    """Line the section opened on (0 for the root)."""

    def get(self, key: str) -> str | None:
        """The last value of `key` in this section (corosync keeps the last one too)."""
        value = None
        for k, v in self.items:
            if k == key:
                value = v
        return value

    def find(self, name: str) -> tuple[ConfSection, ...]:
        """Direct subsections called `name`."""
        return tuple(s for s in self.sections if s.name == name)


def parse_conf(text: str, source: str = "corosync.conf") -> ConfSection:
    """Parse corosync.conf syntax (exec/coroparse.c): `name {` opens a section, `}` closes it,
    `key: value` sets a key, `#` starts a comment line. Raises InputError with the line number."""
    stack: list[tuple[str, int, list[tuple[str, str]], list[ConfSection]]] = [("", 0, [], [])]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        while line:
            if line.startswith("}"):
                if len(stack) == 1:
                    raise InputError(f"{source}:{lineno}: '}}' without an open section")
                name, opened, items, subs = stack.pop()
                stack[-1][3].append(ConfSection(name, tuple(items), tuple(subs), opened))
                line = line[1:].strip()
                continue
            brace = line.find("{")
            colon = line.find(":")
            if brace >= 0 and (colon < 0 or brace < colon):
                name = line[:brace].strip()
                if not name or " " in name:
                    raise InputError(f"{source}:{lineno}: bad section name {name!r}")
                stack.append((name, lineno, [], []))
                line = line[brace + 1:].strip()
                continue
            if colon < 0:
                raise InputError(f"{source}:{lineno}: expected 'key: value', 'name {{' or '}}', got {line!r}")
            key = line[:colon].strip()
            value = line[colon + 1:].strip()
            close = value.find("}")
            rest = ""
            if close >= 0:  # `key: value }` on one line (lenient: corosync itself wants a newline)
                value, rest = value[:close].strip(), value[close:]
            if not key:
                raise InputError(f"{source}:{lineno}: empty key")
            stack[-1][2].append((key, value))
            line = rest
    if len(stack) != 1:
        name, opened, _, _ = stack[-1]
        raise InputError(f"{source}: section '{name}' opened on line {opened} is never closed")
    _, _, items, subs = stack[0]
    return ConfSection("", tuple(items), tuple(subs), 0)


def _int(section: ConfSection, key: str, source: str) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    try:
        n = int(value, 0)
    except ValueError:
        raise InputError(f"{source}: {section.name}.{key}: expected an integer, got {value!r}") from None
    if n < 0:
        raise InputError(f"{source}: {section.name}.{key}: negative value {n}")
    return n


def settings_from_conf(root: ConfSection, source: str = "corosync.conf") -> CorosyncSettings:
    """The totem settings and the node count of a parsed corosync.conf."""
    totems = root.find("totem")
    totem = totems[-1] if totems else ConfSection("totem")
    nodes = sum(len(nl.find("node")) for nl in root.find("nodelist"))
    interfaces = totem.find("interface")
    link0 = next((i for i in interfaces if (i.get("linknumber") or i.get("ringnumber") or "0") == "0"),
                 interfaces[0] if interfaces else ConfSection("interface"))
    return CorosyncSettings(
        nodes=nodes or None,
        token_ms=_int(totem, "token", source),
        token_coefficient_ms=_int(totem, "token_coefficient", source),
        consensus_ms=_int(totem, "consensus", source),
        token_retransmit_ms=_int(totem, "token_retransmit", source),
        hold_ms=_int(totem, "hold", source),
        token_retransmits_before_loss_const=_int(totem, "token_retransmits_before_loss_const", source),
        token_warning_percent=_int(totem, "token_warning", source),
        join_ms=_int(totem, "join", source),
        merge_ms=_int(totem, "merge", source),
        fail_recv_const=_int(totem, "fail_recv_const", source),
        transport=totem.get("transport"),
        knet_ping_interval_ms=_int(link0, "knet_ping_interval", source),
        knet_ping_timeout_ms=_int(link0, "knet_ping_timeout", source),
        knet_pong_count=_int(link0, "knet_pong_count", source),
        source=source,
        state_dir=_state_dir(root),
    )


def _state_dir(root: ConfSection) -> str | None:
    """`system { state_dir }` (corosync.conf(5) `state_dir`), the last one set; None when unset."""
    value = None
    for system in root.find("system"):
        value = system.get("state_dir") or value
    return value


DEFAULT_CONF_PATHS = ("/etc/pve/corosync.conf", "/etc/corosync/corosync.conf")
"""Where Proxmox VE (pmxcfs) and plain corosync keep the file."""


def read_conf(path: str) -> CorosyncSettings:
    """Read and parse a corosync.conf file (InputError when unreadable or malformed)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return settings_from_conf(parse_conf(text, path), path)


def find_conf() -> str | None:
    """The first corosync.conf that exists at the usual places."""
    for p in DEFAULT_CONF_PATHS:
        if os.path.isfile(p):
            return p
    return None


def load_settings(conf_path: str | None, read_conf_file: bool = True) -> CorosyncSettings:
    """The settings of the corosync.conf to use: `conf_path` when given, else the first file at
    the usual places (`DEFAULT_CONF_PATHS`); none (every value corosync's default) when no file
    is found or `read_conf_file` is False (`--no-corosync-conf`)."""
    if not read_conf_file:
        return CorosyncSettings()
    path = conf_path or find_conf()
    return read_conf(path) if path else CorosyncSettings()


def node_count(settings: CorosyncSettings, given: int | None, default: int) -> tuple[int, str | None]:
    """The ring's node count: `given` (`--nodes`) first, then the nodelist when it lists at least
    two nodes, else `default`; with a warning when a nodelist of fewer than two was passed over
    (a one-node "cluster" says nothing about the ring the node will join)."""
    if given is not None:
        return given, None
    if settings.nodes is not None and settings.nodes >= 2:
        return settings.nodes, None
    if settings.nodes is not None:
        return default, f"{settings.source} lists {settings.nodes} node: node count not taken from it"
    return default, None
