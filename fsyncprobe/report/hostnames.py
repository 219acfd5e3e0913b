"""Whether a report's host name is one a node can have (issue 14).

`cluster` reads reports fetched from other machines and names nodes by their host names in every
output; a name that is not a host name (escape sequences, newlines, markup, a forged "node") is
refused rather than shown. The rule is hostname(7)'s, which is RFC 1123's: dot-separated labels
of 1 to 63 ASCII letters, digits and hyphens, not starting or ending with a hyphen, at most 253
characters in all. Proxmox VE node names are a subset (pve-common `pve-node` format: one such
label).
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_LENGTH = 253
"""hostname(7): "the entire hostname, including the dots, can be at most 253 characters long"."""


def is_valid_hostname(name: str) -> bool:
    """Whether `name` is a host name by hostname(7)."""
    if not name or len(name) > MAX_LENGTH or not name.isascii():
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))
