"""Listing over HTTP: cursors both ways, metadata, filters, tombstones, concurrent inserts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .helpers import body, client, create, ids
from emulator_support import Emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with client(emu) as c:
        yield c


def list_page(http: httpx.Client, **params: Any) -> dict[str, Any]:
    response = http.get("/v1/partitions", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def test_empty_list(http: httpx.Client) -> None:
    assert list_page(http) == {"data": [], "list_metadata": {"before": None, "after": None}}


def test_default_limit_order_and_metadata(http: httpx.Client) -> None:
    made = [create(http)["id"] for _ in range(12)]
    page = list_page(http)
    assert ids(page) == made[::-1][:10]
    assert page["list_metadata"] == {"before": None, "after": made[2]}
    rest = list_page(http, after=made[2])
    assert ids(rest) == [made[1], made[0]]
    assert rest["list_metadata"] == {"before": made[1], "after": None}
    # The full object, as in the real API.
    assert set(page["data"][0]) >= {"id", "file", "output", "status", "created_at"}


def test_250_items_by_100_both_ways(emu: Emulator, http: httpx.Client) -> None:
    assert emu.seed(250) == 250
    pages: list[list[str]] = []
    after = None
    while True:
        page = list_page(http, limit=100, **({"after": after} if after else {}))
        pages.append(ids(page))
        after = page["list_metadata"]["after"]
        if after is None:
            break
    flat = [i for p in pages for i in p]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert len(set(flat)) == 250
    created = [item["created_at"] for item in list_page(http, limit=100)["data"]]
    assert created == sorted(created, reverse=True)
    # Back again with `before`, page by page.
    before = pages[2][0]
    back = list_page(http, limit=100, before=before)
    assert ids(back) == pages[1] and back["list_metadata"] == {"before": pages[1][0], "after": pages[1][-1]}
    back = list_page(http, limit=100, before=back["list_metadata"]["before"])
    assert ids(back) == pages[0] and back["list_metadata"] == {"before": None, "after": pages[0][-1]}
    ascending = list_page(http, limit=100, order="asc")
    assert ids(ascending) == flat[::-1][:100]


def test_inserts_during_paging_cause_no_duplicates_or_gaps(emu: Emulator, http: httpx.Client) -> None:
    emu.seed(300)
    expected = set(ids(list_page(http, limit=100)))
    everything: list[str] = []
    after = None
    stop = threading.Event()

    def keep_creating() -> None:
        with client(emu) as other:
            while not stop.is_set():
                create(other)

    writer = threading.Thread(target=keep_creating)
    writer.start()
    try:
        while True:
            page = list_page(http, limit=37, **({"after": after} if after else {}))
            everything += ids(page)
            after = page["list_metadata"]["after"]
            if after is None:
                break
    finally:
        stop.set()
        writer.join()
    assert len(everything) == len(set(everything)) == 300
    assert expected <= set(everything)


def test_cursor_at_a_deleted_id_still_pages(http: httpx.Client) -> None:
    made = [create(http)["id"] for _ in range(6)]
    first = list_page(http, limit=3)
    cursor = first["list_metadata"]["after"]
    assert http.delete(f"/v1/partitions/{cursor}").status_code == 204
    rest = list_page(http, limit=3, after=cursor)
    assert ids(rest) == made[2::-1]
    back = list_page(http, limit=3, before=cursor)
    assert ids(back) == ids(first)[:2]
    assert cursor not in ids(list_page(http, limit=100))


def test_cursor_errors(http: httpx.Client) -> None:
    both = http.get("/v1/partitions", params={"before": "prtn_a", "after": "prtn_b"})
    assert both.status_code == 400 and both.json()["detail"]["code"] == "invalid_cursor"
    unknown = http.get("/v1/partitions", params={"after": "prtn_never"})
    assert unknown.status_code == 400 and unknown.json()["detail"]["code"] == "invalid_cursor"


def test_filters_combined(emu: Emulator, http: httpx.Client) -> None:
    emu.seed(40, filename_prefix="Batch-", status="completed")
    emu.seed(10, filename_prefix="batch-", status="failed")
    emu.seed(5, filename_prefix="other-", status="failed")
    assert len(ids(list_page(http, filename="BATCH", limit=100))) == 50
    failed = list_page(http, filename="batch", status="failed", limit=100)
    assert len(failed["data"]) == 10
    assert all(r["status"] == "failed" and r["error"]["code"] for r in failed["data"])
    first = list_page(http, filename="batch", status="failed", limit=4)
    second = list_page(
        http, filename="batch", status="failed", limit=4, after=first["list_metadata"]["after"]
    )
    assert not set(ids(first)) & set(ids(second))
    assert ids(first) + ids(second) == ids(failed)[:8]
    assert list_page(http, status="queued")["data"] == []
    assert list_page(http, status="pending")["data"] == []


def test_status_filter_follows_derived_time(http: httpx.Client) -> None:
    run = create(http)
    assert ids(list_page(http, status="queued")) == [run["id"]]
    created = http.post("/v1/partitions", json=body()).json()
    assert created["status"] == "completed"
    assert ids(list_page(http, status="completed"))[0] == created["id"]


def test_date_filters_are_inclusive_utc_days(emu: Emulator, http: httpx.Client) -> None:
    emu.seed(90)
    every = list_page(http, limit=100)["data"]
    days = sorted({r["created_at"][:10] for r in every})
    middle = days[len(days) // 2]
    one_day = list_page(http, from_date=middle, to_date=middle, limit=100)["data"]
    assert one_day and all(r["created_at"][:10] == middle for r in one_day)
    assert len(one_day) == sum(1 for r in every if r["created_at"][:10] == middle)
    since = list_page(http, from_date=middle, limit=100)["data"]
    assert all(r["created_at"][:10] >= middle for r in since)
    until = list_page(http, to_date=middle, limit=100)["data"]
    assert len(since) + len(until) - len(one_day) == 90
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert list_page(http, from_date=tomorrow)["data"] == []


@pytest.mark.parametrize("value", ["2024-1-01", "yesterday", "2024-02-30", "20240101", "2024-01-01T00:00"])
def test_unparseable_dates_are_400(http: httpx.Client, value: str) -> None:
    for name in ("from_date", "to_date"):
        response = http.get("/v1/partitions", params={name: value})
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert detail["code"] == "invalid_date" and detail["details"] == {"param": name, "value": value}
