"""CSV on stdout (-o csv): a header, then one row per run, RFC 4180 (CRLF, quoted as
needed). Columns are the list table's, or --fields. Server strings are sanitised, and a
cell starting with = + - @ gets a leading ' so a spreadsheet does not run it as a
formula. One writer, for list, get and watch (and the batch report, when it wants CSV)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from retab_cli.render import format_number, pick, sanitize
from retab_cli.render.watching import chunk_count, credits_of

FORMULA_LEADS = ("=", "+", "-", "@")


def _chunks(raw: Mapping[str, Any]) -> Any:
    return chunk_count(raw) if raw.get("status") == "completed" else None


def _credits(raw: Mapping[str, Any]) -> Any:
    value = credits_of(raw)
    return format_number(value) if value is not None else None


# The default columns: the list table's, with machine-readable values.
LIST_COLUMNS: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("id", lambda raw: raw.get("id")),
    ("status", lambda raw: raw.get("status")),
    ("chunks", _chunks),
    ("credits", _credits),
    ("created_at", lambda raw: raw.get("created_at")),
    ("filename", lambda raw: pick(raw, "file.filename")),
)


def cell(value: Any) -> str:
    """One cell: empty for missing, JSON-ish scalars as text, strings made safe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        from retab_cli.render import dumps

        value = dumps(value)
    text = sanitize(str(value), single_line=True)
    return "'" + text if text.startswith(FORMULA_LEADS) else text


class CsvWriter:
    """Rows to a stream; the header once, before the first row."""

    def __init__(self, stream: IO[str], fields: Sequence[str] | None = None) -> None:
        self._stream = stream
        self._writer = csv.writer(stream, lineterminator="\r\n")
        self._fields = list(fields) if fields else None
        self._started = False

    def header(self) -> list[str]:
        return self._fields or [name for name, _ in LIST_COLUMNS]

    def row_of(self, raw: Mapping[str, Any]) -> list[str]:
        if self._fields:
            return [cell(pick(raw, f)) for f in self._fields]
        return [cell(get(raw)) for _, get in LIST_COLUMNS]

    def write(self, raws: Iterable[Any]) -> None:
        if not self._started:
            self._writer.writerow(self.header())
            self._started = True
        for raw in raws:
            self._writer.writerow(self.row_of(raw if isinstance(raw, Mapping) else {}))
        self._stream.flush()
