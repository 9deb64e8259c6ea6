"""Doing one thing to many items: bounded concurrency, results in input order, partial reports.

`ordered` is the engine (get, create, cancel, delete and the cancels sent on an
interrupt all use it); its `Ledger` knows where every item stands (not sent, in flight,
answered), so a run stopped early by an interrupt, a closed stdout or an auth error can
say exactly what was done, what was never sent and what was in flight with its outcome
unknown. `Tally` collects what came back; `bulk` is the mutating form (cancel, delete).
Output goes through a `Reporter` (the renderer), never to a stream directly; lists too
long for the terminal go to a private file (`save_private`).
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
HINT_IDS = 20  # items named in one line of a report; the full lists go to a file

# Where an item of an `ordered` run stands.
NOT_SENT, IN_FLIGHT, DONE, FAILED = 0, 1, 2, 3


class Reporter(Protocol):
    def error(self, error: RetabError) -> None: ...

    def warn(self, text: str) -> None: ...


@dataclass
class Outcome:
    item: Any
    value: Any = None
    error: RetabError | None = None


class Ledger:
    """Where each item of one `ordered` run stands, and the answers not yet emitted.

    An item is NOT_SENT until a worker takes it, IN_FLIGHT while the worker awaits
    (stopped there, its outcome is unknown: the request may have reached the server),
    then DONE or FAILED once answered. Answers wait here only until every earlier item
    is answered too (input order), so memory stays bounded by the concurrency.
    """

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = list(items)
        self.state = bytearray(len(self.items))
        self._waiting: dict[int, Outcome] = {}
        self._shown = 0

    def where(self, state: int) -> list[Any]:
        """The items in `state`, in input order."""
        return [item for item, s in zip(self.items, self.state, strict=True) if s == state]

    def extend(self, items: Sequence[Any]) -> None:
        """Add items before the run starts (ids known only once listed)."""
        self.items.extend(items)
        self.state.extend(bytes(len(items)))

    def indexes(self, state: int) -> list[int]:
        return [i for i, s in enumerate(self.state) if s == state]

    def answered(self, index: int, outcome: Outcome) -> None:
        self.state[index] = FAILED if outcome.error is not None else DONE
        self._waiting[index] = outcome

    def flush(self, emit: Callable[[Outcome], None]) -> None:
        """Emit the answers whose earlier items are all answered."""
        while self._shown in self._waiting:
            emit(self._waiting.pop(self._shown))
            self._shown += 1

    def flush_all(self, emit: Callable[[Outcome], None]) -> None:
        """Emit every answer still waiting (the run stopped: gaps will never fill)."""
        for index in sorted(self._waiting):
            emit(self._waiting.pop(index))


async def ordered(
    items: Sequence[Any],
    worker: Callable[[Any], Awaitable[Any]],
    emit: Callable[[Outcome], None],
    *,
    limit: int = DEFAULT_LIMIT,
    ledger: Ledger | None = None,
) -> None:
    """Run `worker` over items, at most `limit` at once; `emit` results in input order as
    soon as each prefix is done. Pass a `ledger` (made from the same items) to know, if
    the run stops early, where each item stood.

    An auth error stops the rest (they are not attempted) and is raised once, after every
    finished outcome has been emitted, so a caller can say exactly what was done. When
    the run is cancelled (an interrupt), every answer already received is emitted before
    the cancellation goes on: nothing answered is lost.
    """
    book = ledger if ledger is not None else Ledger(items)
    pending = iter(range(len(book.items)))
    stop: list[RetabError] = []

    async def one() -> None:
        while not stop and (index := next(pending, None)) is not None:
            book.state[index] = IN_FLIGHT
            try:
                outcome = Outcome(book.items[index], value=await worker(book.items[index]))
            except FATAL as exc:
                exc.partition_id = None  # about the key, not about this id
                book.state[index] = FAILED  # answered; reported once, as the stop
                stop.append(exc)
                return
            except RetabError as exc:
                outcome = Outcome(book.items[index], error=exc)
            book.answered(index, outcome)
            book.flush(emit)

    workers = [asyncio.create_task(one()) for _ in range(min(limit, len(book.items)) or 1)]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        book.flush_all(emit)
        raise
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if stop:
        book.flush_all(emit)  # finished after the failed one: still reported
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


async def bulk(out: Reporter, verb: str, ledger: Ledger,
               worker: Callable[[str], Awaitable[Any]], show: Callable[[Any], None],
               tally: Tally) -> None:
    """Cancel or delete each id of `ledger`: results shown in input order as they come
    and kept in `tally`, errors per id, and on an auth error, the report of what was
    done and what was not (the same `ledger` and `tally` serve an interrupt or
    closed-stdout handler)."""

    def emit(outcome: Outcome) -> None:
        if outcome.error is not None:
            tally.failed(outcome.error)
            return
        tally.values.append(outcome.value)
        show(outcome.value)

    try:
        await ordered(ledger.items, worker, emit, ledger=ledger)
    except RetabError as exc:
        tally.failed(exc)
        report_stopped(out, verb, ledger, "stopped")
        tally.stopped = True


def partial_on_broken_pipe(out: Reporter, verb: str, ledger: Ledger) -> Callable[[], int]:
    """For a mutating bulk command: a closed stdout stops it, says what was done, exits 1."""

    def on_broken_pipe() -> int:
        report_stopped(out, verb, ledger, "stdout was closed")
        return errors.ERROR

    return on_broken_pipe


def report_stopped(out: Reporter, verb: str, ledger: Ledger, why: str) -> None:
    """Say exactly where a stopped cancel or delete left each id: `verb` (done), `not
    verb` (the server answered with an error), outcome unknown (in flight when it
    stopped), not sent. Lists longer than HINT_IDS are cut here and written in full to
    a private file, whose uncommented lines are the ids still to do."""
    done, total = ledger.where(DONE), len(ledger.items)
    if len(done) == total:
        out.warn(f"{verb} all {total}; {why}")
        return
    out.warn(f"{why}: {verb} {len(done)} of {total}")
    sets = _sets(verb, ledger)
    for label, ids in sets:
        if ids:
            out.warn(f"  {label} ({len(ids)}): " + " ".join(ids[:HINT_IDS])
                     + (" …" if len(ids) > HINT_IDS else ""))
    if any(len(ids) > HINT_IDS for _, ids in sets):
        command = "cancel" if verb == "cancelled" else "delete"
        saved = save_private(_ids_file(f"{why}: {verb} {len(done)} of {total}", command, sets),
                             prefix=f"{command}-stopped-")
        out.warn(f"  the full lists: {saved}; to finish, retab partitions {command} - --yes < "
                 f"{saved}" if saved else "  (the full lists could not be saved)")


def _sets(verb: str, ledger: Ledger) -> list[tuple[str, list[str]]]:
    return [(verb, ledger.where(DONE)), (f"not {verb}", ledger.where(FAILED)),
            ("outcome unknown, in flight", ledger.where(IN_FLIGHT)),
            ("not sent", ledger.where(NOT_SENT))]


def _ids_file(title: str, command: str, sets: list[tuple[str, list[str]]]) -> str:
    """The sets as one file for `retab partitions COMMAND - < FILE`: the ids still to do
    (outcome unknown, not sent) as plain lines, the others as # comments, which `-` skips."""
    lines = [f"# retab partitions {command}, {title}",
             "# Plain lines: the ids still to do (outcome unknown, then not sent)."]
    for label, ids in sets:
        todo = label in ("outcome unknown, in flight", "not sent")
        lines.append(f"# {label} ({len(ids)})")
        lines.extend(ids if todo else (f"# {i}" for i in ids))
    return "\n".join(lines) + "\n"


def save_private(text: str, *, prefix: str) -> str | None:
    """Write `text` to a new private file (0600) in the cache directory, or the system
    temp directory when that cannot be made; its path, or None if nothing could be
    written (a report must never fail because of it)."""
    import os
    import tempfile

    from retab_cli.recent import cache_dir

    folder = cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".txt", dir=folder)
    except OSError:
        try:
            fd, name = tempfile.mkstemp(prefix=f"retab-{prefix}", suffix=".txt")
        except OSError:
            return None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        return None
    return name


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
