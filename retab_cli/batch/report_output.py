"""`partitions report` output: the mode chosen once, the journals merged, rows streamed.

Modes: table (fixed-width columns, streamed page by page; totals on stderr), json (one
array, streamed), jsonl (one row per line), csv (RFC 4180, formulas defused) and
markdown (a table and its totals line, for $GITHUB_STEP_SUMMARY). The totals line goes
to stderr in every mode but markdown, where it is part of the data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retab_cli import errors
from retab_cli.batch.report import (
    Totals,
    check_fields,
    markdown_lines,
    merged_rows,
    report_row,
    tally,
    write_csv,
)
from retab_cli.errors import UsageError
from retab_cli.parsing import choose

if TYPE_CHECKING:
    from retab_cli.batch.journal import Journal
    from retab_cli.session import Env

OWN_MODES = ("csv", "markdown")  # report's own writers, beside the shared ones of docs/design.md §2
REPORT_MODES = ("auto", "table", "json", "jsonl", "csv", "markdown")
# The table's columns when --fields is not given: the path last, so it gets the room left.
TABLE_FIELDS = ("status", "pages", "chunks", "credits", "partition_id", "error_code", "path")
PAGE = 500  # rows drawn at a time: the table and the JSON array stream


@dataclass(frozen=True)
class ReportRequest:
    journals: tuple[Path, ...]
    mode: str                     # table, json, jsonl, csv or markdown
    fields: tuple[str, ...]

    @classmethod
    def checked(cls, env: Env, journals: Sequence[str], output: str | None, json: bool,
                fields: str | None) -> ReportRequest:
        """Refuse bad options before any journal is opened."""
        if not journals:
            raise UsageError("no journal given: pass one or more JOURNAL files")
        chosen = output if output is not None else os.environ.get("RETAB_OUTPUT") or None
        if chosen is not None:  # its own list of modes, with the hint for a near miss
            chosen = choose(chosen, REPORT_MODES, "output mode")
        if chosen in OWN_MODES:
            if json:
                raise UsageError("conflicting output options: choose one of -o and --json")
            mode = chosen
        else:
            env.choose_output(chosen if output is not None else None, json)
            mode = env.renderer.mode
        names = check_fields([fields] if fields is not None else None)
        if fields is None and mode == "table":
            names = TABLE_FIELDS
        env.renderer.fields = list(names) if mode in ("table", "json", "jsonl") else None
        return cls(tuple(Path(j) for j in journals), mode, names)


def write_report(env: Env, request: ReportRequest) -> int:
    """Merge the journals and write every row; the totals line last."""
    from retab_cli.batch.journal import Journal

    with ExitStack() as stack:
        opened = [stack.enter_context(Journal.read(path)) for path in request.journals]
        _warn_mixed(env, opened)
        totals = Totals()
        records = tally((report_row(row) for row in merged_rows(opened)), totals)
        _write(env, request, records, totals)
    if request.mode != "markdown":
        env.renderer.info(totals.summary())
    return errors.OK


def _write(env: Env, request: ReportRequest, records: Iterator[dict[str, Any]],
           totals: Totals) -> None:
    renderer = env.renderer
    if request.mode == "csv":
        write_csv(records, request.fields, renderer.stdout)
        renderer.stdout.flush()
    elif request.mode == "markdown":
        for line in markdown_lines(records, request.fields, totals):
            renderer.line(line)
    elif request.mode == "jsonl":
        for record in records:
            renderer.jsonl(record)
    else:  # table or json, streamed a page at a time
        renderer.begin_list()
        while page := list(islice(records, PAGE)):
            renderer.list_items(page)
        if request.mode == "json":
            renderer.end_list({})
        elif totals.documents == 0:
            renderer.info("no documents in the journal")


def _warn_mixed(env: Env, journals: Sequence[Journal]) -> None:
    """Journals of different parameters are not shards of one batch: say so, go on."""
    hashes = {j.params_hash for j in journals}
    if len(hashes) > 1:
        env.renderer.warn("warning: these journals were written with different parameters; "
                          "merging them by path anyway")

