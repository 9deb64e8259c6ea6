"""The watch engine's sweep mode: list pages instead of one poll per run (docs/design.md §4).

With more than SWEEP_THRESHOLD runs active (and a client that can list), per-run polls
would each wait N / rate seconds. One task sweeps instead: it lists the account's
active runs (one query per active status, every page), takes each watched run's
status from the list items, and fetches individually only the watched runs missing
from every listing (ended, or not visible yet) -- with the full view, since they have
most likely ended. Sweeps repeat at the per-run interval, never more often than the
last sweep's request count allows under the budget. When the active runs drop to
SWEEP_THRESHOLD or fewer, or a sweep costs as many pages as there are active runs (a
busy account), the sweeper hands over to per-run polls (an open-ended watch may start
sweeps again as runs are added).

Every state change goes through the watcher's `Runs`, as the per-run polls' do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from retab_cli.errors import AuthError, BadResponseError, NotFoundError, RejectedError, RetabError
from retab_cli.parsing import parse_time
from retab_cli.statuses import ACTIVE_ORDER, TERMINAL, status_of

if TYPE_CHECKING:
    from retab_cli.watch import ListClient, Pacing, Runs, Track

SWEEP_THRESHOLD = 50  # more active runs than this: sweep list pages instead (docs/design.md §4)
# In lifecycle order: a run moving on while we list moves to a status not listed yet,
# so it is still seen. Only an end, lag or a move backwards hides a run from all three.
SWEEP_STATUSES = ACTIVE_ORDER
SWEEP_PAGE = 100  # the API's largest page

T = TypeVar("T")


@dataclass
class _Listing:
    """What one sweep's listing found."""

    seen: set[str] = field(default_factory=set)  # watched ids listed with an active status
    pages: int = 0  # pages asked for
    error: RetabError | None = None  # the transient error that cut the listing short


def page_of(data: Any) -> tuple[list[Any], str | None]:
    """A list page's items and its `after` cursor (None on the last page)."""
    items = data.get("data") if isinstance(data, dict) else None
    meta = data.get("list_metadata") if isinstance(data, dict) else None
    after = meta.get("after") if isinstance(meta, dict) else None
    if not isinstance(items, list) or not isinstance(meta, dict) or not isinstance(after, str | None):
        raise BadResponseError("unusable response: a list page needs 'data' and 'list_metadata'")
    return items, after or None


class Sweeper:
    """The one task that sweeps list pages for a watcher, until it hands over."""

    def __init__(self, client: ListClient, runs: Runs, pacing: Pacing, *, slots: asyncio.Semaphore,
                 clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]],
                 began: float, hand_over: Callable[[], None], threshold: int = SWEEP_THRESHOLD) -> None:
        self._client = client
        self._runs = runs
        self._pacing = pacing
        self._slots = slots
        self._clock = clock
        self._sleep = sleep
        self._began = began  # when the watch began: the interval grows from there
        self._hand_over = hand_over  # starts per-run polls for every active run
        self._failures = 0  # consecutive failed sweeps
        self._threshold = threshold
        self.cost = len(SWEEP_STATUSES)  # pages the last complete listing took

    def period(self, cost: int) -> float:
        return self._pacing.sweep_period(self._began, self._failures, cost)

    async def loop(self, delay: float | None) -> None:
        while delay is not None:
            if delay > 0:
                await self._sleep(delay)
            delay = await self.sweep()

    async def sweep(self) -> float | None:
        """List the active runs, fetch the watched ones missing: the delay before the next
        sweep, or None when this task is done (the watch is over, or polls took over)."""
        started = self._clock()
        waiting = self._runs.waiting()
        try:
            listing = await self._list_active(waiting)
        except (AuthError, RejectedError) as exc:
            self._runs.fatal_error_of_all(exc)
            return None
        if listing.error is not None:
            lefts, cost = self._listing_failed(waiting, listing.seen, listing.error), listing.pages
        else:
            self._failures = 0
            missing = [t for pid, t in waiting.items() if pid not in listing.seen and not t.run.done]
            lefts = await _gather([self._fetch(t) for t in missing])
            cost = listing.pages + len(missing)
        return self._next(started, listing, lefts, cost)

    def _listing_failed(self, waiting: Mapping[str, Track], seen: set[str],
                        error: RetabError) -> list[float | None]:
        """Runs seen on the pages that did come back were updated; the others failed."""
        self._failures += 1
        # `done` is read afresh: one giving up under fail-fast stops (ends) all the others.
        return [self._runs.failed(track, error) for pid, track in waiting.items()
                if pid not in seen and not track.run.done]

    def _next(self, started: float, listing: _Listing, lefts: list[float | None],
              cost: int) -> float | None:
        runs = self._runs
        if runs.stopping:
            return None
        if listing.error is None:
            self.cost = max(listing.pages, len(SWEEP_STATUSES))
        # Per-run polls are as cheap once few runs are left (none, when all ended), or when
        # listing the account costs as many pages as there are runs to watch: hand over to
        # them.
        if runs.active <= self._threshold or (listing.error is None and listing.pages >= runs.active):
            self._hand_over()
            return None
        # Success: one period from the start of this sweep (its requests included). A
        # failure waits from now, backing off; the last attempt lands on the give-up mark.
        spent = self._clock() - started if listing.error is None else 0.0
        delay = self.period(cost) - spent
        give_up = [left for left in lefts if left is not None]
        return max(0.0, min(delay, *give_up) if give_up else delay)

    async def _list_active(self, waiting: Mapping[str, Track]) -> _Listing:
        """Every page of every active status; 400/401/403/422 are raised."""
        listing = _Listing()
        base: dict[str, str | int] = {"limit": SWEEP_PAGE}
        if (day := _from_date(waiting.values())) is not None:
            base["from_date"] = day
        for status in SWEEP_STATUSES:
            if not await self._list_status(status, base, waiting, listing):
                break
        return listing

    async def _list_status(self, status: str, base: Mapping[str, str | int],
                           waiting: Mapping[str, Track], listing: _Listing) -> bool:
        """Every page of one status into `listing`; False when a failure cut it short."""
        after: str | None = None
        cursors: set[str] = set()
        while True:
            params = {**base, "status": status}
            if after is not None:
                params["after"] = after
            listing.pages += 1
            try:
                async with self._slots:
                    result = await self._client.list(params)
                items, after = page_of(result.data)
            except (AuthError, RejectedError):
                raise
            except RetabError as exc:
                listing.error = exc
                return False
            self._take(items, waiting, listing.seen)
            if after is None:
                return True
            if after in cursors:  # a server string: kept out of the message
                listing.error = BadResponseError("unusable response: the list cursor did not advance")
                return False
            cursors.add(after)

    def _take(self, items: list[Any], waiting: Mapping[str, Track], seen: set[str]) -> None:
        """The watched runs among the items, with their listed status."""
        for item in items:
            if not isinstance(item, dict):
                continue
            pid, listed = item.get("id"), item.get("status")
            track = waiting.get(pid) if isinstance(pid, str) else None
            # A terminal or unknown status: fetched on its own, as a missing run.
            if track is None or track.run.done or listed not in SWEEP_STATUSES:
                continue
            seen.add(track.run.id)
            self._runs.succeeded(track)
            self._runs.observe(track, item, str(listed))

    async def _fetch(self, track: Track) -> float | None:
        """A watched run missing from every listing, most likely ended: one request for the
        full object. If it is still active, it stays watched. The seconds left before
        giving up when the request failed, else None."""
        try:
            async with self._slots:
                result = await self._client.get(track.run.id, include_output=True, attempts=1)
            if track.run.done:  # a poll of the run's own ended it meanwhile
                return None
            status = status_of(result.data)
        except (AuthError, RejectedError) as exc:
            self._runs.fatal_error(track, exc)
            return None
        except NotFoundError as exc:
            self._runs.tolerate_not_found(track, exc)  # retried at the next sweep
            return None
        except RetabError as exc:
            return self._runs.failed(track, exc)
        self._runs.succeeded(track)
        self._runs.observe(track, result.data, status)
        if status in TERMINAL:
            self._runs.end(track, result.data)
        return None


async def _gather(work: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; whatever happens (a bug, a cancel), none is left running."""
    tasks = [asyncio.create_task(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _from_date(tracks: Iterable[Track]) -> str | None:
    """The earliest UTC day the runs were created, when every one of them is known."""
    days = []
    for track in tracks:
        raw = track.run.raw
        created = parse_time(raw.get("created_at")) if raw is not None else None
        if created is None:
            return None
        days.append(created.date())
    return min(days).isoformat() if days else None
