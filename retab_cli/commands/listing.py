"""`retab partitions list`: the listing engine (retab_cli.paging) streamed to the renderer."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import FilenameOpt, SinceOpt, StatusOpt, UntilOpt, choices
from retab_cli.recent import KEEP, remember

if TYPE_CHECKING:
    from retab_cli.session import Env


@command()
def list_partitions(
    env: Env,
    status: StatusOpt = None,
    filename: FilenameOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", help="How many runs to show in all (pages of up to 100).")] = 20,
    all_: Annotated[bool, typer.Option("--all", help="Show every matching run.")] = False,
    after: Annotated[str | None, typer.Option(
        metavar="ID", help="Start after this partition id (the next page).", show_default=False)] = None,
    before: Annotated[str | None, typer.Option(
        metavar="ID", help="Start before this partition id (the previous page).", show_default=False)] = None,
    order: Annotated[str, typer.Option(metavar="ORDER", help="asc or desc (newest first).",
                                       autocompletion=choices(("asc", "desc")))] = "desc",
) -> int:
    """List partition runs, newest first; --all pages through everything in constant memory."""
    from retab_cli.paging import Listing, build_query

    query = build_query(status, filename, since, until, order=order, after=after,
                        before=before, limit=None if all_ else limit)

    async def main() -> int:
        counts: Counter[str] = Counter()
        first_ids: list[str] = []
        renderer = env.renderer
        async with env.client() as client:
            listing = Listing(client, query)
            with renderer.list_stream():
                async for page in listing.pages():
                    renderer.list_items(page)
                    counts.update(str(item.get("status")) for item in page)
                    if len(first_ids) < KEEP:
                        first_ids.extend(str(item.get("id", "")) for item in page[:KEEP])
        renderer.end_list(counts)
        remember(first_ids, env.settings)
        if listing.more:
            nxt = f" or --after {listing.cursor}" if listing.cursor and not query.before else ""
            renderer.info(f"more partitions exist: use --all, a larger --limit{nxt}")
        return errors.OK

    return env.run(main)
