"""`retab partitions cancel ID... | - | --all-matching [filters]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli.commands._common import command
from retab_cli.commands._matching import Action, Filters
from retab_cli.commands._options import DryRunOpt, OptionalIdsArg, YesOpt, duration
from retab_cli.statuses import ACTIVE_ORDER, TERMINAL

if TYPE_CHECKING:
    from retab_cli.client import Client
    from retab_cli.commands._matching import Targets
    from retab_cli.session import Env

CANCEL = Action("cancel", "cancelled", "POST", "/v1/partitions/{id}/cancel",
                "Cancel {n} partition(s)?", statuses=tuple(ACTIVE_ORDER))


@command()
def cancel(
    env: Env,
    ids: OptionalIdsArg = None,
    *,
    filters: Filters,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Then wait until every run is terminal.")] = False,
    timeout: Annotated[str | None, typer.Option(
        metavar="DUR", help="With --wait: give up after this long (exit 8), e.g. 90s, 5m.",
        show_default=False)] = None,
) -> int:
    """Cancel runs. Cancelling a run that already ended is a success (it stays unchanged).
    With --all-matching (and at least one filter), statuses default to pending, queued and
    in_progress."""
    from retab_cli.commands._matching import run_bulk
    from retab_cli.watch_ui import WatchSession, report_if_watching, watch_after

    wait_timeout = duration(timeout, "--timeout")
    session = WatchSession()

    async def act(client: Client, targets: Targets) -> int:
        tally = targets.tally
        # With --wait the watch prints the final objects; printing here too would put
        # two JSON documents on stdout.
        await _cancel_all(env, client, targets, show=not wait)
        if wait and tally.values and not tally.stopped:
            return await watch_after(env, client, tally, wait_timeout, single=targets.single,
                                     any_end_ok=True, session=session)
        return tally.code

    async def interrupted(code: int) -> bool:
        return await report_if_watching(env, session, code)

    return run_bulk(env, CANCEL, ids, filters, dry_run=dry_run, yes=yes, act=act,
                    interrupted=interrupted)


async def _cancel_all(env: Env, client: Client, targets: Targets, *, show: bool) -> None:
    from retab_cli.bulk import bulk

    async def one(partition_id: str) -> dict[str, Any]:
        data: dict[str, Any] = (await client.cancel(partition_id)).data
        return data

    tally = targets.tally
    await bulk(env.renderer, "cancelled", targets.ledger, one,
               lambda raw: _show(env, raw) if show else None, tally)
    if show and env.renderer.mode == "json" and tally.values:
        env.renderer.json_result(tally.values, single=targets.single)


def _show(env: Env, raw: dict[str, Any]) -> None:
    status = str(raw.get("status", ""))
    note = "" if status == "cancelled" else "already ended; unchanged"
    if status not in TERMINAL:
        note = "cancel requested"
    env.renderer.result_row(raw, str(raw.get("id", "")), status, note)
