"""JSON: the report as data, for CI gates and for `model`/`cluster` to read back.

The values are the real ones (a path is the path, byte for byte through `surrogateescape`), but
no character that is not printable reaches the text raw: json escapes C0 controls itself, and
`_escape_unprintable` writes DEL, C1 controls, format characters (bidirectional overrides),
separators and lone surrogates as `\\uXXXX` escapes, which every JSON reader turns back into the
same string (RFC 8259, section 7; issue 14). Outside strings the text holds only spaces and
newlines of the indentation, which are left alone.
"""

from __future__ import annotations

import json
import re

from fsyncprobe.report.codec import to_jsonable
from fsyncprobe.report.types import Report

_MAYBE_UNPRINTABLE = re.compile(r"[^\n -~]")


def _escape_unprintable(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # RFC 8259: a character outside the BMP is escaped as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def render(report: Report) -> str:
    """Indented JSON with `schema_version` first."""
    data = to_jsonable(report)
    ordered = {"schema_version": data.pop("schema_version"), **data}
    return _MAYBE_UNPRINTABLE.sub(_escape_unprintable, json.dumps(ordered, indent=2, ensure_ascii=False))
