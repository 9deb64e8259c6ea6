"""One partition in full: its header, chunk table, page map and error; or a --fields table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from retab_cli.models import Partition, PartitionChunkLikelihood, PrimitiveError
from retab_cli.render import Renderer, pick, sanitize
from retab_cli.render.cells import (
    EMPTY,
    created_text,
    field_cell,
    format_credits,
    measure,
    page_ranges,
    percent,
    safe_dumps,
    status_text,
)
from retab_cli.render.console import GAP, Cell, Rows, header_cells, print_lines, stdout_console
from retab_cli.render.page_map import chunk_label, chunk_style, page_map
from retab_cli.statuses import ACTIVE, KNOWN_STATUSES

# A rich Table measures every cell several times: past this many chunks, plain lines.
RICH_TABLE_MAX_ROWS = 200


def partition_views(
    r: Renderer, raws: Sequence[dict[str, Any]], *, with_output: bool = True
) -> None:
    """Full views of partitions (blank line between), or a --fields table.

    `with_output=False` is for objects fetched with `include_output=false`, where an
    empty `output` means "not sent", not "no chunks".
    """
    partitions = [Partition.from_raw(raw) for raw in raws]
    console = stdout_console(r)
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
    table = Rows(_fields_widths(headers, rows, console.width), [False] * len(fields))
    for row in [header_cells(headers), *rows]:
        table.add(row)
    table.print(console)


def _fields_widths(headers: Sequence[str], rows: Sequence[Sequence[Cell]], width: int) -> list[int]:
    """Measured widths (all rows are in memory here); the last column takes the rest."""
    widths = measure(headers, rows)
    capped = [min(w, max(len(h), 40)) for w, h in zip(widths[:-1], headers[:-1], strict=True)]
    used = sum(capped) + len(GAP) * len(capped)
    return [*capped, max(min(widths[-1], width - used), len(headers[-1]))]


def _partition_view(r: Renderer, console: Console, p: Partition, with_output: bool) -> None:
    print_lines(console, _header_lines(r, p))
    # Unknown statuses show whatever output they carry rather than hide it.
    if p.output and (p.status == "completed" or p.status not in KNOWN_STATUSES):
        console.print()
        _chunks(console, p)
        console.print()
        page_map(console, [c.pages for c in p.output])
    else:
        note = _no_output_note(p, with_output)
        if note:
            console.print()
            console.print(Text(note), no_wrap=True, overflow="ellipsis")
    if p.error is not None:
        console.print()
        print_lines(console, _error_lines(p.error))


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
        details = safe_dumps(error.details)
        # Big details belong to the JSON view; a table shows them only when they are short.
        if len(details) <= 200:
            lines.append(Text(f"details: {sanitize(details, single_line=True)}", style="dim"))
        else:
            lines.append(Text("details: (long; see -o json)", style="dim"))
    return lines


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
            (chunk_label(i), chunk_style(i)),
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
    text = percent(likelihood.key)
    pages = [v for v in likelihood.pages if math.isfinite(v)]
    if pages and min(pages) < likelihood.key:
        text += f" (min {percent(min(pages))})"
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
    widths = measure(headers, rows)
    # Keys may be long; pages get what is left, and lines are cut at the console width.
    key_cap = max(12, console.width // 3)
    widths[1] = min(widths[1], key_cap)
    fixed = sum(widths) - widths[2] + len(GAP) * (len(widths) - 1)
    widths[2] = max(len(headers[2]), min(widths[2], console.width - fixed))
    table = Rows(widths, right)
    for row in [header_cells(headers), *rows]:
        table.add(row)
    table.print(console)
