"""`retab partitions delete ID... | -`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import DryRunOpt, IdsArg, YesOpt

if TYPE_CHECKING:
    from retab_cli.session import Env

VERB = "deleted"


@command()
def delete(env: Env, ids: IdsArg, dry_run: DryRunOpt = False, yes: YesOpt = False) -> int:
    """Delete partition runs for good (asks first on a terminal; --yes otherwise)."""
    from retab_cli.bulk import bulk, one_id, partial_on_broken_pipe, report_partial
    from retab_cli.recent import forget
    from retab_cli.session import confirm_destructive, read_ids

    wanted = read_ids(ids)
    if dry_run:
        env.renderer.dry_run([f"DELETE /v1/partitions/{i}" for i in wanted],
                             f"delete {len(wanted)} partition(s)")
        return errors.OK
    confirm_destructive(env, f"Delete {len(wanted)} partition(s) for good?", yes,
                        declined="nothing deleted")
    done: list[str] = []

    async def main() -> int:
        async with env.client() as client:
            async def remove(partition_id: str) -> dict[str, Any]:
                result = await client.delete(partition_id)
                already = bool(result.extra.get("already_deleted"))
                return {"id": partition_id, "deleted": True, "already_deleted": already}

            try:
                tally = await bulk(env.renderer, VERB, wanted, remove,
                                   lambda row: _show(env, row), done)
            finally:  # completion stops offering what is gone
                forget(done, env.settings)
        if env.renderer.mode == "json" and tally.values:
            env.renderer.json_result(tally.values, single=one_id(ids))
        return tally.code

    async def on_interrupt(code: int) -> None:
        report_partial(env.renderer, VERB, done, wanted, interrupted=True)

    return env.run(main, on_interrupt=on_interrupt,
                   on_broken_pipe=partial_on_broken_pipe(env.renderer, VERB, done, wanted))


def _show(env: Env, row: dict[str, Any]) -> None:
    note = "already deleted" if row["already_deleted"] else ""
    env.renderer.result_row(row, row["id"], "deleted", note)
