"""Drawing on a terminal with rich: consoles that draw Text only, and aligned rows.

Every server string goes through `sanitize` and is drawn as `Text` on a console made
with markup, emoji and highlighting off, so nothing a server sends can style, move or
rewrite the terminal. The Renderer imports the table modules only when a table is
drawn, so the JSON path never pays for rich.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import IO, Literal

from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.text import Span, Text

from retab_cli.render import Renderer, isatty

# A table cell before layout: its plain text and a rich style ("" for none).
GAP = "  "


Cell = tuple[str, str]


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's own handler exits 1 at once; the boundary decides instead (a read-only
        # command ends with 0, a mutating one reports what it did).
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout was closed")


def make_console(stream: IO[str], *, color: bool, width: int | None) -> Console:
    """A console that draws Text only: no markup, emoji or highlighting, ever."""
    return _Console(
        file=stream,
        markup=False,
        emoji=False,
        highlight=False,
        color_system=_color_system() if color else None,
        no_color=not color,
        force_terminal=color or None,
        width=width or _stream_width(stream),
        soft_wrap=False,
        legacy_windows=False,
    )


def _color_system() -> Literal["standard", "truecolor"]:
    # Only standard colours are used, but truecolor terminals say so and get exact RGB.
    truecolor = os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")
    return "truecolor" if truecolor else "standard"


def _stream_width(stream: IO[str]) -> int:
    # Not a terminal: a fixed width, so piped tables do not depend on where they ran.
    if not isatty(stream):
        return 100
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError):
        return 80


def stdout_console(r: Renderer) -> Console:
    return make_console(r.stdout, color=r.stdout_color, width=r.width)


def width_of(text: str) -> int:
    """Terminal cells taken by `text`: ASCII (the common case) needs no measuring."""
    return len(text) if text.isascii() else cell_len(text)


def fit(text: str, width: int) -> str:
    """At most `width` cells, cut with `…`."""
    if width <= 0:
        return ""
    if text.isascii():  # the common case, and much cheaper than measuring cells
        return text if len(text) <= width else text[: width - 1] + "…"
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1) + "…"


class Rows:
    """Aligned rows built as one string plus style spans, drawn with a single print.

    Building a `Text` per cell (or a rich `Table`) costs far more than the output for
    thousands of rows; one string with spans keeps colour at a fraction of the cost.
    """

    def __init__(self, widths: Sequence[int], right: Sequence[bool]) -> None:
        self.widths = list(widths)
        self.right = list(right)
        self._parts: list[str] = []
        self._spans: list[Span] = []
        self._pos = 0

    def add(self, cells: Sequence[Cell]) -> None:
        last = len(cells) - 1
        if self._parts:
            self._put("\n", "")
        # Rows may stop short of the last columns (a result line without a note).
        for i, ((text, style), width, right) in enumerate(
            zip(cells, self.widths, self.right, strict=False)
        ):
            if i:
                self._put(GAP, "")
            fitted = fit(text, width)
            padding = " " * (width - width_of(fitted))
            if right:
                self._put(padding, "")
            self._put(fitted, style)
            # No padding after the last column: trailing blanks are noise in a diff.
            if not right and i != last:
                self._put(padding, "")

    def _put(self, text: str, style: str) -> None:
        if style and text:
            self._spans.append(Span(self._pos, self._pos + len(text), style))
        self._parts.append(text)
        self._pos += len(text)

    def print(self, console: Console) -> None:
        if self._parts:
            text = Text("".join(self._parts), spans=self._spans)
            console.print(text, no_wrap=True, overflow="ellipsis", crop=True)


def print_lines(console: Console, lines: Sequence[Text]) -> None:
    if lines:
        console.print(Text("\n").join(lines), no_wrap=True, overflow="ellipsis", crop=True)


def header_cells(headers: Sequence[str]) -> list[Cell]:
    return [(h, "bold") for h in headers]
