"""`retab partitions get ID... | -`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import IdsArg

if TYPE_CHECKING:
    from retab_cli.bulk import Outcome, Tally
    from retab_cli.client import ApiResult, Client
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
    from retab_cli.bulk import one_id
    from retab_cli.session import read_ids

    wanted = read_ids(ids)
    fetch = _check_once if exit_status else _fetch

    async def main() -> int:
        async with env.client() as client:
            tally = await fetch(env, client, wanted, not no_output)
        if env.renderer.mode != "jsonl" and tally.values:
            env.renderer.partitions(tally.values, single=one_id(ids), with_output=not no_output)
        return tally.code

    return env.run(main)


async def _fetch(env: Env, client: Client, wanted: list[str], include_output: bool) -> Tally:
    """Each run once; under -o jsonl each object as soon as the ones before it are out."""
    from retab_cli.bulk import Tally, ordered

    tally = Tally(env.renderer.error)

    async def one(partition_id: str) -> Any:
        return (await client.get(partition_id, include_output=include_output)).data

    def collect(outcome: Outcome) -> None:
        if outcome.error is not None:
            tally.failed(outcome.error)
            return
        tally.values.append(outcome.value)
        if env.renderer.mode == "jsonl":
            env.renderer.jsonl(outcome.value)

    await ordered(wanted, one, collect)
    return tally


async def _check_once(env: Env, client: Client, wanted: list[str], include_output: bool) -> Tally:
    """--exit-status: the watch engine's single check (retab_cli.watch.check_once), so the
    status-to-exit-code rule is the one `watch` uses."""
    from retab_cli.bulk import Tally
    from retab_cli.watch import check_once
    from retab_cli.watch_ui import status_error

    recorded = _Recorded(client)
    try:
        runs = await check_once(recorded, wanted, include_output=include_output)
    except errors.AuthError as exc:
        exc.partition_id = None  # about the key, not about one id
        raise
    tally = Tally(env.renderer.error)
    for run in runs:
        if run.raw is None:  # not fetched: report the error in full, as a fetch would
            env.renderer.error(recorded.errors.get(run.id) or errors.BadResponseError(
                run.last_error or "unusable response", partition_id=run.id))
        else:
            tally.values.append(run.raw)
            if env.renderer.mode == "jsonl":
                env.renderer.jsonl(run.raw)
        tally.codes.append(run.exit_code)
        if run.raw is not None:
            status_error(env, run.raw)
    return tally


class _Recorded:
    """The client as the engine sees it, keeping each id's error: the engine keeps only
    its message, and a report needs the request id and hint too."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.budget = client.budget
        self.errors: dict[str, errors.RetabError] = {}

    async def get(self, partition_id: str, *, include_output: bool = True,
                  attempts: int | None = None) -> ApiResult:
        try:
            return await self.client.get(partition_id, include_output=include_output,
                                         attempts=attempts)
        except errors.RetabError as exc:
            self.errors[partition_id] = exc
            raise

    async def list(self, params: Mapping[str, str | int]) -> ApiResult:
        return await self.client.list(params)
