"""`retab partitions cancel ID... | - | --all-matching [filters]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import (
    DryRunOpt,
    FilenameOpt,
    OptionalIdsArg,
    SinceOpt,
    StatusOpt,
    UntilOpt,
    YesOpt,
    duration,
)
from retab_cli.errors import UsageError
from retab_cli.statuses import ACTIVE_ORDER, TERMINAL

if TYPE_CHECKING:
    from retab_cli.bulk import Tally
    from retab_cli.client import Client
    from retab_cli.paging import ListQuery
    from retab_cli.session import Env

VERB = "cancelled"


@command()
def cancel(
    env: Env,
    ids: OptionalIdsArg = None,
    all_matching: Annotated[bool, typer.Option(
        "--all-matching", help="Cancel every run matching the filters (at least one; "
                               "statuses default to pending, queued, in_progress).")] = False,
    status: StatusOpt = None,
    filename: FilenameOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Then wait until every run is terminal.")] = False,
    timeout: Annotated[str | None, typer.Option(
        metavar="DUR", help="With --wait: give up after this long (exit 8), e.g. 90s, 5m.",
        show_default=False)] = None,
) -> int:
    """Cancel runs. Cancelling a run that already ended is a success (it stays unchanged)."""
    from retab_cli.bulk import one_id, partial_on_broken_pipe, report_partial
    from retab_cli.session import read_ids
    from retab_cli.watch_ui import WatchSession, report_if_watching, watch_after

    query = _query(ids, all_matching, status, filename, since, until)
    wanted = read_ids(ids or []) if query is None else []
    wait_timeout = duration(timeout, "--timeout")
    done: list[str] = []
    session = WatchSession()

    async def main() -> int:
        async with env.client() as client:
            if not await _settle_ids(env, client, query, wanted, dry_run=dry_run, yes=yes):
                return errors.OK
            single = one_id(ids)
            # With --wait the watch prints the final objects; printing here too would put
            # two JSON documents on stdout.
            tally = await _cancel_all(env, client, wanted, done, single=single, show=not wait)
            if wait and tally.values and not tally.stopped:
                return await watch_after(env, client, tally, wait_timeout, single=single,
                                         any_end_ok=True, session=session)
        return tally.code

    async def on_interrupt(code: int) -> None:
        if not await report_if_watching(env, session, code):
            report_partial(env.renderer, VERB, done, wanted, interrupted=True)

    return env.run(main, on_interrupt=on_interrupt,
                   on_broken_pipe=partial_on_broken_pipe(env.renderer, VERB, done, wanted))


def _query(ids: list[str] | None, all_matching: bool, status: list[str] | None,
           filename: str | None, since: str | None, until: str | None) -> ListQuery | None:
    """The --all-matching query, or None when ids are given."""
    from retab_cli.paging import build_query

    filters = bool(status or filename or since or until)
    if not all_matching:
        if filters:
            raise UsageError("--status/--filename/--since/--until need --all-matching")
        if not ids:
            raise UsageError("no partition ids given (pass ids, - for stdin, or "
                             "--all-matching with filters)")
        return None
    if ids:
        raise UsageError("give either ids or --all-matching, not both")
    if not filters:
        raise UsageError("--all-matching needs at least one filter (--status, --filename, "
                         "--since, --until)")
    return build_query(status or list(ACTIVE_ORDER), filename, since, until, limit=None)


async def _settle_ids(env: Env, client: Client, query: ListQuery | None, wanted: list[str], *,
                      dry_run: bool, yes: bool) -> bool:
    """Snapshot the matching ids (once, before anything is cancelled) and confirm; or
    show the dry run. False when there is nothing to send."""
    from retab_cli.paging import snapshot_ids
    from retab_cli.session import confirm_destructive

    if query is not None:
        wanted.extend(await snapshot_ids(client, query))
        if not wanted:
            env.renderer.info("no partitions match; nothing to cancel")
            return False
    if dry_run:
        env.renderer.dry_run([f"POST /v1/partitions/{i}/cancel" for i in wanted],
                             f"cancel {len(wanted)} partition(s)")
        return False
    if query is not None:
        env.renderer.info(f"{len(wanted)} partition(s) match")
        confirm_destructive(env, f"Cancel {len(wanted)} partition(s)?", yes,
                            declined="nothing cancelled")
    return True


async def _cancel_all(env: Env, client: Client, wanted: list[str], done: list[str], *,
                      single: bool, show: bool) -> Tally:
    from retab_cli.bulk import bulk

    async def one(partition_id: str) -> dict[str, Any]:
        data: dict[str, Any] = (await client.cancel(partition_id)).data
        return data

    tally = await bulk(env.renderer, VERB, wanted, one,
                       lambda raw: _show(env, raw) if show else None, done)
    if show and not tally.stopped and env.renderer.mode == "json" and tally.values:
        env.renderer.json_result(tally.values, single=single)
    return tally


def _show(env: Env, raw: dict[str, Any]) -> None:
    status = str(raw.get("status", ""))
    note = "" if status == "cancelled" else "already ended; unchanged"
    if status not in TERMINAL:
        note = "cancel requested"
    env.renderer.result_row(raw, str(raw.get("id", "")), status, note)
