"""Doing one thing to many items: bounded concurrency, results in input order, partial reports.

`ordered` is the engine (get, create, cancel, delete and the cancels sent on an
interrupt all use it); `Tally` collects what came back; `bulk` is the mutating form
(cancel, delete) that says exactly which ids were handled when it stops early.
Output goes through a `Reporter` (the renderer), never to a stream directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from retab_cli import errors
from retab_cli.errors import RetabError

FATAL = (errors.AuthError,)
DEFAULT_LIMIT = 16
HINT_IDS = 20  # ids named in a "not done" line


class Reporter(Protocol):
    def error(self, error: RetabError) -> None: ...

    def warn(self, text: str) -> None: ...


@dataclass
class Outcome:
    item: Any
    value: Any = None
    error: RetabError | None = None


async def ordered(
    items: Sequence[Any],
    worker: Callable[[Any], Awaitable[Any]],
    emit: Callable[[Outcome], None],
    *,
    limit: int = DEFAULT_LIMIT,
) -> None:
    """Run `worker` over items, at most `limit` at once; `emit` results in input order as
    soon as each prefix is done.

    An auth error stops the rest (they are not attempted) and is raised once, after every
    finished outcome has been emitted, so a caller can say exactly what was done.
    """
    results: dict[int, Outcome] = {}
    next_emit = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(items)):
        queue.put_nowait(index)
    stop: list[RetabError] = []

    def flush() -> None:
        nonlocal next_emit
        while next_emit in results:
            emit(results.pop(next_emit))
            next_emit += 1

    async def one() -> None:
        while not stop and not queue.empty():
            index = queue.get_nowait()
            try:
                results[index] = Outcome(items[index], value=await worker(items[index]))
            except FATAL as exc:
                exc.partition_id = None  # about the key, not about this id
                stop.append(exc)
                return
            except RetabError as exc:
                results[index] = Outcome(items[index], error=exc)
            flush()

    workers = [asyncio.create_task(one()) for _ in range(min(limit, len(items)) or 1)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if stop:
        for index in sorted(results):  # finished after the failed one: still reported
            emit(results.pop(index))
        raise stop[0]


def one_id(ids: Sequence[str] | None) -> bool:
    """One id given on the command line (not `-`): the output is one object, not an array."""
    return bool(ids) and len(ids or ()) == 1 and (ids or [""])[0] != "-"


def _ignore_error(error: RetabError) -> None:
    return None


@dataclass
class Tally:
    """What a bulk command got back, in input order, and the exit codes so far."""

    report: Callable[[RetabError], None] = _ignore_error
    values: list[Any] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    stopped: bool = False  # an auth error ended it before every item was tried

    @property
    def code(self) -> int:
        return errors.worst(self.codes)

    def failed(self, error: RetabError) -> None:
        self.report(error)
        self.codes.append(error.exit_code)


async def bulk(out: Reporter, verb: str, wanted: Sequence[str],
               worker: Callable[[str], Awaitable[Any]], show: Callable[[Any], None],
               done: list[str]) -> Tally:
    """Cancel or delete each id: results shown in input order as they come, errors per id,
    and on an auth error, the list of what was already done (`done` is kept up to date for
    an interrupt handler)."""
    tally = Tally(out.error)

    def emit(outcome: Outcome) -> None:
        if outcome.error is not None:
            tally.failed(outcome.error)
            return
        done.append(outcome.item)
        tally.values.append(outcome.value)
        show(outcome.value)

    try:
        await ordered(wanted, worker, emit)
    except RetabError as exc:
        tally.failed(exc)
        report_partial(out, verb, done, wanted)
        tally.stopped = True
    return tally


def partial_on_broken_pipe(out: Reporter, verb: str, done: Sequence[str],
                           wanted: Sequence[str]) -> Callable[[], int]:
    """For a mutating bulk command: a closed stdout stops it, says what was done, exits 1."""

    def on_broken_pipe() -> int:
        report_partial(out, verb, done, wanted, reason="stdout was closed")
        return errors.ERROR

    return on_broken_pipe


def report_partial(out: Reporter, verb: str, done: Sequence[str], wanted: Sequence[str], *,
                   interrupted: bool = False, reason: str | None = None) -> None:
    """Say exactly which ids a stopped bulk operation already handled."""
    if len(done) == len(wanted):
        if reason:
            out.warn(f"{verb} all {len(wanted)}; {reason}")
        return
    why = "interrupted" if interrupted else (reason or "stopped")
    out.warn(f"{why}: {verb} {len(done)} of {len(wanted)}")
    for partition_id in done:
        out.warn(f"  {verb}: {partition_id}")
    handled = set(done)
    left = [i for i in wanted if i not in handled]
    if left:
        out.warn(f"  not {verb} ({len(left)}): " + " ".join(left[:HINT_IDS])
                 + (" …" if len(left) > HINT_IDS else ""))


class ByteBudget:
    """Bounds the bytes of documents held in memory at once (a big file waits its turn)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond: asyncio.Condition = asyncio.Condition()

    def hold(self, size: int) -> _Hold:
        return _Hold(self, min(size, self.limit))


class _Hold:
    def __init__(self, budget: ByteBudget, size: int) -> None:
        self.budget = budget
        self.size = size

    async def __aenter__(self) -> None:
        async with self.budget._cond:
            await self.budget._cond.wait_for(
                lambda: self.budget.used + self.size <= self.budget.limit)
            self.budget.used += self.size

    async def __aexit__(self, *exc: object) -> None:
        async with self.budget._cond:
            self.budget.used -= self.size
            self.budget._cond.notify_all()
