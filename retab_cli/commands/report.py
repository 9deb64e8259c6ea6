"""`retab partitions report JOURNAL...`: one row per document of one or more batch journals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli.commands._common import command

if TYPE_CHECKING:
    from retab_cli.session import Env


@command(options=(), output="table")  # its own -o: it has modes of its own (csv, markdown)
def report(
    env: Env,
    journals: Annotated[list[str], typer.Argument(
        metavar="JOURNAL", help="Batch journals (the shards of one batch merge by path).",
        show_default=False)],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="MODE", show_default=False,
        help="Output: auto, table, json, jsonl, csv or markdown [env: RETAB_OUTPUT]. auto is a "
             "table on a terminal, JSON otherwise.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    fields: Annotated[str | None, typer.Option(
        metavar="FIELDS", show_default=False,
        help="Comma-separated columns: path, sha256, partition_id, status, pages, chunks, credits, "
             "error_code, error_message, output_dir.")] = None,
) -> int:
    """Report a batch from its journals: path, sha256, partition id, status, pages, chunks,
    credits, error and output directory of every document, then totals (on stderr; in the
    table for markdown). -o csv for spreadsheets, -o markdown for $GITHUB_STEP_SUMMARY."""
    from retab_cli.batch.report_output import ReportRequest, write_report

    request = ReportRequest.checked(env, journals, output, json, fields)

    async def main() -> int:
        return write_report(env, request)

    return env.run(main)
