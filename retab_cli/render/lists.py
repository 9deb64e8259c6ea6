"""The streamed `partitions list` table, its status summary, and cancel/delete result lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from retab_cli.render import Renderer, format_number, pick, sanitize
from retab_cli.render.cells import (
    ID_WIDTH,
    MISSING,
    STATUS_WIDTH,
    created_text,
    field_cell,
    is_number,
    measure,
    status_cell,
    status_text,
)
from retab_cli.render.console import GAP, Cell, Rows, header_cells, make_console, stdout_console
from retab_cli.statuses import KNOWN_STATUSES
from retab_cli.text import plural


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
                 "file.filename": 24, "key": 20,
                 # batch report columns
                 "partition_id": ID_WIDTH, "pages": 5, "chunks": 6, "credits": 7, "sha256": 64}


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
    console = stdout_console(r)
    if r.fields:
        columns = _field_columns(r, r.fields, console.width)
        cells = [[field_cell(r, f, pick(_as_dict(raw), f)) for f in r.fields] for raw in raws]
    else:
        columns = _list_columns(r, console.width)
        cells = [_list_cells(r, _as_dict(raw), [c[0] for c in columns]) for raw in raws]
    table = Rows([w for _, w, _ in columns], [rj for _, _, rj in columns])
    if first:
        table.add(header_cells([h for h, _, _ in columns]))
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
        "STATUS": status_cell(status) if status is not None else (MISSING, ""),
        "CHUNKS": (chunks, ""),
        "CREDITS": (format_number(credits) if is_number(credits) else MISSING, ""),
        "CREATED": (created_text(r, raw.get("created_at"), compact=True), ""),
        "FILE": (sanitize(pick(raw, "file.filename") or MISSING, single_line=True), ""),
    }
    return [values[h] for h in headers]


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
    text = Text(f"{plural(total, 'partition')}: ")
    for i, status in enumerate(order):
        if i:
            text.append(", ")
        text.append(f"{counts[status]} ")
        text.append_text(status_text(status))
    console.print(text, soft_wrap=True)


def result_lines(r: Renderer, rows: Sequence[tuple[str, str, str]]) -> None:
    """`prtn_x  cancelled`, `prtn_y  completed  already terminal, unchanged`, ..."""
    if not rows:
        return
    console = stdout_console(r)
    cells = [[(sanitize(ident, single_line=True), ""), status_cell(word),
              (sanitize(note, single_line=True), "dim")] for ident, word, note in rows]
    # Never cut: ids and notes are what the user acts on. Commands call this once per
    # row as results arrive, so the status column has a fixed minimum to stay aligned.
    id_width, word_width, note_width = measure(["", "", ""], cells)
    table = Rows([id_width, max(word_width, STATUS_WIDTH), note_width], [False] * 3)
    for row in cells:
        table.add(row if row[2][0] else row[:2])
    text_width = sum(table.widths) + 2 * len(GAP)
    console.width = max(console.width, text_width)
    table.print(console)
