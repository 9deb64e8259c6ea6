"""Text shown to a person: the sanitiser and the number format (foundation layer).

Pure string logic, no rich and no streams, so engines (batch's plan and report) and
the render layer share one sanitiser. `retab_cli.render` re-exports both names.
"""

from __future__ import annotations

import math

# C0 controls except tab/newline, DEL, C1, and the bidi embedding/override/isolate
# characters that can make a terminal show text in another order than it is.
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
# Lone surrogates (a JSON `\ud800` escape, a non-UTF-8 byte in argv) cannot be encoded:
# shown raw, they would crash the write to a UTF-8 stream.
_SURROGATES = range(0xD800, 0xE000)
_UNSAFE = {*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *_BIDI, *_SURROGATES}
_ESCAPES = {cp: f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" for cp in _UNSAFE}
# On one line, any line break would let a server string forge a line of its own.
_LINE_ESCAPES = {**_ESCAPES, 0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028",
                 0x2029: "\\u2029"}


def sanitize(text: object, *, single_line: bool = False) -> str:
    """Make a server string safe to show: unsafe characters become visible escapes."""
    value = text if isinstance(text, str) else str(text)
    return value.translate(_LINE_ESCAPES if single_line else _ESCAPES)


def plural(count: int, noun: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_number(value: float) -> str:
    """A number without trailing zeros: 7.0 -> `7`, 1.40 -> `1.4`."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")
