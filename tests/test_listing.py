"""List paging on its own: limits, cursors that do not advance, merging several statuses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from retab_cli.client import ApiResult
from retab_cli.errors import BadResponseError, UsageError
from retab_cli.paging import Listing, ListQuery, build_query


def item(n: int, status: str = "completed") -> dict[str, Any]:
    return {"id": f"prtn_{n:04d}", "status": status,
            "created_at": f"2026-11-01T00:00:{n % 60:02d}.{n:06d}Z"}


class FakeClient:
    """Serves pages from scripted answers and records the params of each call."""

    def __init__(self, pages: dict[str | None, list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    async def list(self, params: dict[str, Any]) -> ApiResult:
        self.calls.append(dict(params))
        return ApiResult(self.pages[params.get("status")].pop(0), 200)


def collect(client: FakeClient, query: ListQuery) -> tuple[list[str], Any]:
    async def main() -> tuple[list[str], Listing]:
        ids: list[str] = []
        listing = Listing(client, query)  # type: ignore[arg-type]
        async for page in listing.pages():
            ids.extend(p["id"] for p in page)
        return ids, listing

    return asyncio.run(main())


def page(items: list[dict[str, Any]], after: str | None) -> dict[str, Any]:
    return {"data": items, "list_metadata": {"before": None, "after": after}}


def test_limit_is_a_total_fetched_in_pages_of_at_most_100() -> None:
    client = FakeClient({None: [page([item(i) for i in range(100)], "prtn_0099"),
                                page([item(i) for i in range(100, 150)], "prtn_0149")]})
    ids, info = collect(client, build_query(None, None, None, None, limit=150))
    assert len(ids) == 150
    assert [c["limit"] for c in client.calls] == [100, 50]
    assert client.calls[1]["after"] == "prtn_0099"
    assert info.more is True and info.cursor == "prtn_0149"


def test_a_cursor_that_does_not_advance_stops_with_an_error() -> None:
    client = FakeClient({None: [page([item(1)], "prtn_0001"), page([item(2)], "prtn_0001")]})
    with pytest.raises(BadResponseError, match="does not advance"):
        collect(client, build_query(None, None, None, None, limit=None))


def test_the_last_page_ends_the_listing() -> None:
    client = FakeClient({None: [page([item(1), item(2)], None)]})
    ids, info = collect(client, build_query(None, None, None, None, limit=None))
    assert ids == ["prtn_0001", "prtn_0002"] and info.more is False


def test_several_statuses_are_merged_newest_first_up_to_the_limit() -> None:
    failed = [item(n, "failed") for n in (9, 5, 1)]
    cancelled = [item(n, "cancelled") for n in (8, 7, 2)]
    client = FakeClient({"failed": [page(failed, None)], "cancelled": [page(cancelled, None)]})
    ids, info = collect(client, build_query(["failed", "cancelled"], None, None, None, limit=4))
    assert ids == ["prtn_0009", "prtn_0008", "prtn_0007", "prtn_0005"]
    assert info.more is True
    assert {c["status"] for c in client.calls} == {"failed", "cancelled"}


def test_query_checks() -> None:
    with pytest.raises(UsageError):
        build_query(["nope"], None, None, None)
    with pytest.raises(UsageError):
        build_query(None, None, "2026-02-02", "2026-02-01")
    with pytest.raises(UsageError):
        build_query(None, None, None, None, after="a/b")
    query = build_query(["queued"], "inv", "2026-01-01", "2026-01-31", order="asc")
    assert query.params("queued", 20) == {"limit": 20, "order": "asc", "filename": "inv",
                                          "from_date": "2026-01-01", "to_date": "2026-01-31",
                                          "status": "queued"}


def at(n: int, when: str) -> dict[str, Any]:
    return {"id": f"prtn_{n:04d}", "status": "completed", "created_at": when}


def test_an_exact_since_filters_created_at_and_stops_past_it() -> None:
    newest_first = [at(4, "2026-11-01T12:00:00Z"), at(3, "2026-11-01T10:30:00Z"),
                    at(9, "not a time"), at(2, "2026-11-01T09:59:59Z")]
    client = FakeClient({None: [page(newest_first, "prtn_0002"),
                                page([at(1, "2026-11-01T08:00:00Z")], None)]})
    query = build_query(None, None, "2026-11-01T10:00:00Z", None, limit=None)
    ids, info = collect(client, query)
    # the unreadable time is kept (the server's day filter admitted it); the older page is
    # never asked for: in newest-first order nothing after prtn_0002 can match
    assert ids == ["prtn_0004", "prtn_0003", "prtn_0009"]
    assert info.more is False
    assert client.calls == [{"limit": 100, "order": "desc", "from_date": "2026-11-01"}]


def test_an_exact_until_in_oldest_first_order_counts_only_what_matches() -> None:
    oldest_first = [at(1, "2026-11-01T08:00:00Z"), at(2, "2026-11-01T09:00:00+01:00"),
                    at(3, "2026-11-01T09:00:01Z"), at(4, "2026-11-01T11:00:00Z")]
    client = FakeClient({None: [page(oldest_first, "prtn_0004")]})
    query = build_query(None, None, None, "2026-11-01T09:00:00Z", order="ASC", limit=5)
    ids, info = collect(client, query)
    assert ids == ["prtn_0001", "prtn_0002"] and info.more is False
    assert client.calls[0]["to_date"] == "2026-11-01" and client.calls[0]["order"] == "asc"


def test_a_relative_since_narrows_the_query_to_its_day() -> None:
    query = build_query(["COMPLETED"], None, "30m", None)
    assert query.statuses == ["completed"]
    assert query.created_from is not None
    assert query.params("completed", 20)["from_date"] == query.created_from.date().isoformat()
    with pytest.raises(UsageError) as caught:
        build_query(None, None, "2h", "3h")
    assert caught.value.message == "--since 2h is after --until 3h"
    with pytest.raises(UsageError) as caught:
        build_query(["complete"], None, None, None)
    assert caught.value.hint == "did you mean 'completed'?"
