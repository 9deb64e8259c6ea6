"""`retab partitions get ID... | -`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import IdsArg

if TYPE_CHECKING:
    from retab_cli.bulk import Outcome
    from retab_cli.session import Env


@command()
def get(
    env: Env,
    ids: IdsArg,
    no_output: Annotated[bool, typer.Option(
        "--no-output", help="Fetch the cheap status-only view (include_output=false).")] = False,
    exit_status: Annotated[bool, typer.Option(
        "--exit-status", help="Exit with the run's status: 0 completed, 3 failed, "
                              "5 cancelled, 8 still running (one check, never a wait).")] = False,
) -> int:
    """Show partition runs: status, chunks with their pages, a page map, credits."""
    from retab_cli.bulk import Tally, one_id, ordered
    from retab_cli.session import read_ids

    wanted = read_ids(ids)

    async def main() -> int:
        async with env.client() as client:
            async def fetch(partition_id: str) -> Any:
                result = await client.get(partition_id, include_output=not no_output)
                return result.data

            tally = Tally(env.renderer.error)

            def collect(outcome: Outcome) -> None:
                if outcome.error is not None:
                    tally.failed(outcome.error)
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

    return env.run(main)
