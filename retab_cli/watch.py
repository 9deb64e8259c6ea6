"""The polling engine behind `watch`, `create --wait`, `cancel --wait` and `get --exit-status`.

Pure logic over a client (DESIGN §4): it follows each run's status and yields events;
commands render them. No output, no signals and no HTTP here.

Shape: one small task per run sleeps until its next poll, then asks the client. Every
state change happens synchronously in that task and goes onto one queue, which
`Watcher.run()` yields from in order. Stopping (timeout, fail-fast, a fatal error) is
one synchronous step that cancels every other task first, so nothing can be observed
after it. Each run gets exactly one final event: ended, gone, gave_up, timeout,
stopped or fatal.

Sweep mode: with more than SWEEP_THRESHOLD runs active (and a client that can list),
per-run polls would each wait N / rate seconds. One task sweeps instead: it lists the
account's active runs (one query per active status, every page), takes each watched
run's status from the list items, and fetches individually only the watched runs
missing from every listing (ended, or not visible yet) -- with the full view, since
they have most likely ended. Sweeps repeat at the per-run interval, never more often
than the last sweep's request count allows under the budget. When the active runs
drop to SWEEP_THRESHOLD or fewer, or a sweep costs as many pages as there are active
runs (a busy account), the sweeper hands over to per-run polls.

Open-ended watches (a batch creating runs while it watches them): `add` brings in
runs as they are created and `no_more_runs` says the list is complete; the watch ends
when both are true and every run has ended. Added runs join the sweep, or get polls of
their own; with more active runs than the sweep threshold and than the last sweep's
pages, polls give way to sweeps again (each poll task stops when it next wakes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from retab_cli.budget import Budget
from retab_cli.errors import (
    ERROR,
    NOT_FOUND,
    OK,
    RUN_CANCELLED,
    RUN_FAILED,
    STILL_RUNNING,
    AuthError,
    BadResponseError,
    NotFoundError,
    RejectedError,
    RetabError,
    exit_for_status,
    worst,
)
from retab_cli.parsing import parse_time
from retab_cli.statuses import ACTIVE_ORDER, TERMINAL

if TYPE_CHECKING:  # the client module imports httpx; the engine only needs the type
    from retab_cli.client import ApiResult

MIN_INTERVAL = 1.0
MAX_INTERVAL = 10.0
JITTER = 0.2  # ±20%: spreads runs created together so their polls do not bunch up
MAX_BACKOFF = 30.0
NOT_FOUND_RETRY = 1.0  # read-after-write lag clears in about a second
FINAL_ATTEMPTS = 3  # the full object is fetched once, so let the client retry it a little
SWEEP_THRESHOLD = 50  # more active runs than this: sweep list pages instead (DESIGN §4)
# In lifecycle order: a run moving on while we list moves to a status not listed yet,
# so it is still seen. Only an end, lag or a move backwards hides a run from all three.
SWEEP_STATUSES = ACTIVE_ORDER
SWEEP_PAGE = 100  # the API's largest page

# Outcomes of a run, and the exit code each one means (DESIGN §3). "error" (a fatal
# 400/401/403/422) takes the error's own exit code.
OUTCOME_EXIT = {
    "completed": OK,
    "failed": RUN_FAILED,
    "cancelled": RUN_CANCELLED,
    "not_found": NOT_FOUND,
    "gave_up": ERROR,
    "stopped": STILL_RUNNING,
    "timeout": STILL_RUNNING,
}
# Under fail-fast, any of these settles a non-zero exit, so waiting longer is pointless.
FAIL_FAST_OUTCOMES = frozenset({"failed", "cancelled", "not_found", "gave_up"})

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Wall = Callable[[], datetime]


class PollClient(Protocol):
    budget: Budget

    async def get(
        self, partition_id: str, *, include_output: bool = True, attempts: int | None = None
    ) -> ApiResult: ...

    # Optional at run time: a client without it is polled run by run.
    async def list(self, params: Mapping[str, str | int]) -> ApiResult: ...


@dataclass
class RunState:
    """What is known about one run; one per id, in input order."""

    id: str
    status: str | None = None  # last known status; None before the first sighting
    raw: dict[str, Any] | None = None  # last object seen; the full object once ended
    started: float = 0.0  # monotonic time the watch began on it
    ended: float | None = None
    outcome: str | None = None  # a key of OUTCOME_EXIT, "error", or None while active
    last_error: str | None = None
    exit_code: int = STILL_RUNNING

    @property
    def done(self) -> bool:
        return self.outcome is not None


@dataclass
class Event:
    """One thing that happened to one run.

    kind: "status" (status changed, incl. first sighting; `data` is the object seen),
    "retry" (a tolerated failure, `error` says which), and exactly one final event per
    run: "ended" (terminal; `data` is the full object), "gone" (404), "gave_up",
    "timeout", "stopped" (fail-fast or a fatal error elsewhere), "fatal" (400/401/403/422
    on this run; everything stops).
    """

    kind: str
    run: RunState
    old: str | None  # previous status, for "status" events
    new: str | None  # the status at the time of the event
    wall: datetime  # UTC
    at: float  # monotonic; `at - run.started` is the elapsed time to show
    data: dict[str, Any] | None = None
    error: RetabError | None = None


def _page_of(data: Any) -> tuple[list[Any], str | None]:
    """A list page's items and its `after` cursor (None on the last page)."""
    items = data.get("data") if isinstance(data, dict) else None
    meta = data.get("list_metadata") if isinstance(data, dict) else None
    after = meta.get("after") if isinstance(meta, dict) else None
    if not isinstance(items, list) or not isinstance(meta, dict) or not isinstance(after, str | None):
        raise BadResponseError("unusable response: a list page needs 'data' and 'list_metadata'")
    return items, after or None


def status_of(data: Any) -> str:
    """The status of a fetched object, or an unusable-response error."""
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, str) or not status:
        raise BadResponseError("unusable response: a partition without a status")
    return status


@dataclass
class _Track:
    """The engine's private bookkeeping for one run."""

    run: RunState
    fetched: bool = False  # a GET has succeeded: a 404 now means deleted, not lag
    final: bool = False  # seen terminal: the next fetch is the full object
    failures: int = 0  # consecutive transient failures
    failing_since: float | None = None
    not_found: int = 0  # 404s tolerated so far


class Watcher:
    """Follow runs until each ends. Iterate `run()` once; close it (or `aclose()`) after.

    Use `async with contextlib.aclosing(watcher.run()) as events:` so that leaving the
    loop early cancels every poll at once.
    """

    def __init__(
        self,
        client: PollClient,
        ids: Sequence[str],
        *,
        interval: float | None = None,
        timeout: float | None = None,
        fail_fast: bool = False,
        initial: Mapping[str, dict[str, Any]] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall: Wall = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        give_up_after: float = 120.0,
        not_found_tolerance: int = 3,
        max_concurrent: int = 16,
        open_ended: bool = False,
        sweep_above: int = SWEEP_THRESHOLD,
    ) -> None:
        self._client = client
        self._tracks = {pid: _Track(RunState(pid)) for pid in dict.fromkeys(ids)}
        self._interval = interval
        self._timeout = timeout
        self._fail_fast = fail_fast
        self._initial = dict(initial or {})
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._rng = rng or random.Random()
        self._give_up_after = give_up_after
        self._not_found_tolerance = not_found_tolerance
        self._slots = asyncio.Semaphore(max(1, max_concurrent))
        # Events in order; None once every run is over; an exception a task died of.
        self._queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = len(self._tracks)
        self._can_sweep = callable(getattr(client, "list", None))
        self._began = 0.0  # monotonic time the watch began
        self._sweep_failures = 0  # consecutive failed sweeps
        self._started = False
        self._stopping = False
        self.fatal: RetabError | None = None
        self._open = open_ended  # more runs may be added
        self._sweep_above = sweep_above
        self._sweep_cost = len(SWEEP_STATUSES)  # pages the last sweep took (one per status at least)
        self._sweeping = False  # a sweep task is running
        self._mode = 0  # bumped when sweeps take over: poll tasks of an older mode stop

    @property
    def runs(self) -> list[RunState]:
        return [t.run for t in self._tracks.values()]

    @property
    def active(self) -> int:
        return self._active

    def exit_code(self, *, any_end_ok: bool = False) -> int:
        """The most severe outcome (DESIGN §3); runs still active count as 8.

        `any_end_ok` is for `cancel --wait`, where failed or cancelled is success too.
        """
        return worst(OK if any_end_ok and run.outcome in TERMINAL else run.exit_code for run in self.runs)

    async def run(self) -> AsyncGenerator[Event, None]:
        """Yield events until every run has ended, the timeout passed, or a stop."""
        if self._started:
            raise RuntimeError("a Watcher runs once")
        self._started = True
        now = self._began = self._clock()
        for track in self._tracks.values():
            track.run.started = now
        try:
            if self._active == 0 and not self._open:
                return
            self._seed()
            self._start()
            while (item := await self._queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await self.aclose()

    def add(self, partition_id: str, initial: dict[str, Any] | None = None) -> None:
        """Watch one more run (open-ended watches); `initial` is the object create returned."""
        if partition_id in self._tracks:
            return
        track = _Track(RunState(partition_id, started=self._clock()))
        self._tracks[partition_id] = track
        self._active += 1
        if not self._started:
            if initial is not None:
                self._initial[partition_id] = initial
            return
        if self._stopping:
            self._close(track, "stopped", "stopped")
            return
        if initial is not None:
            self._seed_one(track, initial)
        if not track.run.done:
            self._schedule(track)

    def forget(self, partition_id: str) -> None:
        """Drop what is kept about a run that has ended (a long batch's memory stays flat)."""
        track = self._tracks.get(partition_id)
        if track is not None and track.run.done:
            del self._tracks[partition_id]

    def no_more_runs(self) -> None:
        """An open-ended watch gets no more `add`s: it ends once the runs it has end."""
        self._open = False
        if self._active == 0:
            self._queue.put_nowait(None)

    async def aclose(self) -> None:
        """Cancel every poll in flight and wait for them to finish unwinding."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- starting ----------------------------------------------------------------

    def _seed(self) -> None:
        """Objects the caller already has (create's response) count as first sightings."""
        for track in list(self._tracks.values()):
            data = self._initial.pop(track.run.id, None)
            if data is not None and not track.run.done:
                self._seed_one(track, data)

    def _seed_one(self, track: _Track, data: dict[str, Any]) -> None:
        try:
            status = status_of(data)
        except BadResponseError:
            return  # poll it instead
        self._observe(track, data, status)
        if status in TERMINAL:
            # create and cancel return the whole object: nothing more to fetch
            self._end(track, data)

    def _start(self) -> None:
        if self._sweep_pays():
            # Sweep at once unless every run was just seen (seeded).
            unseen = any(t.run.status is None for t in self._tracks.values() if not t.run.done)
            self._start_sweeps(0.0 if unseen else self._sweep_period(0))
        else:
            self._start_polls(first=True)
        if self._timeout is not None and self._active:
            self._spawn(self._expire(self._clock() + self._timeout))

    def _sweep_pays(self) -> bool:
        """Sweeps beat per-run polls: more active runs than the threshold and than the
        pages a sweep takes."""
        return self._can_sweep and self._active > max(self._sweep_above, self._sweep_cost)

    def _start_sweeps(self, delay: float) -> None:
        self._sweeping = True
        self._mode += 1  # the poll tasks running now stop when they next wake
        self._spawn(self._sweep_loop(delay))

    def _schedule(self, track: _Track) -> None:
        """An added run: the running sweep takes it, or sweeps start, or it gets polls."""
        if self._sweeping:
            return
        seen = track.run.status is not None
        if self._sweep_pays():
            self._start_sweeps(self._sweep_period(0) if seen else 0.0)
            return
        self._spawn(self._follow(track, self._next_delay(track) if seen else 0.0))

    def _start_polls(self, *, first: bool) -> None:
        """One task per active run. At first a seeded run waits an interval and the others
        are fetched at once; after sweeps, every run was just seen or fetched."""
        for track in self._tracks.values():
            if track.run.done:
                continue
            delay = self._next_delay(track) if track.run.status is not None or not first else 0.0
            self._spawn(self._follow(track, delay))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # A bug (anything but a RetabError) must end the watch, not leave it waiting.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._queue.put_nowait(exc)

    # ---- polling -----------------------------------------------------------------

    async def _follow(self, track: _Track, delay: float | None) -> None:
        mode = self._mode
        while delay is not None:
            if delay > 0:
                await self._sleep(delay)
            if mode != self._mode or track.run.done:
                return  # sweeps took over (and may have ended the run)
            delay = await self._poll(track)

    async def _expire(self, deadline: float) -> None:
        while (left := deadline - self._clock()) > 0:
            await self._sleep(left)
        self._stop("timeout")

    async def _poll(self, track: _Track) -> float | None:
        """One request for this run: the delay before the next, or None when it is over."""
        try:
            async with self._slots:
                # Polls use the cheap view and one attempt: the engine owns the backoff.
                result = await self._client.get(
                    track.run.id,
                    include_output=track.final,
                    attempts=FINAL_ATTEMPTS if track.final else 1,
                )
            if track.run.done:  # a sweep ended it while this poll was on its way
                return None
            status = status_of(result.data)
        except (AuthError, RejectedError) as exc:
            self._fatal(track, exc)
            return None
        except NotFoundError as exc:
            return self._on_not_found(track, exc)
        except RetabError as exc:
            return self._on_failure(track, exc)
        return self._on_success(track, result.data, status)

    def _on_success(self, track: _Track, data: dict[str, Any], status: str) -> float | None:
        self._succeeded(track)
        if track.final:
            self._observe(track, data, status)
            self._end(track, data)
            return None
        self._observe(track, data, status)
        if status in TERMINAL:
            track.final = True
            return 0.0  # fetch the full object now
        return self._next_delay(track)

    def _on_not_found(self, track: _Track, exc: NotFoundError) -> float | None:
        if not self._tolerate_not_found(track, exc):
            return None
        return max(NOT_FOUND_RETRY * self._jitter(), self._floor())

    def _on_failure(self, track: _Track, exc: RetabError) -> float | None:
        left = self._failed(track, exc)
        if left is None:
            return None
        # The last attempt lands on the give-up mark, so giving up is on time.
        return min(self._next_delay(track), left)

    def _succeeded(self, track: _Track) -> None:
        track.fetched = True  # it exists: a 404 from now on means deleted, not lag
        track.failures = 0
        track.failing_since = None
        track.run.last_error = None

    def _tolerate_not_found(self, track: _Track, exc: NotFoundError) -> bool:
        """A 404: tolerated (True) right after create, else the run is gone."""
        track.run.last_error = exc.message
        if track.fetched or track.not_found >= self._not_found_tolerance:
            self._close(track, "not_found", "gone", error=exc)
            return False
        track.not_found += 1  # read-after-write lag right after create
        self._emit("retry", track, error=exc)
        return True

    def _failed(self, track: _Track, exc: RetabError) -> float | None:
        """A transient failure: the seconds left before giving up, or None once given up."""
        now = self._clock()
        if track.failing_since is None:
            track.failing_since = now
        track.failures += 1
        track.run.last_error = exc.message
        left = track.failing_since + self._give_up_after - now
        if left <= 0:
            if track.final:  # it ended and we know how; only the details are missing
                self._end(track, track.run.raw or {}, error=exc)
            else:
                self._close(track, "gave_up", "gave_up", error=exc)
            return None
        self._emit("retry", track, error=exc)
        return left

    def _fatal(self, track: _Track, exc: RetabError) -> None:
        self.fatal = exc
        self._close(track, "error", "fatal", error=exc, exit_code=exc.exit_code)
        self._stop("stopped")

    # ---- sweeping ----------------------------------------------------------------

    async def _sweep_loop(self, delay: float | None) -> None:
        try:
            while delay is not None:
                if delay > 0:
                    await self._sleep(delay)
                delay = await self._sweep()
        finally:
            self._sweeping = False

    async def _sweep(self) -> float | None:
        """List the active runs, fetch the watched ones missing: the delay before the next
        sweep, or None when this task is done (the watch is over, or per-run polls took over)."""
        started = self._clock()
        waiting = {t.run.id: t for t in self._tracks.values() if not t.run.done}
        try:
            seen, pages, error = await self._list_active(waiting)
        except (AuthError, RejectedError) as exc:
            # Not about one run: the first one still active carries the fatal event.
            first = next((t for t in self._tracks.values() if not t.run.done), None)
            if first is None:
                self.fatal = exc
            else:
                self._fatal(first, exc)
            return None
        lefts: list[float | None] = []
        if error is not None:
            # Runs seen on the pages that did come back were updated; the others failed.
            self._sweep_failures += 1
            for pid, track in waiting.items():
                if self._stopping:
                    return None
                if pid not in seen and not track.run.done:
                    lefts.append(self._failed(track, error))
            cost = pages
        else:
            self._sweep_failures = 0
            missing = [t for pid, t in waiting.items() if pid not in seen and not t.run.done]
            lefts = await self._gather([self._fetch(t) for t in missing])
            cost = pages + len(missing)
        if self._stopping or self._active == 0:
            return None
        # Per-run polls are as cheap once few runs are left, or when listing the account
        # costs as many pages as there are runs to watch: hand over to them for good.
        if error is None:
            self._sweep_cost = max(pages, len(SWEEP_STATUSES))
        if self._active <= self._sweep_above or (error is None and pages >= self._active):
            self._sweeping = False
            self._start_polls(first=False)
            return None
        # Success: one period from the start of this sweep (its requests included). A
        # failure waits from now, backing off; the last attempt lands on the give-up mark.
        delay = self._sweep_period(cost) - (self._clock() - started if error is None else 0.0)
        give_up = [left for left in lefts if left is not None]
        return max(0.0, min(delay, *give_up) if give_up else delay)

    async def _list_active(self, waiting: Mapping[str, _Track]) -> tuple[set[str], int, RetabError | None]:
        """Every page of every active status: the watched ids seen, the pages asked for, and
        the transient error that cut the listing short. 400/401/403/422 are raised."""
        seen: set[str] = set()
        pages = 0
        base: dict[str, str | int] = {"limit": SWEEP_PAGE}
        if (day := self._from_date(waiting.values())) is not None:
            base["from_date"] = day
        for status in SWEEP_STATUSES:
            after: str | None = None
            cursors: set[str] = set()
            while True:
                params = {**base, "status": status}
                if after is not None:
                    params["after"] = after
                pages += 1
                try:
                    async with self._slots:
                        result = await self._client.list(params)
                    items, after = _page_of(result.data)
                except (AuthError, RejectedError):
                    raise
                except RetabError as exc:
                    return seen, pages, exc
                for item in items:
                    pid = item.get("id") if isinstance(item, dict) else None
                    track = waiting.get(pid) if isinstance(pid, str) else None
                    listed = item.get("status") if isinstance(item, dict) else None
                    # A terminal or unknown status: fetched on its own, as a missing run.
                    if track is None or track.run.done or listed not in SWEEP_STATUSES:
                        continue
                    seen.add(track.run.id)
                    self._succeeded(track)
                    self._observe(track, item, str(listed))
                if after is None:
                    break
                if after in cursors:  # a server string: kept out of the message
                    return seen, pages, BadResponseError("unusable response: the list cursor did not advance")
                cursors.add(after)
        return seen, pages, None

    async def _fetch(self, track: _Track) -> float | None:
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
            self._fatal(track, exc)
            return None
        except NotFoundError as exc:
            self._tolerate_not_found(track, exc)  # retried at the next sweep
            return None
        except RetabError as exc:
            return self._failed(track, exc)
        self._succeeded(track)
        self._observe(track, result.data, status)
        if status in TERMINAL:
            self._end(track, result.data)
        return None

    @staticmethod
    async def _gather(work: list[Coroutine[Any, Any, T]]) -> list[T]:
        """Run concurrently; whatever happens (a bug, a cancel), none is left running."""
        tasks = [asyncio.create_task(w) for w in work]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _from_date(tracks: Iterable[_Track]) -> str | None:
        """The earliest UTC day the runs were created, when every one of them is known."""
        days = []
        for track in tracks:
            raw = track.run.raw
            created = parse_time(raw.get("created_at")) if raw is not None else None
            if created is None:
                return None
            days.append(created.date())
        return min(days).isoformat() if days else None

    # ---- intervals ---------------------------------------------------------------

    def _next_delay(self, track: _Track) -> float:
        """clamp(elapsed / 10, 1 s, 10 s) or the pinned interval, backed off while failing,
        jittered, and never below this run's share of the request budget."""
        base = self._backed_off(self._base(track.run.started), track.failures)
        return max(base * self._jitter(), self._floor())

    def _sweep_period(self, cost: int) -> float:
        """The per-run interval, backed off while sweeps fail, jittered, and never shorter
        than the requests of the last sweep take under the budget."""
        base = self._backed_off(self._base(self._began), self._sweep_failures)
        return max(base * self._jitter(), self._client.budget.interval_for(cost))

    def _base(self, since: float) -> float:
        if self._interval is not None:
            return self._interval
        return min(max((self._clock() - since) / 10, MIN_INTERVAL), MAX_INTERVAL)

    @staticmethod
    def _backed_off(base: float, failures: int) -> float:
        if not failures:
            return base
        # The first retry waits one interval, then doubling (never below the base).
        return max(base, min(base * 2.0 ** (failures - 1), MAX_BACKOFF))

    def _jitter(self) -> float:
        return self._rng.uniform(1 - JITTER, 1 + JITTER)

    def _floor(self) -> float:
        # N runs / rate: read fresh each time, so a 429 (rate halved) stretches it
        # and runs ending shorten it.
        return self._client.budget.interval_for(self._active)

    # ---- state changes (synchronous: nothing can interleave) ----------------------

    def _observe(self, track: _Track, data: dict[str, Any], status: str) -> None:
        run = track.run
        run.raw = data
        if status != run.status:
            old, run.status = run.status, status
            self._emit("status", track, old=old, data=data)

    def _end(self, track: _Track, data: dict[str, Any], error: RetabError | None = None) -> None:
        outcome = str(track.run.status)
        self._close(track, outcome, "ended", data=data, error=error)

    def _close(
        self,
        track: _Track,
        outcome: str,
        kind: str,
        *,
        data: dict[str, Any] | None = None,
        error: RetabError | None = None,
        exit_code: int | None = None,
    ) -> None:
        run = track.run
        if run.done:  # one final event per run, whoever saw the end first
            return
        run.outcome = outcome
        run.exit_code = exit_code if exit_code is not None else OUTCOME_EXIT[outcome]
        run.ended = self._clock()
        if error is not None:
            run.last_error = error.message
        self._emit(kind, track, data=data, error=error)
        self._active -= 1
        if self._active == 0 and not self._open:
            self._queue.put_nowait(None)
        elif self._fail_fast and outcome in FAIL_FAST_OUTCOMES:
            self._stop("stopped")

    def _stop(self, kind: str) -> None:
        """End every active run now (kind: "timeout" or "stopped")."""
        if self._stopping:
            return
        self._stopping = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()  # none of them runs again before this returns
        for track in self._tracks.values():
            if track.run.done:
                continue
            if track.final:  # seen terminal, full object not fetched yet: report what we have
                self._end(track, track.run.raw or {})
            else:
                self._close(track, kind, kind)

    def _emit(
        self,
        kind: str,
        track: _Track,
        *,
        old: str | None = None,
        data: dict[str, Any] | None = None,
        error: RetabError | None = None,
    ) -> None:
        event = Event(kind, track.run, old, track.run.status, self._wall(), self._clock(), data, error)
        self._queue.put_nowait(event)


async def check_once(
    client: PollClient,
    ids: Sequence[str],
    *,
    include_output: bool = True,
    max_concurrent: int = 16,
) -> list[RunState]:
    """`get --exit-status`: fetch each run once and never wait.

    Terminal runs get their own exit code, others 8, 404 gives 6, and other failures
    (after the client's retries) their error's code. 400/401/403/422 are raised.
    """
    slots = asyncio.Semaphore(max(1, max_concurrent))

    async def one(pid: str) -> RunState:
        run = RunState(pid)
        try:
            async with slots:
                result = await client.get(pid, include_output=include_output)
            status = status_of(result.data)
        except (AuthError, RejectedError):
            raise
        except NotFoundError as exc:
            run.outcome, run.exit_code, run.last_error = "not_found", NOT_FOUND, exc.message
            return run
        except RetabError as exc:
            run.outcome, run.exit_code, run.last_error = "error", exc.exit_code, exc.message
            return run
        run.raw, run.status = result.data, status
        run.exit_code = exit_for_status(status)
        run.outcome = status if status in TERMINAL else None
        return run

    tasks = [asyncio.create_task(one(pid)) for pid in dict.fromkeys(ids)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:  # a fatal error or a cancel stops the rest at once
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
