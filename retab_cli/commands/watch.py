"""`retab partitions watch ID... | -` (alias `wait`): the engine (retab_cli.watch) decides,
retab_cli.watch_ui shows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._matching import Action, Filters
from retab_cli.commands._options import OptionalIdsArg, duration
from retab_cli.statuses import ACTIVE_ORDER

if TYPE_CHECKING:
    from retab_cli.session import Env


# --all-matching watches the active runs unless --status says otherwise (a run that
# already ended would only print its end); reading needs no filter to be safe.
WATCH = Action("watch", "watched", "GET", "/v1/partitions/{id}", "", statuses=tuple(ACTIVE_ORDER),
               needs_filter=False)


@command()
def watch(
    env: Env,
    ids: OptionalIdsArg = None,
    *,
    filters: Filters,
    timeout: Annotated[str | None, typer.Option(
        metavar="DUR", help="Stop waiting after this long (exit 8), e.g. 90s, 5m, 1h30m.",
        show_default=False)] = None,
    interval: Annotated[str | None, typer.Option(
        metavar="DUR", help="Poll each run this often (default: 1 s growing to 10 s for long runs).",
        show_default=False)] = None,
    cancel_on_interrupt: Annotated[bool, typer.Option(
        "--cancel-on-interrupt", help="On Ctrl-C or SIGTERM, cancel the runs still active "
                                      "(within 5 s) before exiting.")] = False,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="Stop at the first run that does not complete.")] = False,
    no_ci_summary: Annotated[bool, typer.Option(
        "--no-ci-summary", help="In GitHub Actions, write no step summary or annotations.")
    ] = False,
) -> int:
    """Wait for runs to end, showing each status change (alias: wait). Exit 0 when every
    run completed, 3 if one failed, 5 if one was cancelled, 6 if one is gone, 8 on
    --timeout. With --all-matching, the runs listed once at the start; statuses default to
    pending, queued and in_progress."""
    from retab_cli.bulk import one_id
    from retab_cli.commands._matching import matching_ids, matching_query
    from retab_cli.session import read_ids
    from retab_cli.watch_ui import WatchOptions, WatchSession, report_interrupt, watch_runs

    query = matching_query(WATCH, ids, filters)
    wanted = read_ids(ids or []) if query is None else []
    options = WatchOptions(
        timeout=duration(timeout, "--timeout"),
        interval=duration(interval, "--interval"),
        fail_fast=fail_fast, ci_summary=not no_ci_summary,
        single=one_id(ids))
    if options.interval is not None and options.interval < 0.1:
        raise errors.UsageError("--interval must be at least 100ms")
    session = WatchSession(ids=wanted)

    async def main() -> int:
        async with env.client() as client:
            if query is not None:
                wanted.extend(await matching_ids(env, client, WATCH, query))  # session's too
                if not wanted:
                    return errors.OK
                env.renderer.info(f"{len(wanted)} partition(s) match")
            return await watch_runs(env, client, wanted, options, session=session)

    async def on_interrupt(code: int) -> None:
        await report_interrupt(env, session, cancel=cancel_on_interrupt, code=code)

    return env.run(main, on_interrupt=on_interrupt)
