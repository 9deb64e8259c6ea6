"""`partitions report`: journals to rows and totals, as JSON-ready dicts, CSV or markdown.

Merging: several journals (the shards of one batch) merge by relative path, streamed
(each journal is read in path order). When two journals hold the same path, the row
with the newest attempt wins; on a tie, the one updated last; then the journal given
last. Totals count documents per status, chunks over documents, and pages and credits
once per run (documents with identical bytes share a run and its cost).
"""

from __future__ import annotations

import csv
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import IO, Any

from retab_cli.batch.estimate import dollars
from retab_cli.batch.journal import Journal, Row
from retab_cli.errors import UsageError
from retab_cli.text import format_number, plural, sanitize

FIELDS = ("path", "sha256", "partition_id", "status", "pages", "chunks", "credits",
          "error_code", "error_message", "output_dir")
_NUMERIC = frozenset({"pages", "chunks", "credits"})
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN_SPECIAL = "\\`*_[]<>|~&"


def check_fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    """`--fields` (repeated or comma-separated) as column names; all columns by default."""
    names = tuple(n.strip() for value in fields or () for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        raise UsageError(f"unknown field {unknown[0]!r} for report; choose from "
                         + ", ".join(FIELDS))
    return names or FIELDS


def merged_rows(journals: Sequence[Journal]) -> Iterator[Row]:
    """One row per relative path across the journals, in path order."""
    streams = [((row.relpath, index, row) for row in journal.rows())
               for index, journal in enumerate(journals)]
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    for _, group in groupby(merged, key=lambda item: item[0]):
        yield max(group, key=lambda item: (item[2].attempt or 0, item[2].updated_at,
                                           item[1]))[2]


def report_row(row: Row) -> dict[str, Any]:
    return {"path": row.relpath, "sha256": row.sha256, "partition_id": row.partition_id,
            "status": row.status, "pages": row.pages, "chunks": row.chunks,
            "credits": row.credits, "error_code": row.error_code,
            "error_message": row.error_message, "output_dir": row.split_dir}


def select(record: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {name: record[name] for name in fields}


@dataclass
class Totals:
    documents: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    chunks: int = 0
    _runs: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)

    def add(self, record: dict[str, Any]) -> None:
        self.documents += 1
        self.statuses[record["status"]] += 1
        self.chunks += record["chunks"] or 0
        if record["partition_id"]:
            self._runs[record["partition_id"]] = (record["pages"] or 0, record["credits"] or 0.0)

    def as_dict(self) -> dict[str, Any]:
        credits = round(sum(c for _, c in self._runs.values()), 6)
        return {"documents": self.documents, "statuses": dict(sorted(self.statuses.items())),
                "runs": len(self._runs), "pages": sum(p for p, _ in self._runs.values()),
                "chunks": self.chunks, "credits": credits, "dollars": dollars(credits)}

    def summary(self) -> str:
        """One plain line: `12 documents: 10 completed, 2 failed; 9 runs, 40 pages, ...`."""
        totals = self.as_dict()
        statuses = ", ".join(f"{n} {s}" for s, n in totals["statuses"].items()) or "none"
        return (f"{plural(totals['documents'], 'document')}: {statuses}; "
                f"{plural(totals['runs'], 'run')}, {plural(totals['pages'], 'page')}, "
                f"{plural(totals['chunks'], 'chunk')}, "
                f"{format_number(totals['credits'])} credits (${totals['dollars']:.2f})")


def tally(records: Iterable[dict[str, Any]], totals: Totals) -> Iterator[dict[str, Any]]:
    """Pass records through, adding each to `totals` (so one pass serves both)."""
    for record in records:
        totals.add(record)
        yield record


def write_csv(records: Iterable[dict[str, Any]], fields: Sequence[str], out: IO[str]) -> None:
    """RFC 4180 (CRLF, quotes doubled); cells that a spreadsheet would run as a formula
    start with `'`; local and server strings shown on one line, controls escaped."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow([_csv_cell(record[name]) for name in fields])


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return format_number(value) if isinstance(value, float) else str(value)
    text = sanitize(value, single_line=True)
    return "'" + text if text.startswith(_FORMULA_LEADS) else text


def markdown_lines(records: Iterable[dict[str, Any]], fields: Sequence[str],
                   totals: Totals) -> Iterator[str]:
    """A GitHub-flavoured table (for $GITHUB_STEP_SUMMARY), then the totals line.

    Totals are complete once the rows are consumed, so pass `tally(records, totals)`.
    """
    yield "| " + " | ".join(fields) + " |"
    yield "|" + "|".join(" ---: " if n in _NUMERIC else " --- " for n in fields) + "|"
    for record in records:
        yield "| " + " | ".join(_markdown_cell(record[name]) for name in fields) + " |"
    yield ""
    yield "**Totals:** " + _markdown_cell(totals.summary())


def _markdown_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format_number(value)
    text = sanitize(value, single_line=True)
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
