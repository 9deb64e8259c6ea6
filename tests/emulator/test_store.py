"""The SQLite store, in-process: paging, tombstones, cancel, persistence, threads."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from retab_cli.emulator.store import ListQuery, Replay, Run, Store, UnknownCursor

OWNER = "owner-a"
T0 = 1_700_000_000_000_000


def run(
    index: int,
    owner: str = OWNER,
    *,
    filename: str | None = None,
    done: int | None = 1,
    final: str = "completed",
    created: int | None = None,
) -> Run:
    created = T0 + index * 1000 if created is None else created
    return Run(
        id=f"prtn_{index:021d}",
        owner=owner,
        created_us=created,
        filename_lower=(filename or f"file-{index}.pdf").lower(),
        queued_until_us=created,
        done_us=None if done is None else created + done,
        final_status=final,
        record=json.dumps({"id": f"prtn_{index:021d}"}),
    )


@pytest.fixture
def store() -> Store:
    return Store(":memory:")


def page_ids(store: Store, now: int = T0 * 2, **query: object) -> tuple[list[str], str | None, str | None]:
    page = store.list_page(OWNER, ListQuery(**query), now)  # type: ignore[arg-type]
    return [r.id for r in page.runs], page.before, page.after


def test_pages_forward_and_back_with_exact_metadata(store: Store) -> None:
    store.insert(run(i) for i in range(25))
    every = [run(i).id for i in reversed(range(25))]  # newest first
    first, before, after = page_ids(store, limit=10)
    assert first == every[:10] and before is None and after == every[9]
    second, before, after = page_ids(store, limit=10, after=after)
    assert second == every[10:20] and before == every[10] and after == every[19]
    third, before, after = page_ids(store, limit=10, after=after)
    assert third == every[20:] and before == every[20] and after is None
    # Back from the third page: `before` gives the page just before it.
    back, before, after = page_ids(store, limit=10, before=third[0])
    assert back == second and before == every[10] and after == every[19]
    back, before, after = page_ids(store, limit=10, before=back[0])
    assert back == first and before is None and after == every[9]


def test_ascending_order(store: Store) -> None:
    store.insert(run(i) for i in range(5))
    ascending = [run(i).id for i in range(5)]
    ids, before, after = page_ids(store, limit=2, order="asc")
    assert ids == ascending[:2] and before is None and after == ascending[1]
    ids, before, after = page_ids(store, limit=2, order="asc", after=after)
    assert ids == ascending[2:4] and before == ascending[2]
    ids, _, _ = page_ids(store, limit=2, order="asc", before=ascending[2])
    assert ids == ascending[:2]


def test_equal_times_are_ordered_by_id(store: Store) -> None:
    store.insert(run(i, created=T0) for i in range(6))
    seen: list[str] = []
    after = None
    while True:
        ids, _, after = page_ids(store, limit=4, after=after) if after else page_ids(store, limit=4)
        seen += ids
        if after is None:
            break
    assert seen == sorted((run(i).id for i in range(6)), reverse=True)


def test_deleted_rows_keep_cursors_working(store: Store) -> None:
    store.insert(run(i) for i in range(6))
    _, _, after = page_ids(store, limit=3)
    assert after is not None
    assert store.delete(OWNER, after, T0)
    assert not store.delete(OWNER, after, T0)
    assert store.get(OWNER, after) is None
    rest, before, end = page_ids(store, limit=3, after=after)
    assert rest == [run(i).id for i in (2, 1, 0)] and end is None and before == run(2).id
    with pytest.raises(UnknownCursor):
        page_ids(store, after="prtn_unknown")


def test_filters(store: Store) -> None:
    store.insert(
        [
            run(1, filename="Invoice-A.pdf"),
            run(2, filename="invoice-b.pdf"),
            run(3, filename="other.pdf"),
            run(4, filename="INVOICE-c.pdf", done=None),
            run(5, filename="invoice-d.pdf", final="failed"),
        ]
    )
    ids, _, _ = page_ids(store, filename="invoice")
    assert ids == [run(i).id for i in (5, 4, 2, 1)]
    ids, _, _ = page_ids(store, filename="invoice", status="completed")
    assert ids == [run(i).id for i in (2, 1)]
    ids, _, _ = page_ids(store, status="in_progress")
    assert ids == [run(4).id]
    ids, _, _ = page_ids(store, status="failed")
    assert ids == [run(5).id]
    ids, _, _ = page_ids(store, status="queued", now=T0 + 1500)
    assert ids == [run(i).id for i in (5, 4, 3, 2)]
    ids, _, _ = page_ids(store, from_us=T0 + 2000, to_us=T0 + 4000)
    assert ids == [run(3).id, run(2).id]


def test_cancel_only_changes_unfinished_runs(store: Store) -> None:
    store.insert([run(1, done=None), run(2)])
    cancelled = store.cancel(OWNER, run(1).id, T0 + 5000)
    assert cancelled is not None and cancelled.final_status == "cancelled" and cancelled.done_us == T0 + 5000
    finished = store.cancel(OWNER, run(2).id, T0 + 5000)
    assert finished == run(2)
    assert store.cancel("someone-else", run(2).id, T0) is None


def test_owners_are_isolated(store: Store) -> None:
    store.insert([run(1), run(2, owner="owner-b")])
    assert store.get("owner-b", run(1).id) is None
    assert page_ids(store)[0] == [run(1).id]
    with pytest.raises(UnknownCursor):
        page_ids(store, after=run(2).id)


def test_idempotency_keys_expire(store: Store) -> None:
    store.remember(OWNER, "k", Replay("fp", 201, b"{}"), now=T0, expired_us=0)
    assert store.replay(OWNER, "k", since_us=T0 - 1) == Replay("fp", 201, b"{}")
    assert store.replay(OWNER, "k", since_us=T0 + 1) is None
    assert store.replay("owner-b", "k", since_us=0) is None


def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "emulator.sqlite3"
    first = Store(str(path))
    first.insert([run(1), run(2)])
    first.delete(OWNER, run(2).id, T0)
    first.close()
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    again = Store(str(path))
    assert again.get(OWNER, run(1).id) == run(1)
    assert again.get(OWNER, run(2).id) is None
    assert page_ids(again, after=run(2).id)[0] == [run(1).id]  # the tombstone survived too


def test_reset(store: Store) -> None:
    store.insert([run(1)])
    store.remember(OWNER, "k", Replay("fp", 201, b"{}"), now=T0, expired_us=0)
    store.reset()
    assert store.count() == 0 and store.replay(OWNER, "k", 0) is None


def test_concurrent_writers_never_corrupt(store: Store) -> None:
    def work(offset: int) -> None:
        for i in range(offset, offset + 200):
            store.insert([run(i)])
            if i % 3 == 0:
                store.cancel(OWNER, run(i).id, T0)
            if i % 5 == 0:
                store.delete(OWNER, run(i).id, T0)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count(OWNER) == 6 * 160


def test_paging_50k_rows_is_fast_and_exact(store: Store) -> None:
    store.insert(run(i) for i in range(50_000))
    seen = 0
    after = None
    last = None
    while True:
        query = ListQuery(limit=100, after=after)
        page = store.list_page(OWNER, query, T0 * 2)
        seen += len(page.runs)
        if last is not None and page.runs:
            assert page.runs[0].created_us < last
        if page.runs:
            last = page.runs[-1].created_us
        after = page.after
        if after is None:
            break
    assert seen == 50_000
