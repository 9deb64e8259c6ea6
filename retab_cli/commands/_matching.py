"""A bulk command (cancel, delete) from ids given or `--all-matching [filters]` to the
report of a stop: `run_bulk`.

Written once for both: the filters checked against the ids, the matching runs listed
once (a snapshot, so runs that start matching meanwhile are left alone), counted, then
shown for `--dry-run` or confirmed (docs/design.md §1, §9); an interrupt or a closed
stdout reports where every id stands.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli.commands._options import FilenameOpt, SinceOpt, StatusOpt, UntilOpt
from retab_cli.errors import UsageError

if TYPE_CHECKING:
    from retab_cli.bulk import Ledger, Tally
    from retab_cli.client import Client
    from retab_cli.paging import ListQuery
    from retab_cli.session import Env


@dataclass(frozen=True)
class Action:
    """One bulk command as this module needs to name it."""

    verb: str  # "cancel"
    done: str  # "cancelled"
    method: str  # the request a dry run shows: "POST"
    path: str  # and its path, with {id}
    question: str  # the confirmation, with {n}
    statuses: tuple[str, ...] = ()  # --all-matching without --status: these (none: all)
    confirm_ids: bool = False  # ids given by hand are confirmed too
    needs_filter: bool = True  # --all-matching alone would act on every run: refused


@dataclass
class Targets:
    """The ids a bulk command acts on (`ledger.items`), where each stands, what came back,
    and whether one id was given (one object in JSON, not an array)."""

    ledger: Ledger
    tally: Tally
    single: bool


Act = Callable[["Client", Targets], Awaitable[int]]
Interrupted = Callable[[int], Awaitable[bool]]


@dataclass(frozen=True)
class Filters:
    """`--all-matching` and the list filters it takes."""

    all_matching: Annotated[bool, typer.Option(
        "--all-matching", help="Every run matching the filters, listed once, instead of ids.")
    ] = False
    status: StatusOpt = None
    filename: FilenameOpt = None
    since: SinceOpt = None
    until: UntilOpt = None

    def given(self) -> bool:
        return bool(self.status or self.filename or self.since or self.until)


def matching_query(action: Action, ids: list[str] | None,
                   filters: Filters) -> ListQuery | None:
    """The query for --all-matching, checked; None when ids were given instead."""
    if not filters.all_matching:
        if filters.given():
            raise UsageError("--status/--filename/--since/--until need --all-matching")
        if not ids:
            raise UsageError("no partition ids given (pass ids, - for stdin, or "
                             "--all-matching with filters)")
        return None
    if ids:
        raise UsageError("give either ids or --all-matching, not both")
    if action.needs_filter and not filters.given():
        raise UsageError("--all-matching needs at least one filter (--status, --filename, "
                         "--since, --until)")
    from retab_cli.paging import build_query

    return build_query(filters.status or list(action.statuses), filters.filename,
                       filters.since, filters.until, limit=None)


def run_bulk(env: Env, action: Action, ids: list[str] | None, filters: Filters, *,
             dry_run: bool, yes: bool, act: Act,
             interrupted: Interrupted | None = None) -> int:
    """Find the targets (ids, or the snapshot of --all-matching), show them for --dry-run
    or confirm, then `act` on them; its exit code. An interrupt (unless `interrupted`
    handles it and says so) or a closed stdout reports where every id stands."""
    from retab_cli import errors
    from retab_cli.bulk import Ledger, Tally, one_id, partial_on_broken_pipe
    from retab_cli.session import read_ids

    query = matching_query(action, ids, filters)
    ledger = Ledger(read_ids(ids or []) if query is None else [])
    targets = Targets(ledger, Tally(env.renderer.error), one_id(ids))
    if query is None and not _settle_ids(env, action, targets, dry_run=dry_run, yes=yes):
        return errors.OK

    async def main() -> int:
        async with env.client() as client:
            if query is not None:
                ledger.extend(await _snapshot_matching(env, client, action, query,
                                                      dry_run=dry_run, yes=yes))
                if not ledger.items:
                    return errors.OK
            return await act(client, targets)

    async def on_interrupt(code: int) -> None:
        if interrupted is None or not await interrupted(code):
            _report_interrupted(env, action, targets)

    return env.run(main, on_interrupt=on_interrupt,
                   on_broken_pipe=partial_on_broken_pipe(env.renderer, action.done, ledger))


async def matching_ids(env: Env, client: Client, action: Action, query: ListQuery) -> list[str]:
    """The runs matching `query`, listed once (a snapshot); a note when there are none."""
    from retab_cli.paging import snapshot_ids

    wanted = await snapshot_ids(client, query)
    if not wanted:
        env.renderer.info(f"no partitions match; nothing to {action.verb}")
    return wanted


def _settle_ids(env: Env, action: Action, targets: Targets, *, dry_run: bool,
                yes: bool) -> bool:
    """Ids given by hand: shown for --dry-run, or confirmed if the action asks for it;
    whether to go on. Needs no client (a dry run needs no key)."""
    if dry_run:
        _dry_run(env, action, targets.ledger.items, single=targets.single)
        return False
    if action.confirm_ids:
        _confirm(env, action, targets.ledger.items, yes)
    return True


async def _snapshot_matching(env: Env, client: Client, action: Action, query: ListQuery, *,
                            dry_run: bool, yes: bool) -> list[str]:
    """The runs matching `query`, listed once, counted, then shown (--dry-run: nothing
    returned) or confirmed. An empty result means there is nothing to do."""
    wanted = await matching_ids(env, client, action, query)
    if not wanted:
        return []
    if dry_run:
        _dry_run(env, action, wanted, single=False)
        return []
    env.renderer.info(f"{len(wanted)} partition(s) match")
    _confirm(env, action, wanted, yes)
    return wanted


def _confirm(env: Env, action: Action, wanted: list[str], yes: bool) -> None:
    from retab_cli.session import confirm_destructive

    confirm_destructive(env, action.question.format(n=len(wanted)), yes,
                        declined=f"nothing {action.done}")


def _dry_run(env: Env, action: Action, wanted: list[str], *, single: bool) -> None:
    """The requests not sent: as JSON objects under -o json/jsonl (as create --dry-run
    shows its requests), else one `METHOD PATH` line each."""
    paths = [action.path.format(id=i) for i in wanted]
    would = f"{action.verb} {len(wanted)} partition(s)"
    if env.renderer.mode in ("json", "jsonl"):
        env.renderer.objects([{"method": action.method, "path": p} for p in paths],
                             single=single)
        env.renderer.dry_run([], would)
    else:
        env.renderer.dry_run([f"{action.method} {p}" for p in paths], would)


def _report_interrupted(env: Env, action: Action, targets: Targets) -> None:
    """After Ctrl-C/SIGTERM: in JSON, the objects of the ids done (the other modes showed
    each as it came), then where every id stands."""
    from retab_cli.bulk import report_stopped

    if env.renderer.mode == "json" and targets.tally.values:
        env.renderer.json_result(targets.tally.values, single=targets.single)
    report_stopped(env.renderer, action.done, targets.ledger, "interrupted")
