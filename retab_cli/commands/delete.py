"""`retab partitions delete ID... | - | --all-matching [filters]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retab_cli.commands._common import command
from retab_cli.commands._matching import Action, Filters
from retab_cli.commands._options import DryRunOpt, OptionalIdsArg, YesOpt

if TYPE_CHECKING:
    from retab_cli.client import Client
    from retab_cli.commands._matching import Targets
    from retab_cli.session import Env

DELETE = Action("delete", "deleted", "DELETE", "/v1/partitions/{id}",
                "Delete {n} partition(s) for good?", confirm_ids=True)


@command()
def delete(
    env: Env,
    ids: OptionalIdsArg = None,
    *,
    filters: Filters,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
) -> int:
    """Delete partition runs for good (asks first on a terminal; --yes otherwise).
    With --all-matching (and at least one filter), runs of any status match unless --status
    is given."""
    from retab_cli.bulk import DONE, bulk
    from retab_cli.commands._matching import run_bulk
    from retab_cli.recent import forget

    async def act(client: Client, targets: Targets) -> int:
        async def remove(partition_id: str) -> dict[str, Any]:
            result = await client.delete(partition_id)
            already = bool(result.extra.get("already_deleted"))
            return {"id": partition_id, "deleted": True, "already_deleted": already}

        tally = targets.tally
        try:
            await bulk(env.renderer, "deleted", targets.ledger, remove,
                       lambda row: _show(env, row), tally)
        finally:  # completion stops offering what is gone
            forget(targets.ledger.where(DONE), env.settings)
        if env.renderer.mode == "json" and tally.values:
            env.renderer.json_result(tally.values, single=targets.single)
        return tally.code

    return run_bulk(env, DELETE, ids, filters, dry_run=dry_run, yes=yes, act=act)


def _show(env: Env, row: dict[str, Any]) -> None:
    note = "already deleted" if row["already_deleted"] else ""
    env.renderer.result_row(row, row["id"], "deleted", note)
