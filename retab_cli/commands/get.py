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

            found: list[dict[str, Any]] = []
            codes: list[int] = []

            def collect(outcome: Outcome) -> None:
                if outcome.error is not None:
                    outcome.error.partition_id = outcome.item
                    env.renderer.error(outcome.error)
                    codes.append(outcome.error.exit_code)
                    return
                found.append(outcome.value)
                if exit_status:
                    codes.append(errors.exit_for_status(str(outcome.value.get("status"))))
                if env.renderer.mode == "jsonl":
                    env.renderer.jsonl(outcome.value)

            await ordered(wanted, fetch, collect)
        if env.renderer.mode != "jsonl" and found:
            env.renderer.partitions(found, single=len(ids) == 1 and ids[0] != "-",
                                    with_output=not no_output)
        return errors.worst(codes)

    env.run(main)
