"""The batch engine (docs/design.md §10): read, claim, create, watch, split, all at once.

Stages, each a task, joined by small queues (so memory holds a bounded number of
documents, whatever the folder's size):

    walk + hash ──► claim (Idempotency-Keys committed, a group per fsync) ──► create (4 at once)
        │                                                                   │
        └── already done, not split ──┐          one Watcher over every run ◄┘
                                      ▼                    │ ended (full object)
                                    split  ◄───────────────┘

Every request goes through the one client and its budget. The journal is written on
the event loop's thread only, one short transaction per change; a document's key is
committed before its create is sent, so a process killed at any instant and run again
sends the same key and gets the same run. Runs created by an earlier process and not
ended are watched from the start. The limits (`Gate`) stop new creates only: runs
created are still followed to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from retab_cli import errors
from retab_cli.batch.estimate import credits
from retab_cli.batch.hashing import Digest, LocalError, hash_document
from retab_cli.batch.journal import HASHED, LOCAL_ERROR, RETRYABLE, SENDING, Journal, Row
from retab_cli.batch.limits import Gate, Limits
from retab_cli.batch.params import Params
from retab_cli.batch.progress import Progress
from retab_cli.batch.sending import create_options, outgoing, send_document
from retab_cli.batch.shard import WHOLE, Shard
from retab_cli.batch.sources import Selection, Source, WalkStats, walk
from retab_cli.batch.splitting import is_split, split_document, target_dir
from retab_cli.bulk import ByteBudget
from retab_cli.creating import BYTES_IN_FLIGHT, UPLOADS_AT_ONCE
from retab_cli.errors import AuthError, ConflictError, RejectedError, RetabError, UsageError
from retab_cli.statuses import TERMINAL
from retab_cli.watch import Event, Watcher, status_of

if TYPE_CHECKING:
    from retab_cli.client import Client

SENDERS = UPLOADS_AT_ONCE  # creates in flight, as `create` sends them
CLAIM_GROUP = 32           # keys committed together when that many documents are ready
READ_AHEAD = 32            # documents read and waiting for a claim
SPLIT_QUEUE = 16           # completed runs waiting for their chunk files


class Listener(Protocol):
    """Where the engine says what happens (the command's output layer)."""

    events: bool  # wants one call per document state change

    def document(self, event: str, row: Row) -> None: ...

    def warn(self, text: str) -> None: ...

    def failed(self, error: RetabError) -> None: ...


@dataclass(frozen=True)
class BatchSpec:
    sources: tuple[str, ...]
    params: Params
    choose: Selection = field(default_factory=Selection)
    shard: Shard = WHOLE
    split_to: Path | None = None
    retry_failed: bool = False
    limits: Limits = field(default_factory=Limits)


@dataclass
class SplitJob:
    run_id: int
    partition_id: str
    relpaths: list[str]
    raw: dict[str, Any] | None = None  # the run's full object, fetched when missing


@dataclass
class Outcome:
    """How this invocation ended, for the summary and the exit code."""

    statuses: Counter[str] = field(default_factory=Counter)  # documents, by final status
    codes: list[int] = field(default_factory=list)           # exit codes of errors met
    stopped: str | None = None                               # why creates stopped early
    found: int = 0                                           # documents before sharding
    taken: int = 0                                           # documents of this shard
    requests: int = 0                                        # sent to the API (retries too)
    rate_limited: int = 0                                    # of them answered 429

    @property
    def exit_code(self) -> int:
        """docs/design.md §10: 0 every document completed (and split), 3 some failed, 5 some
        cancelled, 7 stopped early, 2 nothing could be read; the §3 order between them."""
        if self.found == 0 or (not self.stopped and self.taken
                               and self.statuses[LOCAL_ERROR] == self.taken):
            return errors.USAGE
        codes = list(self.codes)
        if self.statuses["failed"] or self.statuses[LOCAL_ERROR]:
            codes.append(errors.RUN_FAILED)
        if self.statuses["cancelled"]:
            codes.append(errors.RUN_CANCELLED)
        if self.stopped or self.statuses["unsent"]:
            codes.append(errors.INCOMPLETE)
        return errors.worst(codes)


class Batch:
    """One invocation of `partitions batch` over an open journal and client."""

    def __init__(self, spec: BatchSpec, journal: Journal, client: Client, listener: Listener,
                 *, stdin: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 watcher: Watcher | None = None) -> None:
        self.spec = spec
        self.journal = journal
        self.client = client
        self.listener = listener
        self.stdin = stdin
        self.options = create_options(spec.params)
        self.progress = Progress(started=clock())
        self.gate = Gate(spec.limits, clock)
        self.outcome = Outcome()
        self.walk_stats = WalkStats()
        self.watcher = watcher or Watcher(client, [], open_ended=True, sweep_above=0)
        self._waiting: dict[int, list[str]] = {}  # run id -> documents of this walk on it
        self._runs: dict[str, int] = {}           # partition id -> run id, while watched
        self._recorded: dict[str, str] = {}       # partition id -> the status journaled
        self._reads: asyncio.Queue[Row | None] = asyncio.Queue(READ_AHEAD)
        self._claimed: asyncio.Queue[tuple[Row, str] | None] = asyncio.Queue(SENDERS)
        self._splits: asyncio.Queue[SplitJob | None] = asyncio.Queue(SPLIT_QUEUE)
        self._bytes = ByteBudget(BYTES_IN_FLIGHT)

    async def run(self) -> Outcome:
        for run_id, partition_id in list(self.journal.in_flight()):
            self._waiting.setdefault(run_id, [])
            self._follow(run_id, partition_id, None)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch())
                group.create_task(self._split_loop())
                senders = [group.create_task(self._send_loop()) for _ in range(SENDERS)]
                group.create_task(self._claim_loop())
                await self._produce()
                await self._reads.put(None)
                await asyncio.gather(*senders)
                self.watcher.no_more_runs()
        except BaseExceptionGroup as group:
            raise _first(group) from None
        self.outcome.stopped = self.gate.stopped
        self.outcome.requests = self.client.budget.sent
        self.outcome.rate_limited = self.client.budget.rate_limited
        # Every document met has ended by now; one still waiting would be a bug, and it
        # must not pass for a success.
        self.outcome.statuses["unsent"] += sum(len(v) for v in self._waiting.values())
        self.outcome.statuses += Counter()  # drop the zero counts
        return self.outcome

    # ---- reading -------------------------------------------------------------------

    async def _produce(self) -> None:
        items = walk(self.spec.sources, self.spec.choose, stdin=self.stdin,
                     stats=self.walk_stats, warn=self.listener.warn)
        for item in items:
            self.outcome.found += 1
            if not self.spec.shard.takes(item.relpath):
                continue
            if self.gate.stopped is not None:
                break  # the rest is found by the next run
            self.outcome.taken += 1
            self.progress.discovered += 1
            row = await self._read(item)
            if row is not None:
                await self._dispatch(row)
        self.progress.walked = True

    async def _read(self, item: Source) -> Row | None:
        """The document's journal row, hashed again only when it may have changed."""
        if item.error is not None:
            self._refused(item.relpath, str(item.path), item.error)
            return None
        row = self.journal.row(item.relpath)
        digest = _unchanged(row, item.path)
        if digest is None:
            found = await asyncio.to_thread(hash_document, item.path, item.relpath)
            if isinstance(found, LocalError):
                self._refused(item.relpath, str(item.path), found)
                return None
            digest = found
        elif not self._retrying(row):
            self.progress.hashed += 1
            return row
        row = self.journal.record_digest(item.relpath, str(item.path), digest,
                                         retry_failed=self.spec.retry_failed)
        self.progress.hashed += 1
        self._tell("hashed", row)
        return row

    def _retrying(self, row: Row | None) -> bool:
        return self.spec.retry_failed and row is not None and row.run_status in RETRYABLE

    def _refused(self, relpath: str, source: str, error: LocalError) -> None:
        row = self.journal.record_local_error(relpath, source, error)
        self.listener.warn(f"skipped: {error.message}")
        self._tell("local_error", row)
        self._count(LOCAL_ERROR)
        self.gate.failure()

    async def _dispatch(self, row: Row) -> None:
        run_id = row.run_id
        assert run_id is not None
        if run_id in self._waiting:  # its run is on its way: a twin, or created earlier
            self._waiting[run_id].append(row.relpath)
            return
        status = row.status
        if status in (HASHED, SENDING):
            self._waiting[run_id] = [row.relpath]
            await self._reads.put(row)
        elif status == "completed":
            await self._completed_earlier(row)
        elif status in TERMINAL:
            self._count(status, earlier=True)
        else:  # created, but not in flight when this run began: an unknown status
            self._waiting[run_id] = [row.relpath]
            self._follow(run_id, str(row.partition_id), None)

    async def _completed_earlier(self, row: Row) -> None:
        if self.spec.split_to is None or is_split(row.split_dir, self._target(row.relpath)):
            self._count("completed", earlier=True)
            return
        assert row.run_id is not None and row.partition_id is not None
        await self._splits.put(SplitJob(row.run_id, row.partition_id, [row.relpath]))

    # ---- claiming and creating -------------------------------------------------------

    async def _claim_loop(self) -> None:
        """Commit the keys of the documents ready, a group per fsync, then hand them on.

        Limits are checked later, right before each create: a claim sent nowhere only
        means its key is resent by the next run, which is what a claim is for."""
        done = False
        while not done:
            group, done = await self._ready_group()
            if self.gate.stopped is not None:
                self._drop(group)
                continue
            keys = self.journal.claim_sends(group) if group else []
            for row, key in zip(group, keys, strict=True):
                await self._claimed.put((row, key))
        for _ in range(SENDERS):
            await self._claimed.put(None)

    async def _ready_group(self) -> tuple[list[Row], bool]:
        first = await self._reads.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < CLAIM_GROUP and not self._reads.empty():
            row = self._reads.get_nowait()
            if row is None:
                return group, True
            group.append(row)
        return group, False

    def _admit(self, row: Row) -> bool:
        """The limits let this create go (counted in), or the document is left unsent."""
        params = self.spec.params
        if self.gate.admit(credits(row.pages or 1, params.n_consensus, params.model)):
            return True
        self._drop([row])
        return False

    def _drop(self, rows: Iterable[Row]) -> None:
        for row in rows:
            unsent = self._waiting.pop(row.run_id, []) if row.run_id is not None else []
            self.progress.unsent += len(unsent)
            self.outcome.statuses["unsent"] += len(unsent)

    async def _send_loop(self) -> None:
        while (item := await self._claimed.get()) is not None:
            await self._send(*item)

    async def _send(self, row: Row, key: str) -> None:
        assert row.run_id is not None
        if not self._admit(row):
            return
        self.progress.sending += 1
        try:
            out = outgoing(self.journal, row)  # one look-up of how the row is sent
            async with self._bytes.hold(out.held):
                data = await send_document(self.client, self.options, self.journal, row, key, out)
            partition_id, status = str(data["id"]), status_of(data)
        except AuthError:
            raise
        except UsageError as exc:  # the file changed or went away since it was read
            self._unreadable(row, exc)
            return
        except RetabError as exc:
            exc.file = row.relpath
            if isinstance(exc, RejectedError | ConflictError):
                self._rejected(row.run_id, exc)
            else:
                self._not_sent(row, exc)
            return
        finally:
            self.progress.sending -= 1
        self.journal.record_created(row.run_id, partition_id, status)
        self._tell_run("created", row.run_id)
        self._follow(row.run_id, partition_id, data)

    def _rejected(self, run_id: int, exc: RetabError) -> None:
        """The service refused the create: the run failed, with the service's reason."""
        self.journal.record_status(run_id, "failed", error_code=exc.type,
                                   error_message=exc.message)
        self.listener.failed(exc)
        self._settle(run_id, "failed")

    def _unreadable(self, row: Row, exc: UsageError) -> None:
        assert row.run_id is not None
        waiting = self._waiting.get(row.run_id, [])
        if row.relpath in waiting:
            waiting.remove(row.relpath)
        self._drop([row])  # its twins are sent by the next run
        self._refused(row.relpath, row.source, LocalError("changed", exc.message))

    def _not_sent(self, row: Row, exc: RetabError) -> None:
        """No answer after the client's retries: the claim stays, the next run resends it."""
        self.listener.failed(exc)
        self.outcome.codes.append(exc.exit_code)
        self._drop([row])
        self.gate.failure()

    # ---- watching --------------------------------------------------------------------

    def _follow(self, run_id: int, partition_id: str, initial: dict[str, Any] | None) -> None:
        self._runs[partition_id] = run_id
        if initial is not None:  # its status is journaled with it: the watch's first
            self._recorded[partition_id] = status_of(initial)  # sighting writes nothing
        self.progress.running += 1
        self.watcher.add(partition_id, initial)

    async def _watch(self) -> None:
        async with contextlib.aclosing(self.watcher.run()) as events:
            async for event in events:
                await self._on_event(event)
        if self.watcher.fatal is not None:
            raise self.watcher.fatal
        await self._splits.put(None)

    async def _on_event(self, event: Event) -> None:
        run_id = self._runs.get(event.run.id)
        if run_id is None or event.kind == "retry":
            return
        if event.kind == "status":
            if self._recorded.get(event.run.id) != event.new:
                self.journal.record_status(run_id, str(event.new))
                self._recorded[event.run.id] = str(event.new)
                self._tell_run("status", run_id)
            return
        del self._runs[event.run.id]
        self._recorded.pop(event.run.id, None)
        self.watcher.forget(event.run.id)
        self.progress.running -= 1
        if event.kind == "ended":
            await self._ended(run_id, event.run.id, event.data or {})
        elif event.kind == "gone":
            self.journal.record_status(run_id, "failed", error_code="not_found",
                                       error_message=f"run {event.run.id} no longer exists")
            self._settle(run_id, "failed")
        elif event.kind != "fatal":  # gave up after 2 minutes of failures: resumed later
            self.listener.warn(f"warning: {event.run.id}: gave up watching: "
                               f"{event.run.last_error}")
            self.outcome.codes.append(errors.ERROR)
            self._waiting.pop(run_id, None)

    async def _ended(self, run_id: int, partition_id: str, raw: dict[str, Any]) -> None:
        status = str(raw.get("status") or "")
        error = raw.get("error")
        error = error if isinstance(error, dict) else {}
        used = _credits(raw)
        output = raw.get("output")
        self.journal.record_status(
            run_id, status, credits=used,
            chunks=len(output) if status == "completed" and isinstance(output, list) else None,
            error_code=_text(error.get("code")), error_message=_text(error.get("message")))
        self.progress.credits += used or 0.0
        self._tell_run("ended", run_id)
        if status == "completed" and self.spec.split_to is not None:
            relpaths = self._waiting.pop(run_id, [])
            self.gate.success()
            if relpaths:
                await self._splits.put(SplitJob(run_id, partition_id, relpaths, raw))
            return
        self._settle(run_id, status)

    def _settle(self, run_id: int, status: str) -> None:
        """The documents of this walk waiting for the run end with it."""
        for _ in self._waiting.pop(run_id, []):
            self._count(status)
        if status == "completed":
            self.gate.success()
        else:
            self.gate.failure()

    # ---- splitting -------------------------------------------------------------------

    async def _split_loop(self) -> None:
        while (job := await self._splits.get()) is not None:
            raw = job.raw or await self._full(job)
            if raw is None:
                continue
            for relpath in job.relpaths:
                await self._split(job.run_id, raw, relpath)

    async def _full(self, job: SplitJob) -> dict[str, Any] | None:
        """A run completed in an earlier invocation: its chunks, fetched once."""
        try:
            data: dict[str, Any] = (await self.client.get(job.partition_id)).data
        except AuthError:
            raise
        except RetabError as exc:
            self.listener.failed(exc)
            self.outcome.codes.append(exc.exit_code)
            return None
        return data

    async def _split(self, run_id: int, raw: dict[str, Any], relpath: str) -> None:
        row = self.journal.row(relpath)
        if row is None or row.run_id != run_id or row.sha256 is None:
            return  # changed meanwhile (a later document at the same path)
        target = self._target(relpath)
        result = await asyncio.to_thread(split_document, raw, Path(row.source), row.sha256,
                                         target, relpath)
        if isinstance(result, LocalError):
            self._refused(relpath, row.source, result)
            return
        self.journal.record_split(relpath, str(target), result)
        self._tell("split", self.journal.row(relpath))
        self._count("completed")

    def _target(self, relpath: str) -> Path:
        assert self.spec.split_to is not None
        return target_dir(self.spec.split_to, relpath)

    # ---- telling -----------------------------------------------------------------------

    def _count(self, status: str, *, earlier: bool = False) -> None:
        self.outcome.statuses[status] += 1
        if status == LOCAL_ERROR:
            self.progress.local_errors += 1
        elif status in ("completed", "failed", "cancelled"):
            setattr(self.progress, status, getattr(self.progress, status) + 1)
        if earlier:
            self.progress.earlier += 1

    def _tell(self, event: str, row: Row | None) -> None:
        if self.listener.events and row is not None:
            self.listener.document(event, row)

    def _tell_run(self, event: str, run_id: int) -> None:
        if self.listener.events:
            for row in self.journal.documents_of(run_id):
                self.listener.document(event, row)


def _unchanged(row: Row | None, path: Path) -> Digest | None:
    """The journaled digest when size and mtime are the same as when it was hashed."""
    if row is None or row.sha256 is None or row.state != HASHED:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not row.unchanged(info.st_size, info.st_mtime_ns):
        return None
    assert row.size is not None and row.mtime_ns is not None
    return Digest(row.sha256, row.size, row.mtime_ns, row.mime_type or "", row.pages or 1)


def _credits(raw: dict[str, Any]) -> float | None:
    usage = raw.get("usage")
    value = usage.get("credits") if isinstance(usage, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a task group died of (its first), unwrapped from nested groups."""
    errors_: Iterable[BaseException] = group.exceptions
    for exc in errors_:
        return _first(exc) if isinstance(exc, BaseExceptionGroup) else exc
    return group
