"""Table views of partitions: the only module that imports rich (DESIGN §2, §8).

The Renderer imports this module only when a table is drawn, so the JSON path never
pays for rich. Every server string goes through `sanitize` and is drawn as `Text` on
a console made with markup, emoji and highlighting off, so nothing a server sends can
style, move or rewrite the terminal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import IO, Any, Literal

# ruff's banned-api still names the old render.py; this module is the allowed home.
from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Span, Text

from retab_cli.models import Partition, PartitionChunkLikelihood, PrimitiveError
from retab_cli.parsing import parse_time
from retab_cli.render import Renderer, dumps, format_number, isatty, pick, sanitize
from retab_cli.statuses import ACTIVE, KNOWN_STATUSES

# A table cell before layout: its plain text and a rich style ("" for none).
Cell = tuple[str, str]

STATUS_STYLES = {
    "pending": "dim",
    "queued": "dim",
    "in_progress": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}

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

# A rich Table measures every cell several times: past this many chunks, plain lines.
RICH_TABLE_MAX_ROWS = 200
# Past this many pages the page map is a one-line summary instead of cells.
PAGE_MAP_MAX_PAGES = 500
# `prtn_` + 21 characters: ids are never truncated in the list.
ID_WIDTH = 26
STATUS_WIDTH = len("in_progress")
GAP = "  "
EMPTY = "—"
MISSING = "-"


# ---- consoles ----------------------------------------------------------------------


def make_console(stream: IO[str], *, color: bool, width: int | None) -> Console:
    """A console that draws Text only: no markup, emoji or highlighting, ever."""
    return Console(
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


def _stdout_console(r: Renderer) -> Console:
    return make_console(r.stdout, color=r.stdout_color, width=r.width)


# ---- small formatters -----------------------------------------------------------------


def status_text(status: object) -> Text:
    """A status word in its colour; statuses this client does not know are plain."""
    word, style = _status_cell(status)
    return Text(word, style=style)


def _status_cell(status: object) -> Cell:
    word = sanitize(status, single_line=True)
    return (word, STATUS_STYLES.get(word, ""))


def page_ranges(pages: Sequence[int]) -> str:
    """`[1, 2, 3, 5]` -> `"1-3, 5"`: sorted, de-duplicated, `—` when empty."""
    ordered = sorted(set(pages))
    if not ordered:
        return EMPTY
    parts: list[str] = []
    start = prev = ordered[0]
    for page in ordered[1:]:
        if page != prev + 1:
            parts.append(_range(start, prev))
            start = page
        prev = page
    parts.append(_range(start, prev))
    return ", ".join(parts)


def _range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def format_credits(credits: float) -> str:
    """`7 credits ($0.07)`: 1 credit is $0.01 (CONTRACT, pricing facts)."""
    amount = format_number(credits)
    unit = "credit" if amount == "1" else "credits"
    if not math.isfinite(credits):
        return f"{amount} {unit}"
    # Cents as usual; more decimals only when a fraction of a cent was charged.
    places = max(2, len(amount.partition(".")[2]) + 2)
    return f"{amount} {unit} (${Decimal(amount) / 100:.{places}f})"


def age(now: datetime, when: datetime) -> str:
    """`12s ago`, `3m ago`, `2h ago`, `5d ago`, `2y ago`."""
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        # The server's clock may run ahead of ours: say so rather than show nonsense.
        return "just now" if seconds > -60 else f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    for limit, size, unit in ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h"),
                              (365 * 86400, 86400, "d")):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // (365 * 86400)}y"


def created_text(r: Renderer, created_at: object, *, compact: bool = False) -> str:
    """An age on a terminal, the ISO time otherwise (as received, or compact for lists)."""
    if created_at is None:
        return MISSING if compact else EMPTY
    when = parse_time(created_at) if isinstance(created_at, str) else None
    if when is None:
        return sanitize(created_at, single_line=True)
    if r.stdout_tty:
        return age(r.now, when)
    if compact:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return sanitize(created_at, single_line=True)


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%" if math.isfinite(value) else str(value)


def _cells(text: str) -> int:
    """Terminal cells taken by `text`: ASCII (the common case) needs no measuring."""
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int) -> str:
    """At most `width` cells, cut with `…`."""
    if width <= 0:
        return ""
    if text.isascii():  # the common case, and much cheaper than measuring cells
        return text if len(text) <= width else text[: width - 1] + "…"
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1) + "…"


class _Rows:
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
            fitted = _fit(text, width)
            padding = " " * (width - _cells(fitted))
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


def _print_lines(console: Console, lines: Sequence[Text]) -> None:
    if lines:
        console.print(Text("\n").join(lines), no_wrap=True, overflow="ellipsis", crop=True)


def _header_cells(headers: Sequence[str]) -> list[Cell]:
    return [(h, "bold") for h in headers]


# ---- field columns (--fields) -----------------------------------------------------------


def field_cell(r: Renderer, path: str, value: Any) -> Cell:
    """A value picked from a raw object, shown in one line."""
    if value is None:
        return (MISSING, "")
    if path == "status" or path.endswith(".status"):
        return _status_cell(value)
    if path == "created_at" and isinstance(value, str):
        return (created_text(r, value, compact=True), "")
    if isinstance(value, bool):
        return ("true" if value else "false", "")
    if isinstance(value, int | float):
        return (format_number(value), "")
    if isinstance(value, str):
        return (sanitize(value, single_line=True), "")
    # Objects and arrays: compact JSON, cut by the column width.
    return (sanitize(_safe_dumps(value), single_line=True), "")


def _safe_dumps(value: Any) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _measure(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[int]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, _cells(text)) for w, (text, _) in zip(widths, row, strict=True)]
    return widths


def _fields_widths(headers: Sequence[str], rows: Sequence[Sequence[Cell]], width: int) -> list[int]:
    """Measured widths (all rows are in memory here); the last column takes the rest."""
    widths = _measure(headers, rows)
    capped = [min(w, max(len(h), 40)) for w, h in zip(widths[:-1], headers[:-1], strict=True)]
    used = sum(capped) + len(GAP) * len(capped)
    return [*capped, max(min(widths[-1], width - used), len(headers[-1]))]


# ---- one partition: header, chunks, page map, error ------------------------------------


def partition_views(
    r: Renderer, raws: Sequence[dict[str, Any]], *, with_output: bool = True
) -> None:
    """Full views of partitions (blank line between), or a --fields table.

    `with_output=False` is for objects fetched with `include_output=false`, where an
    empty `output` means "not sent", not "no chunks".
    """
    partitions = [Partition.from_raw(raw) for raw in raws]
    console = _stdout_console(r)
    if r.fields:
        _fields_table(r, console, [p.raw for p in partitions], r.fields)
        return
    for i, partition in enumerate(partitions):
        if i:
            console.print()
        _partition_view(r, console, partition, with_output)


def _fields_table(
    r: Renderer, console: Console, raws: Sequence[dict[str, Any]], fields: Sequence[str]
) -> None:
    headers = [f.upper() for f in fields]
    rows = [[field_cell(r, f, pick(raw, f)) for f in fields] for raw in raws]
    table = _Rows(_fields_widths(headers, rows, console.width), [False] * len(fields))
    for row in [_header_cells(headers), *rows]:
        table.add(row)
    table.print(console)


def _partition_view(r: Renderer, console: Console, p: Partition, with_output: bool) -> None:
    _print_lines(console, _header_lines(r, p))
    # Unknown statuses show whatever output they carry rather than hide it.
    if p.output and (p.status == "completed" or p.status not in KNOWN_STATUSES):
        console.print()
        _chunks(console, p)
        console.print()
        _page_map(console, [c.pages for c in p.output])
    else:
        note = _no_output_note(p, with_output)
        if note:
            console.print()
            console.print(Text(note), no_wrap=True, overflow="ellipsis")
    if p.error is not None:
        console.print()
        _print_lines(console, _error_lines(p.error))


def _header_lines(r: Renderer, p: Partition) -> list[Text]:
    rows: list[tuple[str, Text]] = [
        ("id", Text(sanitize(p.id, single_line=True), style="bold")),
        ("status", status_text(p.status)),
        ("file", _file_text(p)),
        ("model", Text(sanitize(p.model, single_line=True) or EMPTY)),
        ("key", Text(sanitize(p.key, single_line=True) or EMPTY)),
        ("instructions", Text(_first_line(p.instructions))),
        ("consensus", Text(_consensus_text(p))),
        ("created", Text(created_text(r, p.created_at))),
        ("credits", Text(EMPTY if p.credits is None else format_credits(p.credits))),
    ]
    if p.output:
        pages = max((pg for c in p.output for pg in c.pages), default=0)
        rows.append(("pages", Text(str(pages) if pages > 0 else EMPTY)))
        rows.append(("chunks", Text(str(len(p.output)))))
    width = max(len(label) for label, _ in rows)
    return [Text.assemble((label.ljust(width), "dim"), GAP, value) for label, value in rows]


def _file_text(p: Partition) -> Text:
    parts = [sanitize(v, single_line=True) for v in (p.file.filename, p.file.mime_type,
                                                      p.file.id) if v]
    if not parts:
        return Text(EMPTY)
    text = Text()
    text.append(parts[0], style="bold")
    for part in parts[1:]:
        text.append(GAP)
        text.append(part, style="dim")
    return text


def _first_line(text: str | None) -> str:
    if not text:
        return EMPTY
    # Split on newlines only: a stray `\r` stays visible as an escape.
    lines = text.strip("\n").split("\n")
    first = sanitize(lines[0], single_line=True)
    return f"{first} …" if len(lines) > 1 else first


def _consensus_text(p: Partition) -> str:
    votes = "1 vote" if p.n_consensus == 1 else f"{p.n_consensus} votes"
    overlap = "overlap allowed" if p.allow_overlap else "no overlap"
    return f"{votes}, {overlap}"


def _no_output_note(p: Partition, with_output: bool) -> str | None:
    if p.status in ACTIVE:
        return "output appears when the run completes"
    if p.status == "completed" and not with_output:
        return "chunks not fetched: run without --no-output to see them"
    if p.status == "completed":
        return "no chunks: the key was not found in the document"
    if p.status == "cancelled":
        return "no output: the run was cancelled"
    if p.status == "failed":
        return None if p.error is not None else "no output: the run failed"
    return None


def _error_lines(error: PrimitiveError) -> list[Text]:
    code = sanitize(error.code, single_line=True) or "error"
    message = sanitize(error.message, single_line=True)
    lines = [Text(f"error: {code}: {message}" if message else f"error: {code}", style="red")]
    if error.details:
        details = _safe_dumps(error.details)
        # Big details belong to the JSON view; a table shows them only when they are short.
        if len(details) <= 200:
            lines.append(Text(f"details: {sanitize(details, single_line=True)}", style="dim"))
        else:
            lines.append(Text("details: (long; see -o json)", style="dim"))
    return lines


# ---- chunks ---------------------------------------------------------------------------


def _chunk_label(index: int) -> str:
    return str(index + 1)


def _chunk_style(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _chunk_rows(p: Partition) -> tuple[list[str], list[list[Cell]], list[bool]]:
    """Headers, cells and right-alignment of the chunk table."""
    likelihoods = p.consensus.likelihoods if p.consensus else []
    headers = ["#", "KEY", "PAGES", "COUNT"]
    right = [True, False, False, True]
    if likelihoods:
        headers.append("CONFIDENCE")
        right.append(True)
    rows: list[list[Cell]] = []
    for i, chunk in enumerate(p.output):
        row = [
            (_chunk_label(i), _chunk_style(i)),
            (sanitize(chunk.key, single_line=True), ""),
            (page_ranges(chunk.pages), ""),
            (str(len(set(chunk.pages))), ""),
        ]
        if likelihoods:
            row.append((_confidence(likelihoods[i] if i < len(likelihoods) else None), ""))
        rows.append(row)
    return headers, rows, right


def _confidence(likelihood: PartitionChunkLikelihood | None) -> str:
    if likelihood is None or likelihood.key is None:
        return EMPTY
    text = _percent(likelihood.key)
    pages = [v for v in likelihood.pages if math.isfinite(v)]
    if pages and min(pages) < likelihood.key:
        text += f" (min {_percent(min(pages))})"
    return text


def _chunks(console: Console, p: Partition) -> None:
    headers, rows, right = _chunk_rows(p)
    if len(rows) > RICH_TABLE_MAX_ROWS:
        _chunk_lines(console, headers, rows, right)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  header_style="bold")
    for header, rj in zip(headers, right, strict=True):
        table.add_column(header, justify="right" if rj else "left",
                         overflow="fold", no_wrap=header in ("#", "COUNT"))
    for row in rows:
        table.add_row(*(Text(text, style=style) for text, style in row))
    console.print(table)


def _chunk_lines(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[Cell]],
    right: Sequence[bool],
) -> None:
    """The chunk table as plain aligned lines: fast for thousands of chunks."""
    widths = _measure(headers, rows)
    # Keys may be long; pages get what is left, and lines are cut at the console width.
    key_cap = max(12, console.width // 3)
    widths[1] = min(widths[1], key_cap)
    fixed = sum(widths) - widths[2] + len(GAP) * (len(widths) - 1)
    widths[2] = max(len(headers[2]), min(widths[2], console.width - fixed))
    table = _Rows(widths, right)
    for row in [_header_cells(headers), *rows]:
        table.add(row)
    table.print(console)


# ---- page map -------------------------------------------------------------------------


def _page_owners(chunk_pages: Sequence[Sequence[int]]) -> tuple[int, dict[int, int]]:
    """The last page, and each assigned page's chunk index (-1 when in several)."""
    owners: dict[int, int] = {}
    for index, pages in enumerate(chunk_pages):
        for page in set(pages):
            if page < 1:
                continue
            owners[page] = index if owners.get(page, index) == index else -1
    return max(owners, default=0), owners


def _page_map(console: Console, chunk_pages: Sequence[Sequence[int]]) -> None:
    last, owners = _page_owners(chunk_pages)
    if last == 0:
        return
    overlaps = sum(1 for owner in owners.values() if owner == -1)
    unassigned = last - len(owners)
    if last > PAGE_MAP_MAX_PAGES:
        summary = ", ".join((_plural(last, "page"), _plural(len(chunk_pages), "chunk"),
                             _plural(overlaps, "overlapping page"),
                             _plural(unassigned, "unassigned page")))
        console.print(Text(f"page map: {summary}"), no_wrap=True, overflow="ellipsis")
        return
    lines = [Text("page map", style="bold"), *_map_rows(console.width, len(chunk_pages),
                                                          last, owners)]
    legend = _map_legend(overlaps, unassigned)
    if legend:
        lines.append(Text(legend, style="dim"))
    _print_lines(console, lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
    return Text(_chunk_label(owner).rjust(width), style=_chunk_style(owner))


def _map_legend(overlaps: int, unassigned: int) -> str:
    parts = ["cells show the chunk #"]
    if overlaps:
        parts.append("* = page in several chunks")
    if unassigned:
        parts.append("· = page in no chunk")
    return ", ".join(parts)


# ---- partitions list (streamed) --------------------------------------------------------


def _list_columns(r: Renderer, width: int) -> list[tuple[str, int, bool]]:
    """(header, width, right-aligned) for the default list: fixed, never measured."""
    created = 8 if r.stdout_tty else 20
    columns = [("ID", ID_WIDTH, False), ("STATUS", STATUS_WIDTH, False), ("CHUNKS", 6, True),
               ("CREDITS", 7, True), ("CREATED", created, False)]
    # Narrow terminals: drop the least useful columns until the filename gets room.
    for drop in ("CREDITS", "CHUNKS", "CREATED", None):
        used = sum(w for _, w, _ in columns) + len(GAP) * len(columns)
        if width - used >= 10:
            return [*columns, ("FILE", width - used, False)]
        if drop is None:
            return columns
        columns = [c for c in columns if c[0] != drop]
    return columns


_FIELD_WIDTHS = {"id": ID_WIDTH, "status": STATUS_WIDTH, "usage.credits": 7, "n_consensus": 3,
                 "allow_overlap": 5, "model": 11, "file.id": 21, "file.mime_type": 15,
                 "file.filename": 24, "key": 20}


def _field_columns(r: Renderer, fields: Sequence[str], width: int) -> list[tuple[str, int, bool]]:
    """Fixed widths for --fields columns (known fields sized, the last takes the rest)."""
    columns: list[tuple[str, int, bool]] = []
    created = 8 if r.stdout_tty else 20
    for field in fields:
        natural = created if field == "created_at" else _FIELD_WIDTHS.get(field, 16)
        columns.append((field.upper(), max(len(field), natural), False))
    used = sum(w for _, w, _ in columns[:-1]) + len(GAP) * (len(columns) - 1)
    header, last_width, rj = columns[-1]
    columns[-1] = (header, max(last_width, width - used), rj)
    return columns


def list_rows(r: Renderer, raws: Sequence[dict[str, Any]], *, first: bool) -> None:
    """One page of the `partitions list` table, with a header on the first page only.

    Pages arrive one at a time and memory must stay constant, so the column widths
    come from the console width, never from the data.
    """
    if not raws:
        # An empty page draws nothing, not even the header: the next page is still first.
        return
    console = _stdout_console(r)
    if r.fields:
        columns = _field_columns(r, r.fields, console.width)
        cells = [[field_cell(r, f, pick(_as_dict(raw), f)) for f in r.fields] for raw in raws]
    else:
        columns = _list_columns(r, console.width)
        cells = [_list_cells(r, _as_dict(raw), [c[0] for c in columns]) for raw in raws]
    table = _Rows([w for _, w, _ in columns], [rj for _, _, rj in columns])
    if first:
        table.add(_header_cells([h for h, _, _ in columns]))
    for row in cells:
        table.add(row)
    table.print(console)


def _as_dict(raw: Any) -> Mapping[str, Any]:
    # List items are read leniently: one odd item must not end a long listing.
    return raw if isinstance(raw, Mapping) else {}


def _list_cells(r: Renderer, raw: Mapping[str, Any], headers: Sequence[str]) -> list[Cell]:
    status = raw.get("status")
    output = raw.get("output")
    credits = pick(raw, "usage.credits")
    chunks = str(len(output)) if status == "completed" and isinstance(output, list) else MISSING
    values: dict[str, Cell] = {
        "ID": (sanitize(raw.get("id", MISSING), single_line=True), ""),
        "STATUS": _status_cell(status) if status is not None else (MISSING, ""),
        "CHUNKS": (chunks, ""),
        "CREDITS": (format_number(credits) if _is_number(credits) else MISSING, ""),
        "CREATED": (created_text(r, raw.get("created_at"), compact=True), ""),
        "FILE": (sanitize(pick(raw, "file.filename") or MISSING, single_line=True), ""),
    }
    return [values[h] for h in headers]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def list_summary(r: Renderer, counts: Mapping[str, int]) -> None:
    """`12 partitions: 9 completed, 2 failed, 1 in_progress` on stderr."""
    console = make_console(r.stderr, color=r.stderr_color, width=r.width)
    total = sum(counts.values())
    if not total:
        console.print(Text("no partitions match"), soft_wrap=True)
        return
    # Most frequent first; ties in lifecycle order, unknown statuses after known ones.
    rank = {s: i for i, s in enumerate(KNOWN_STATUSES)}
    order = sorted((s for s in counts if counts[s]),
                   key=lambda s: (-counts[s], rank.get(s, len(rank)), s))
    text = Text(f"{_plural(total, 'partition')}: ")
    for i, status in enumerate(order):
        if i:
            text.append(", ")
        text.append(f"{counts[status]} ")
        text.append_text(status_text(status))
    console.print(text, soft_wrap=True)


# ---- cancel / delete results -----------------------------------------------------------


def result_lines(r: Renderer, rows: Sequence[tuple[str, str, str]]) -> None:
    """`prtn_x  cancelled`, `prtn_y  completed  already terminal, unchanged`, ..."""
    if not rows:
        return
    console = _stdout_console(r)
    cells = [[(sanitize(ident, single_line=True), ""), _status_cell(word),
              (sanitize(note, single_line=True), "dim")] for ident, word, note in rows]
    # Never cut: ids and notes are what the user acts on. Commands call this once per
    # row as results arrive, so the status column has a fixed minimum to stay aligned.
    id_width, word_width, note_width = _measure(["", "", ""], cells)
    table = _Rows([id_width, max(word_width, STATUS_WIDTH), note_width], [False] * 3)
    for row in cells:
        table.add(row if row[2][0] else row[:2])
    text_width = sum(table.widths) + 2 * len(GAP)
    console.width = max(console.width, text_width)
    table.print(console)


# ---- upload progress -----------------------------------------------------------------


class UploadProgress:
    """A transient progress bar on stderr while `create` uploads several files.

    Drawn only on a terminal, without -q or --no-progress; otherwise every call does nothing, so
    forced colour or a redirected stderr never gets a live display.
    """

    def __init__(self, r: Renderer, *, total: int) -> None:
        self._total = total
        self._task: TaskID | None = None
        self._progress: Progress | None = None
        if r.stderr_tty and r.progress and not r.quiet:
            console = make_console(r.stderr, color=r.stderr_color, width=r.width)
            self._progress = Progress(
                TextColumn("uploading", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[name]}", markup=False),
                console=console,
                transient=True,
                # stdout carries data: the progress display must not capture it.
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> UploadProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("uploading", total=self._total, name="")
        return self

    def advance(self, filename: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1,
                                  name=sanitize(filename, single_line=True))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
