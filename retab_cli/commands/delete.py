"""`retab partitions delete ID... | - | --all-matching [filters]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._matching import Action, Filters
from retab_cli.commands._options import DryRunOpt, OptionalIdsArg, YesOpt

if TYPE_CHECKING:
    from retab_cli.session import Env

DELETE = Action("delete", "deleted", "DELETE /v1/partitions/{id}",
                "Delete {n} partition(s) for good?", confirm_ids=True)


@command()
def delete(
    env: Env,
    ids: OptionalIdsArg = None,
    all_matching: Annotated[bool, typer.Option(
        "--all-matching", help="Delete every run matching the filters (at least one; any "
                               "status unless --status is given).")] = False,
    *,
    filters: Filters,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
) -> int:
    """Delete partition runs for good (asks first on a terminal; --yes otherwise)."""
    from retab_cli.bulk import Ledger, Tally, bulk, one_id, partial_on_broken_pipe
    from retab_cli.commands._matching import (
        matching_query,
        report_interrupted,
        settle_ids,
        snapshot_matching,
    )
    from retab_cli.session import read_ids

    query = matching_query(DELETE, ids, all_matching, filters)
    ledger = Ledger(read_ids(ids or []) if query is None else [])
    if query is None and not settle_ids(env, DELETE, ledger.items, dry_run=dry_run, yes=yes):
        return errors.OK
    tally, single = Tally(env.renderer.error), one_id(ids)

    async def main() -> int:
        async with env.client() as client:
            if query is not None:
                ledger.extend(await snapshot_matching(env, client, DELETE, query,
                                                      dry_run=dry_run, yes=yes))
                if not ledger.items:
                    return errors.OK

            async def remove(partition_id: str) -> dict[str, Any]:
                result = await client.delete(partition_id)
                already = bool(result.extra.get("already_deleted"))
                return {"id": partition_id, "deleted": True, "already_deleted": already}

            await bulk(env.renderer, "deleted", ledger, remove, lambda row: _show(env, row),
                       tally)
        if env.renderer.mode == "json" and tally.values:
            env.renderer.json_result(tally.values, single=single)
        return tally.code

    async def on_interrupt(code: int) -> None:
        report_interrupted(env, DELETE, ledger, tally, single=single)

    return env.run(main, on_interrupt=on_interrupt,
                   on_broken_pipe=partial_on_broken_pipe(env.renderer, "deleted", ledger))


def _show(env: Env, row: dict[str, Any]) -> None:
    mode = env.renderer.mode
    if mode == "jsonl":
        env.renderer.jsonl(row)
    elif mode == "ids":
        env.renderer.line(row["id"])
    elif mode == "table":
        from retab_cli.render import tables

        note = "already deleted" if row["already_deleted"] else ""
        tables.result_lines(env.renderer, [(row["id"], "deleted", note)])
