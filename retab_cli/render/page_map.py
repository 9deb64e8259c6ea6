"""The page map: which chunk each page of the document went to, drawn as coloured cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.text import Text

from retab_cli.render.console import print_lines
from retab_cli.text import plural

# Chunk colours for the page map and the `#` column: standard colours only, so the
# map reads the same on 16-colour terminals; red is kept for overlaps.
PALETTE = (
    "white on blue",
    "black on green",
    "black on yellow",
    "white on magenta",
    "black on cyan",
    "black on bright_blue",
    "black on bright_green",
    "black on bright_yellow",
    "black on bright_magenta",
    "black on bright_cyan",
)
OVERLAP_STYLE = "bold white on red"
UNASSIGNED_STYLE = "dim"
# Past this many pages the page map is a one-line summary instead of cells.
PAGE_MAP_MAX_PAGES = 500


def chunk_label(index: int) -> str:
    return str(index + 1)


def chunk_style(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _page_owners(chunk_pages: Sequence[Sequence[int]]) -> tuple[int, dict[int, int]]:
    """The last page, and each assigned page's chunk index (-1 when in several)."""
    owners: dict[int, int] = {}
    for index, pages in enumerate(chunk_pages):
        for page in set(pages):
            if page < 1:
                continue
            owners[page] = index if owners.get(page, index) == index else -1
    return max(owners, default=0), owners


def page_map(console: Console, chunk_pages: Sequence[Sequence[int]]) -> None:
    last, owners = _page_owners(chunk_pages)
    if last == 0:
        return
    overlaps = sum(1 for owner in owners.values() if owner == -1)
    unassigned = last - len(owners)
    if last > PAGE_MAP_MAX_PAGES:
        summary = ", ".join((plural(last, "page"), plural(len(chunk_pages), "chunk"),
                             plural(overlaps, "overlapping page"),
                             plural(unassigned, "unassigned page")))
        console.print(Text(f"page map: {summary}"), no_wrap=True, overflow="ellipsis")
        return
    lines = [Text("page map", style="bold"), *_map_rows(console.width, len(chunk_pages),
                                                          last, owners)]
    legend = _map_legend(overlaps, unassigned)
    if legend:
        lines.append(Text(legend, style="dim"))
    print_lines(console, lines)


def _map_rows(width: int, chunks: int, last: int, owners: Mapping[int, int]) -> list[Text]:
    """Rows of page cells, each row starting at a page number (1, 11, 21, ... when wide)."""
    label_width = len(str(chunks))
    prefix_width = len(str(last))
    per_row = max(1, (width - prefix_width - 1) // (label_width + 1))
    if per_row >= 10:
        per_row -= per_row % 10
    rows: list[Text] = []
    for start in range(1, last + 1, per_row):
        row = Text()
        row.append(str(start).rjust(prefix_width) + " ", style="dim")
        for page in range(start, min(start + per_row, last + 1)):
            row.append(" ")
            row.append_text(_map_cell(owners.get(page), label_width))
        rows.append(row)
    return rows


def _map_cell(owner: int | None, width: int) -> Text:
    if owner is None:
        return Text("·".rjust(width), style=UNASSIGNED_STYLE)
    if owner == -1:
        return Text("*".rjust(width), style=OVERLAP_STYLE)
    return Text(chunk_label(owner).rjust(width), style=chunk_style(owner))


def _map_legend(overlaps: int, unassigned: int) -> str:
    parts = ["cells show the chunk #"]
    if overlaps:
        parts.append("* = page in several chunks")
    if unassigned:
        parts.append("· = page in no chunk")
    return ", ".join(parts)
