"""Listing partition runs: one query, its pages, several statuses merged (docs/design.md §9).

`Listing` is what `list`, `cancel --all-matching` and a batch's resume use: pages of
at most PAGE_MAX items, cursors followed until the limit or the end, a cursor that does
not advance treated as an unusable response, and several `--status` values merged by
(created_at, id) holding at most one page per status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retab_cli.errors import BadResponseError, UsageError
from retab_cli.parsing import choose, parse_bound, parse_time, window_end, window_start
from retab_cli.statuses import KNOWN_STATUSES

if TYPE_CHECKING:
    from retab_cli.client import Client

PAGE_MAX = 100

@dataclass
class ListQuery:
    statuses: list[str] = field(default_factory=list)
    filename: str | None = None
    from_date: str | None = None
    to_date: str | None = None
    order: str = "desc"
    after: str | None = None
    before: str | None = None
    limit: int | None = 20  # None = all
    # Exact created_at bounds (--since 2h, an RFC 3339 time): the API filters whole days
    # (from_date/to_date), so the tool drops what lies outside them.
    created_from: datetime | None = None
    created_to: datetime | None = None

    def window(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """The items inside the exact bounds, and whether the page reached past the bound
        the order moves away from (nothing further can match)."""
        if self.created_from is None and self.created_to is None:
            return items, False
        kept, past = [], False
        for item in items:
            when = parse_time(item.get("created_at"))
            if when is None:  # cannot tell: the server's day filter admitted it
                kept.append(item)
            elif self.created_from and when < self.created_from:
                past = past or self.order == "desc"
            elif self.created_to and when > self.created_to:
                past = past or self.order == "asc"
            else:
                kept.append(item)
        return kept, past

    def params(self, status: str | None, page_size: int) -> dict[str, str | int]:
        params: dict[str, str | int] = {"limit": page_size, "order": self.order}
        for name in ("filename", "from_date", "to_date", "after", "before"):
            value = getattr(self, name)
            if value:
                params[name] = value
        if status:
            params["status"] = status
        return params


def build_query(status: list[str] | None, filename: str | None, since: str | None,
                until: str | None, *, order: str = "desc", after: str | None = None,
                before: str | None = None, limit: int | None = 20) -> ListQuery:
    from retab_cli.client import validate_id

    statuses = list(dict.fromkeys(choose(value, KNOWN_STATUSES, "--status")
                                  for value in status or []))
    order = choose(order, ("asc", "desc"), "--order")
    if after and before:
        raise UsageError("--after and --before cannot be used together")
    if (after or before) and len(statuses) > 1:
        raise UsageError("several --status values cannot be combined with --after/--before")
    start = parse_bound(since, "--since") if since else None
    end = parse_bound(until, "--until") if until else None
    if start and end and window_start(start) > window_end(end):
        raise UsageError(f"--since {since} is after --until {until}")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    return ListQuery(
        statuses=statuses, filename=filename or None,
        from_date=start.day.isoformat() if start else None,
        to_date=end.day.isoformat() if end else None, order=order,
        after=validate_id(after) if after else None,
        before=validate_id(before) if before else None, limit=limit,
        created_from=start.moment if start else None,
        created_to=end.moment if end else None,
    )


@dataclass
class PageStream:
    """Pages of one query (one status), following cursors until the limit or the end."""

    client: Client
    query: ListQuery
    status: str | None
    more: bool = False  # the server has more beyond what we fetched
    last_cursor: str | None = None

    async def pages(self, limit: int | None) -> AsyncIterator[list[dict[str, Any]]]:
        if self.query.before is None:
            async for page in self._fetch(limit):
                yield page
            return
        # Paging back from --before fetches the nearest page first: hold the pages (at
        # most `limit` items) and give them in the listing's own order.
        held = [page async for page in self._fetch(limit)]
        for page in reversed(held):
            yield page

    async def _fetch(self, limit: int | None) -> AsyncIterator[list[dict[str, Any]]]:
        backwards = self.query.before is not None
        cursor = self.query.before if backwards else self.query.after
        seen: set[str] = set()
        remaining = limit
        while remaining is None or remaining > 0:
            size = PAGE_MAX if remaining is None else min(PAGE_MAX, remaining)
            params = self.query.params(self.status, size)
            params.pop("after", None)
            params.pop("before", None)
            if cursor:
                params["before" if backwards else "after"] = cursor
            result = await self.client.list(params)
            page = [item for item in result.data["data"] if isinstance(item, dict)]
            items, past = self.query.window(page)
            past = past and not backwards  # paging back moves toward the other bound
            meta = result.data["list_metadata"]
            nxt = meta.get("before" if backwards else "after")
            if remaining is not None:
                items = items[:remaining]
                remaining -= len(items)
            yield items
            if not nxt or not page or past:
                self.more = False
                return
            if nxt in seen or nxt == cursor:
                raise BadResponseError(
                    f"the server returned a list cursor that does not advance ({nxt})",
                    request_id=result.request_id)
            seen.add(nxt)
            cursor = nxt
            self.last_cursor = nxt
            self.more = True


def _sort_key(item: dict[str, Any]) -> tuple[float, str]:
    when = parse_time(item.get("created_at"))
    return (when.timestamp() if when else 0.0, str(item.get("id", "")))


class Listing:
    """Pages of a whole query; afterwards `more` and `cursor` say what is left.

    Several statuses run one query each, merged by (created_at, id) in the requested
    order, holding at most one page per status.
    """

    def __init__(self, client: Client, query: ListQuery) -> None:
        self.client = client
        self.query = query
        self.more = False
        self.cursor: str | None = None  # where to continue (single-status listings)

    async def pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        if len(self.query.statuses) <= 1:
            status = self.query.statuses[0] if self.query.statuses else None
            stream = PageStream(self.client, self.query, status)
            async for page in stream.pages(self.query.limit):
                yield page
            self.more, self.cursor = stream.more, stream.last_cursor
            return
        async for page in self._merged():
            yield page

    async def _merged(self) -> AsyncIterator[list[dict[str, Any]]]:
        streams = [PageStream(self.client, self.query, s) for s in self.query.statuses]
        iters = [s.pages(self.query.limit) for s in streams]
        buffers = [await anext(it, []) for it in iters]
        pick = max if self.query.order == "desc" else min
        remaining = self.query.limit
        out: list[dict[str, Any]] = []
        while remaining is None or remaining > 0:
            heads = [(i, buf[0]) for i, buf in enumerate(buffers) if buf]
            if not heads:
                break
            index = pick(heads, key=lambda head: _sort_key(head[1]))[0]
            out.append(buffers[index].pop(0))
            if not buffers[index]:
                buffers[index] = await anext(iters[index], [])
            remaining = None if remaining is None else remaining - 1
            if len(out) >= PAGE_MAX:
                yield out
                out = []
        if out:
            yield out
        self.more = any(buffers) or any(s.more for s in streams)


async def snapshot_ids(client: Client, query: ListQuery) -> list[str]:
    """Every matching id, listed once (before anything is done to them), de-duplicated.

    An id that breaks the id rule makes the whole listing unusable: acting on the others
    would act on a list the server garbled (`a\nprtn_b` is two ids once written down)."""
    from retab_cli.client import validate_id

    ids: list[str] = []
    async for page in Listing(client, query).pages():
        for item in page:
            value = item.get("id")
            try:
                ids.append(validate_id(value if isinstance(value, str) else ""))
            except UsageError:
                raise BadResponseError("unusable response: the listing holds an item "
                                       "without a valid id; nothing was done") from None
    return list(dict.fromkeys(ids))
