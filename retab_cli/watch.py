"""The polling engine behind `watch`, `create --wait`, `cancel --wait` and `get --exit-status`.

Pure logic over a client (docs/design.md §4): it follows each run's status and yields events;
commands render them. No output, no signals and no HTTP here.

Shape: one small task per run sleeps until its next poll, then asks the client. Every
state change happens synchronously in that task, in `Runs`, and goes onto one queue,
which `Watcher.run()` yields from in order. Stopping (timeout, fail-fast, a fatal
error) is one synchronous step that cancels every other task first, so nothing can be
observed after it. Each run gets exactly one final event: ended, gone, gave_up,
timeout, stopped or fatal.

With more than SWEEP_THRESHOLD runs active, list sweeps replace the per-run polls
until few runs are left (retab_cli/sweep.py).

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
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
    UsageError,
    exit_for_status,
    worst,
)
from retab_cli.parsing import validate_id
from retab_cli.statuses import TERMINAL
from retab_cli.statuses import status_of as status_of  # re-exported: the engine's rule
from retab_cli.sweep import SWEEP_PAGE as SWEEP_PAGE
from retab_cli.sweep import SWEEP_STATUSES as SWEEP_STATUSES
from retab_cli.sweep import SWEEP_THRESHOLD, Sweeper

if TYPE_CHECKING:  # the client module imports httpx; the engine only needs the type
    from retab_cli.client import ApiResult

MIN_INTERVAL = 1.0
MAX_INTERVAL = 10.0
JITTER = 0.2  # ±20%: spreads runs created together so their polls do not bunch up
MAX_BACKOFF = 30.0
NOT_FOUND_RETRY = 1.0  # read-after-write lag clears in about a second
FINAL_ATTEMPTS = 3  # the full object is fetched once, so let the client retry it a little

# Outcomes of a run, and the exit code each one means (docs/design.md §3). "error" (a fatal
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

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Wall = Callable[[], datetime]


class PollClient(Protocol):
    budget: Budget

    async def get(
        self, partition_id: str, *, include_output: bool = True, attempts: int | None = None
    ) -> ApiResult: ...


@runtime_checkable
class ListClient(PollClient, Protocol):
    """A client that can also list: many runs are swept instead of polled one by one."""

    async def list(self, params: Mapping[str, str | int]) -> ApiResult: ...


@dataclass
class RunState:
    """What is known about one run; one per id, in input order."""

    id: str
    # The last known status, any string the server sent; None before the first sighting.
    status: str | None = None
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
    run: "ended" (terminal; `data` is the full object), "gone" (404), "gave_up" (2 min
    of failures, or an id the API cannot have), "timeout", "stopped" (fail-fast or a
    fatal error elsewhere), "fatal" (400/401/403/422 on this run; everything stops).
    """

    kind: str
    run: RunState
    old: str | None  # previous status, for "status" events
    new: str | None  # the status at the time of the event
    wall: datetime  # UTC
    at: float  # monotonic; `at - run.started` is the elapsed time to show
    data: dict[str, Any] | None = None
    error: RetabError | None = None


@dataclass
class Track:
    """The engine's private bookkeeping for one run."""

    run: RunState
    fetched: bool = False  # a GET has succeeded: a 404 now means deleted, not lag
    final: bool = False  # seen terminal: the next fetch is the full object
    failures: int = 0  # consecutive transient failures
    failing_since: float | None = None
    not_found: int = 0  # 404s tolerated so far


class Pacing:
    """How long to wait before the next request (docs/design.md §4)."""

    def __init__(self, budget: Budget, interval: float | None, clock: Clock, rng: random.Random) -> None:
        self._budget = budget
        self._interval = interval
        self._clock = clock
        self._rng = rng

    def next_poll(self, track: Track, runs: int) -> float:
        """clamp(elapsed / 10, 1 s, 10 s) or the pinned interval, backed off while failing,
        jittered, and never below one run's share of the budget among `runs`."""
        base = self._backed_off(self._base(track.run.started), track.failures)
        return max(base * self.jitter(), self.floor(runs))

    def sweep_period(self, began: float, failures: int, cost: int) -> float:
        """The per-run interval, backed off while sweeps fail, jittered, and never shorter
        than the `cost` requests of the last sweep take under the budget."""
        base = self._backed_off(self._base(began), failures)
        return max(base * self.jitter(), self._budget.interval_for(cost))

    def not_found_retry(self, runs: int) -> float:
        return max(NOT_FOUND_RETRY * self.jitter(), self.floor(runs))

    def floor(self, runs: int) -> float:
        # N runs / rate: read fresh each time, so a 429 (rate halved) stretches it
        # and runs ending shorten it.
        return self._budget.interval_for(runs)

    def jitter(self) -> float:
        return self._rng.uniform(1 - JITTER, 1 + JITTER)

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


class Runs:
    """Every watched run, the tasks working on them and the one queue of events.

    State changes are synchronous (nothing can interleave with them), and a stop
    cancels every other task before it returns: no event can follow the final ones.
    """

    def __init__(self, ids: Sequence[str], *, fail_fast: bool, clock: Clock, wall: Wall,
                 give_up_after: float, not_found_tolerance: int, open_ended: bool = False) -> None:
        self.tracks = {pid: Track(RunState(pid)) for pid in dict.fromkeys(ids)}
        self.active = len(self.tracks)
        self.open = open_ended  # more runs may be added
        self.stopping = False
        self.fatal: RetabError | None = None
        # Events in order; None once every run is over; an exception a task died of.
        self.queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fail_fast = fail_fast
        self._clock = clock
        self._wall = wall
        self._give_up_after = give_up_after
        self._not_found_tolerance = not_found_tolerance

    def waiting(self) -> dict[str, Track]:
        return {pid: t for pid, t in self.tracks.items() if not t.run.done}

    def add(self, partition_id: str) -> Track | None:
        """A new run to watch (None if it is watched already); stopped at once after a stop."""
        if partition_id in self.tracks:
            return None
        track = self.tracks[partition_id] = Track(RunState(partition_id, started=self._clock()))
        self.active += 1
        if self.stopping:
            self.close(track, "stopped", "stopped")
        return track

    def close_list(self) -> None:
        """No more runs will be added: the watch ends once the ones it has end."""
        self.open = False
        if self.active == 0:
            self.queue.put_nowait(None)

    # ---- tasks -------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # A bug (anything but a RetabError) must end the watch, not leave it waiting.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.queue.put_nowait(exc)

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- what a response means -----------------------------------------------------

    def succeeded(self, track: Track) -> None:
        track.fetched = True  # it exists: a 404 from now on means deleted, not lag
        track.failures = 0
        track.failing_since = None
        track.run.last_error = None

    def failed(self, track: Track, exc: RetabError) -> float | None:
        """A transient failure: the seconds left before giving up, or None once given up."""
        now = self._clock()
        if track.failing_since is None:
            track.failing_since = now
        track.failures += 1
        track.run.last_error = exc.message
        left = track.failing_since + self._give_up_after - now
        if left <= 0:
            if track.final:  # it ended and we know how; only the details are missing
                self.end(track, track.run.raw or {}, error=exc)
            else:
                self.close(track, "gave_up", "gave_up", error=exc)
            return None
        self.emit("retry", track, error=exc)
        return left

    def tolerate_not_found(self, track: Track, exc: NotFoundError) -> bool:
        """A 404: tolerated (True) right after create, else the run is gone."""
        track.run.last_error = exc.message
        if track.fetched or track.not_found >= self._not_found_tolerance:
            self.close(track, "not_found", "gone", error=exc)
            return False
        track.not_found += 1  # read-after-write lag right after create
        self.emit("retry", track, error=exc)
        return True

    def fatal_error(self, track: Track, exc: RetabError) -> None:
        """400/401/403/422: this run carries the error, and everything stops."""
        self.fatal = exc
        self.close(track, "error", "fatal", error=exc, exit_code=exc.exit_code)
        self.stop("stopped")

    def fatal_error_of_all(self, exc: RetabError) -> None:
        """A fatal error about no one run (a listing): the first active run carries it.
        (Sweeps run only while runs are active: a stop cancels them first.)"""
        self.fatal_error(next(iter(self.waiting().values())), exc)

    # ---- state changes ---------------------------------------------------------------

    def observe(self, track: Track, data: dict[str, Any], status: str) -> None:
        run = track.run
        run.raw = data
        if status != run.status:
            old, run.status = run.status, status
            self.emit("status", track, old=old, data=data)

    def finish(self, track: Track, data: dict[str, Any], status: str) -> None:
        """The full object of a run seen terminal ends it. A status seen terminal stays
        terminal: a cache may serve an older view, and no run leaves a terminal state."""
        if status in TERMINAL:
            self.observe(track, data, status)
        else:
            track.run.raw = data
        self.end(track, data)

    def end(self, track: Track, data: dict[str, Any], error: RetabError | None = None) -> None:
        """A run seen terminal: its outcome is its status."""
        self.close(track, str(track.run.status), "ended", data=data, error=error)

    def close(self, track: Track, outcome: str, kind: str, *, data: dict[str, Any] | None = None,
              error: RetabError | None = None, exit_code: int | None = None) -> None:
        run = track.run
        if run.done:  # one final event per run, whoever saw the end first
            return
        run.outcome = outcome
        run.exit_code = exit_code if exit_code is not None else OUTCOME_EXIT[outcome]
        run.ended = self._clock()
        if error is not None:
            run.last_error = error.message
        self.emit(kind, track, data=data, error=error)
        self.active -= 1
        if self.active == 0 and not self.open:
            self.queue.put_nowait(None)
        elif self._fail_fast and outcome in FAIL_FAST_OUTCOMES:
            self.stop("stopped")

    def stop(self, kind: str) -> None:
        """End every active run now (kind: "timeout" or "stopped")."""
        if self.stopping:
            return
        self.stopping = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()  # none of them runs again before this returns
        for track in self.waiting().values():
            if track.final:  # seen terminal, full object not fetched yet: report what we have
                self.end(track, track.run.raw or {})
            else:
                self.close(track, kind, kind)

    def emit(self, kind: str, track: Track, *, old: str | None = None,
             data: dict[str, Any] | None = None, error: RetabError | None = None) -> None:
        event = Event(kind, track.run, old, track.run.status, self._wall(), self._clock(), data, error)
        self.queue.put_nowait(event)


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
        self._runs = Runs(ids, fail_fast=fail_fast, clock=clock, wall=wall, give_up_after=give_up_after,
                          not_found_tolerance=not_found_tolerance, open_ended=open_ended)
        self._pacing = Pacing(client.budget, interval, clock, rng or random.Random())
        self._timeout = timeout
        self._initial = dict(initial or {})
        self._clock = clock
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max(1, max_concurrent))
        self._started = False
        self._began = 0.0
        self._sweep_above = sweep_above
        self._sweep_cost = len(SWEEP_STATUSES)  # pages the last sweep took (one per status at least)
        self._sweeping = False  # a sweep task is running
        self._mode = 0  # bumped when sweeps take over: poll tasks of an older mode stop

    @property
    def runs(self) -> list[RunState]:
        return [t.run for t in self._runs.tracks.values()]

    @property
    def active(self) -> int:
        return self._runs.active

    @property
    def fatal(self) -> RetabError | None:
        """The 400/401/403/422 that stopped the watch, if one did."""
        return self._runs.fatal

    def exit_code(self, *, any_end_ok: bool = False) -> int:
        """The most severe outcome (docs/design.md §3); runs still active count as 8.

        `any_end_ok` is for `cancel --wait`, where failed or cancelled is success too.
        """
        return worst(OK if any_end_ok and run.outcome in TERMINAL else run.exit_code for run in self.runs)

    async def run(self) -> AsyncGenerator[Event, None]:
        """Yield events until every run has ended, the timeout passed, or a stop."""
        if self._started:
            raise RuntimeError("a Watcher runs once")
        self._started = True
        began = self._began = self._clock()
        for track in self._runs.tracks.values():
            track.run.started = began
        try:
            if self._runs.active == 0 and not self._runs.open:
                return
            self._refuse_invalid_ids()
            self._seed()
            self._start()
            while (item := await self._runs.queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await self.aclose()

    def add(self, partition_id: str, initial: dict[str, Any] | None = None) -> None:
        """Watch one more run (open-ended watches); `initial` is the object create returned."""
        track = self._runs.add(partition_id)
        if track is None or track.run.done:
            return
        if not self._started:
            if initial is not None:
                self._initial[partition_id] = initial
            return
        if initial is not None:
            self._seed_one(track, initial)
        if not track.run.done:
            self._schedule(track)

    def forget(self, partition_id: str) -> None:
        """Drop what is kept about a run that has ended (a long batch's memory stays flat)."""
        track = self._runs.tracks.get(partition_id)
        if track is not None and track.run.done:
            del self._runs.tracks[partition_id]

    def no_more_runs(self) -> None:
        """An open-ended watch gets no more `add`s: it ends once the runs it has end."""
        self._runs.close_list()

    async def aclose(self) -> None:
        """Cancel every poll in flight and wait for them to finish unwinding."""
        await self._runs.cancel_tasks()

    # ---- starting ----------------------------------------------------------------

    def _refuse_invalid_ids(self) -> None:
        """An id no API could have (e.g. one a server returned) ends its run at once:
        polling it would only fail locally until the timeout."""
        for track in self._runs.tracks.values():
            if track.run.done:  # a fail-fast stop already ended it
                continue
            try:
                validate_id(track.run.id)
            except UsageError as exc:
                error = BadResponseError(f"unusable response: {exc.message}", partition_id=track.run.id)
                self._runs.close(track, "gave_up", "gave_up", error=error)

    def _seed(self) -> None:
        """Objects the caller already has (create's response) count as first sightings."""
        for track in list(self._runs.tracks.values()):
            data = self._initial.pop(track.run.id, None)
            if data is not None and not track.run.done:  # done: a fail-fast stop while seeding
                self._seed_one(track, data)

    def _seed_one(self, track: Track, data: dict[str, Any]) -> None:
        try:
            status = status_of(data)
        except BadResponseError:
            return  # poll it instead
        self._runs.observe(track, data, status)
        if status in TERMINAL:
            # create and cancel return the whole object: nothing more to fetch
            self._runs.end(track, data)

    def _start(self) -> None:
        runs = self._runs
        if self._sweep_pays():
            # Sweep at once unless every run was just seen (seeded).
            unseen = any(t.run.status is None for t in runs.waiting().values())
            self._start_sweeps(None if unseen else 0)
        else:
            self._start_polls(first=True)
        if self._timeout is not None and (runs.active or runs.open):
            runs.spawn(self._expire(self._clock() + self._timeout))

    def _sweep_pays(self) -> bool:
        """Sweeps beat per-run polls: more active runs than the threshold and than the
        pages a sweep takes."""
        return (isinstance(self._client, ListClient)
                and self._runs.active > max(self._sweep_above, self._sweep_cost))

    def _start_sweeps(self, cost: int | None) -> None:
        """One sweeping task: at once (cost None), or a period for `cost` requests from now."""
        assert isinstance(self._client, ListClient)
        sweeper = Sweeper(self._client, self._runs, self._pacing, slots=self._slots, clock=self._clock,
                          sleep=self._sleep, began=self._began, hand_over=self._start_polls,
                          threshold=self._sweep_above)
        self._sweeping = True
        self._mode += 1  # the poll tasks running now stop when they next wake
        self._runs.spawn(self._sweeps(sweeper, 0.0 if cost is None else sweeper.period(cost)))

    async def _sweeps(self, sweeper: Sweeper, delay: float) -> None:
        try:
            await sweeper.loop(delay)
        finally:  # however it ends (handed over, stopped, cancelled), the next add may sweep
            self._sweeping = False
            self._sweep_cost = sweeper.cost

    def _schedule(self, track: Track) -> None:
        """An added run: the running sweep takes it, or sweeps start, or it gets polls."""
        if self._sweeping:
            return
        seen = track.run.status is not None
        if self._sweep_pays():
            self._start_sweeps(0 if seen else None)
            return
        delay = self._pacing.next_poll(track, self._runs.active) if seen else 0.0
        self._runs.spawn(self._follow(track, delay))

    def _start_polls(self, *, first: bool = False) -> None:
        """One task per active run. At first a seeded run waits an interval and the others
        are fetched at once; after sweeps, every run was just seen or fetched."""
        for track in self._runs.waiting().values():
            seen = track.run.status is not None or not first
            delay = self._pacing.next_poll(track, self._runs.active) if seen else 0.0
            self._runs.spawn(self._follow(track, delay))

    async def _expire(self, deadline: float) -> None:
        while (left := deadline - self._clock()) > 0:
            await self._sleep(left)
        self._runs.stop("timeout")

    # ---- polling -----------------------------------------------------------------

    async def _follow(self, track: Track, delay: float | None) -> None:
        mode = self._mode
        while delay is not None:
            if delay > 0:
                await self._sleep(delay)
            if mode != self._mode or track.run.done:
                return  # sweeps took over (and may have ended the run)
            delay = await self._poll(track)

    async def _poll(self, track: Track) -> float | None:
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
            self._runs.fatal_error(track, exc)
            return None
        except NotFoundError as exc:
            if not self._runs.tolerate_not_found(track, exc):
                return None
            return self._pacing.not_found_retry(self._runs.active)
        except RetabError as exc:
            left = self._runs.failed(track, exc)
            # The last attempt lands on the give-up mark, so giving up is on time.
            return None if left is None else min(self._pacing.next_poll(track, self._runs.active), left)
        return self._on_success(track, result.data, status)

    def _on_success(self, track: Track, data: dict[str, Any], status: str) -> float | None:
        self._runs.succeeded(track)
        if track.final:
            self._runs.finish(track, data, status)
            return None
        self._runs.observe(track, data, status)
        if status in TERMINAL:
            track.final = True
            return 0.0  # fetch the full object now
        return self._pacing.next_poll(track, self._runs.active)


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
