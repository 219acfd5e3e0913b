"""Showing a string from outside literally (issue 14; shared/DESIGN.md, "Safety on a production node").

Paths, mount sources, udev values, host names and text inside loaded reports come from outside
and may hold anything a file name or a JSON string can: escape sequences that recolour or rewrite
the terminal, newlines that forge a line of output, bidirectional overrides that reorder what is
shown, bytes that are not UTF-8 (a path decoded with `surrogateescape`, PEP 383). `shown` makes
every such character visible as Python's repr would write it (`\\x1b`, `\\n`, `\\u202e`; a C1
control as `\\u009b`), and an undecodable byte as the byte it was (`\\xff`, as `ls -b` shows it,
in hexadecimal); a backslash is doubled, so the shown text maps back to exactly one string.
Printable text, spaces and non-ASCII letters are kept as they are.

Every renderer, and the command line's own stderr lines, pass outside text through this one
function; markup is then kept from being interpreted by the format's own means (rich `Text`,
Markdown escapes, Prometheus label escaping), never by dropping characters.
"""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~!&#])")
"""ASCII punctuation that starts or ends an inline construct in CommonMark/GFM tables (emphasis,
code, links, images, autolinks and HTML, entities, strikethrough, the cell separator); a
backslash before any ASCII punctuation makes it literal (CommonMark 0.30, "Backslash escapes")."""


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == " " or ch.isprintable():
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    text = repr(ch)[1:-1]
    if not text.startswith("\\") or (code >= 0x80 and text.startswith("\\x")):
        # `\xNN` above 0x7f is kept for undecodable bytes: a C1 control (U+009B, two bytes in
        # UTF-8) is written `\u009b`, so the byte 0x9b and the character never look alike.
        text = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return text


def shown(text: str) -> str:
    """`text` with every control, format, separator (other than space), surrogate and
    unassigned character made visible as an escape, and each backslash doubled."""
    if text.isprintable() and "\\" not in text:  # the common case, at C speed
        return text
    return "".join(_escape(ch) for ch in text)


def markdown(text: str) -> str:
    """`text` shown literally inside Markdown (a table cell or a heading): `shown`, then every
    character Markdown would read as markup escaped with a backslash, and a space at either end
    (which a table cell drops) written as a character reference (CommonMark, "Entity and numeric
    character references")."""
    out = _MARKDOWN_SPECIAL.sub(r"\\\1", shown(text))
    stripped = out.strip(" ")
    if stripped == out:
        return out
    lead = len(out) - len(out.lstrip(" "))
    trail = len(out) - len(out.rstrip(" "))
    return "&#32;" * lead + stripped + "&#32;" * trail if stripped else "&#32;" * len(out)
