"""`retab partitions get ID... | -`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import (
    Env,
    FieldsOpt,
    JsonOpt,
    Outcome,
    OutputOpt,
    QuietOpt,
    Tally,
    one_id,
    ordered,
    read_ids,
)
from retab_cli.recent import complete_ids


def get(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(
        metavar="ID", help="Partition ids, or - to read them from stdin.", show_default=False,
        autocompletion=complete_ids)],
    no_output: Annotated[bool, typer.Option(
        "--no-output", help="Fetch the cheap status-only view (include_output=false).")] = False,
    exit_status: Annotated[bool, typer.Option(
        "--exit-status", help="Exit with the run's status: 0 completed, 3 failed, "
                              "5 cancelled, 8 still running (one check, never a wait).")] = False,
    output: OutputOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Show partition runs: status, chunks with their pages, a page map, credits."""
    env = Env(ctx, output=output, json=json, quiet=quiet, fields=fields)
    try:
        wanted = read_ids(ids)
    except errors.RetabError as exc:
        raise env.fail(exc) from None

    async def main() -> int:
        async with env.client() as client:
            async def fetch(partition_id: str) -> Any:
                result = await client.get(partition_id, include_output=not no_output)
                return result.data

            tally = Tally()

            def collect(outcome: Outcome) -> None:
                if outcome.error is not None:
                    tally.failed(env.renderer, outcome.error)
                    return
                tally.values.append(outcome.value)
                if exit_status:
                    tally.codes.append(errors.exit_for_status(str(outcome.value.get("status"))))
                if env.renderer.mode == "jsonl":
                    env.renderer.jsonl(outcome.value)

            await ordered(wanted, fetch, collect)
        if env.renderer.mode != "jsonl" and tally.values:
            env.renderer.partitions(tally.values, single=one_id(ids), with_output=not no_output)
        return tally.code

    env.run(main)
