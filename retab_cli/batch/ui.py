"""`partitions batch` on screen: the engine's events turned into output, and the ending.

- stderr: `journal: PATH` at the start; a live display on a terminal, else one plain
  line every 30 s (and at the end); a line per document refused or failed; the totals,
  why the batch stopped and the command that resumes it. In GitHub Actions, the step
  summary and `::error::` annotations of docs/design.md §4.
- stdout: `-o jsonl` one event per document state change (`{"event", ...the report
  row}`) and a last `summary` event; `-o json` the summary object; `-q` the runs' ids.
- Ctrl-C / SIGTERM: creates stop at once, the journal is left consistent (each change
  is its own transaction), runs are not cancelled unless --cancel-on-interrupt, and the
  resume command is printed; exit 130 / 143.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retab_cli import errors
from retab_cli.batch.journal import LOCAL_ERROR, Journal, Row
from retab_cli.batch.pipeline import Batch, BatchSpec, Outcome
from retab_cli.batch.report import Totals, markdown_lines, merged_rows, report_row, tally
from retab_cli.errors import RetabError

if TYPE_CHECKING:
    from retab_cli.session import Env

PLAIN_EVERY = 30.0  # seconds between plain progress lines off a terminal
ANNOTATIONS = 20    # ::error:: lines at most (GitHub shows 10 per step anyway)
SUMMARY_ROWS = 50   # documents that did not complete, listed in the step summary


@dataclass(frozen=True)
class BatchRequest:
    spec: BatchSpec
    journal: Path
    resume: str                 # the command that runs this batch again
    cancel_on_interrupt: bool = False
    progress: bool = True       # False with --no-progress (or -q)


class _Output:
    """The engine's Listener: events on stdout under -o jsonl, the rest on stderr."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.events = env.renderer.mode == "jsonl"

    def document(self, event: str, row: Row) -> None:
        self.env.renderer.jsonl({"event": event, **report_row(row)})

    def warn(self, text: str) -> None:
        self.env.renderer.warn(text)

    def failed(self, error: RetabError) -> None:
        subject = error.file or error.partition_id
        message = error.message if not subject or subject in error.message \
            else f"{subject}: {error.message}"
        rid = f" (request_id {error.request_id})" if error.request_id else ""
        self.env.renderer.warn(f"error: {message}{rid}")


@dataclass
class BatchSession:
    """What the interrupt handler needs: the batch while it runs."""

    batch: Batch | None = None


async def run_batch(env: Env, request: BatchRequest, session: BatchSession) -> int:
    renderer = env.renderer
    renderer.info(f"journal: {request.journal}")
    journal = Journal.open(request.journal, request.spec.params,
                           sources=list(request.spec.sources), shard=request.spec.shard)
    try:
        async with env.client() as client:
            batch = Batch(request.spec, journal, client, _Output(env), stdin=_stdin(request))
            session.batch = batch
            with _progress(env, batch, request.progress):
                outcome = await batch.run()
        return _finish(env, request, journal, outcome)
    finally:
        journal.close()


def _stdin(request: BatchRequest) -> Any:
    return sys.stdin if "-" in request.spec.sources else None


@contextlib.contextmanager
def _progress(env: Env, batch: Batch, wanted: bool) -> Any:
    """The live display on a terminal, else a plain line every PLAIN_EVERY seconds."""
    renderer = env.renderer
    if not wanted or renderer.quiet:
        yield
        return
    if renderer.stderr_tty:
        from retab_cli.render.batch_live import BatchLive

        with BatchLive(renderer, batch.progress):
            yield
        return
    ticker = asyncio.get_running_loop().create_task(plain_lines(env, batch))
    try:
        yield
    finally:
        ticker.cancel()
    renderer.info(batch.progress.line(time.monotonic()))


async def plain_lines(env: Env, batch: Batch, every: float = PLAIN_EVERY,
                      sleep: Any = asyncio.sleep) -> None:
    """One line every `every` seconds, so a CI watchdog sees the job is alive."""
    while True:
        await sleep(every)
        env.renderer.info(batch.progress.line(time.monotonic()))


# ---- the end -----------------------------------------------------------------------------


def _finish(env: Env, request: BatchRequest, journal: Journal, outcome: Outcome) -> int:
    renderer = env.renderer
    totals = Totals()
    problems: list[dict[str, Any]] = []  # the first documents that did not complete, for the step summary
    for record in tally((report_row(row) for row in merged_rows([journal])), totals):
        if record["status"] != "completed" and len(problems) < SUMMARY_ROWS:
            problems.append(record)
    code = outcome.exit_code
    _say_how_it_ended(env, request, outcome, totals)
    summary = {"journal": str(request.journal), "exit_code": code, "stopped": outcome.stopped,
               "documents": dict(sorted(outcome.statuses.items())), "totals": totals.as_dict(),
               "requests": outcome.requests, "rate_limited": outcome.rate_limited}
    if renderer.mode == "json":
        renderer.json(summary)
    elif renderer.mode == "jsonl":
        renderer.jsonl({"event": "summary", **summary})
    elif renderer.mode == "ids":
        for partition_id in _run_ids(journal):
            renderer.line(partition_id)
    from retab_cli.render import watching

    if watching.in_github_actions():
        _github(env, problems, totals)
    return code


def _say_how_it_ended(env: Env, request: BatchRequest, outcome: Outcome, totals: Totals) -> None:
    renderer = env.renderer
    if outcome.found == 0:
        renderer.warn("error: no documents found in " + " ".join(request.spec.sources)
                      + " (check the paths and --include/--exclude)")
        return
    if outcome.taken == 0:
        renderer.info(f"shard {request.spec.shard.label} has no documents of the "
                      f"{outcome.found} found; nothing to do")
    renderer.info(totals.summary())
    unsent = outcome.statuses["unsent"]
    if outcome.stopped:
        renderer.warn(f"stopped early: {outcome.stopped}; runs already created were "
                      "followed to their end")
    if outcome.stopped or unsent:
        left = f"{unsent} document(s) not sent" if unsent else "documents left unsent"
        renderer.warn(f"{left}; to resume: {request.resume}")
    renderer.info(f"report: retab partitions report {_quote(str(request.journal))}")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _run_ids(journal: Journal) -> list[str]:
    return list(dict.fromkeys(row.partition_id for row in journal.rows() if row.partition_id))


def _github(env: Env, problems: list[dict[str, Any]], totals: Totals) -> None:
    from retab_cli.render import watching

    for record in problems[:ANNOTATIONS]:
        if record["status"] in ("failed", "cancelled", LOCAL_ERROR):
            raw = {"file": {"filename": record["path"]},
                   "error": {"code": record["error_code"], "message": record["error_message"]}}
            env.renderer.notice(watching.error_annotation(
                record["partition_id"] or record["path"], raw, record["status"]))
    fields = ("path", "status", "partition_id", "error_code", "error_message")
    lines = ["### retab batch", ""]
    if problems:
        lines += [f"Documents that did not complete (the first {SUMMARY_ROWS} at most):", ""]
        lines += markdown_lines(problems, fields, totals)  # the table, then the totals line
    else:
        lines += list(markdown_lines([], fields, totals))[-1:]
    watching.write_step_summary(env.renderer, "\n".join(lines) + "\n\n")


# ---- interrupts ------------------------------------------------------------------------------


async def report_interrupt(env: Env, request: BatchRequest, session: BatchSession,
                           code: int) -> None:
    """After Ctrl-C/SIGTERM: optionally cancel the runs still active, then how to resume."""
    renderer = env.renderer
    batch = session.batch
    active = [run.id for run in batch.watcher.runs if not run.done] if batch else []
    if request.cancel_on_interrupt and active:
        from retab_cli.watch_ui import cancel_active

        await cancel_active(env, active)
    message = "interrupted; the journal is up to date"
    if active and not request.cancel_on_interrupt:
        message += f"; {len(active)} run(s) still running were not cancelled"
    if renderer.explicit_json:
        renderer.error(errors.InterruptError(message, exit_code=code))
    else:
        renderer.warn(message)
    renderer.warn(f"to resume: {request.resume}")


# ---- --dry-run -------------------------------------------------------------------------------


def dry_run(env: Env, request: BatchRequest) -> int:
    """Walk, hash and count pages, read the journal if there is one; print the plan."""
    from retab_cli.batch.estimate import build_plan
    from retab_cli.batch.sources import walk

    spec = request.spec
    found = [0]

    def counted() -> Any:
        for item in walk(spec.sources, spec.choose, stdin=_stdin(request), warn=env.renderer.warn):
            found[0] += 1
            yield item

    journal = Journal.read(request.journal) if request.journal.is_file() else None
    try:
        plan = build_plan(counted(), spec.params, journal, shard=spec.shard,
                          retry_failed=spec.retry_failed)
    finally:
        if journal is not None:
            journal.close()
    if env.renderer.mode in ("json", "jsonl"):
        shown = {"journal": str(request.journal), "shard": spec.shard.label, **plan.as_dict()}
        env.renderer.json(shown) if env.renderer.mode == "json" else env.renderer.jsonl(shown)
    else:
        for line in [f"journal: {request.journal}", *plan.lines()]:
            env.renderer.line(line)
    env.renderer.info("dry run: nothing sent")
    if found[0] == 0:
        env.renderer.warn("error: no documents found in " + " ".join(spec.sources))
        return errors.USAGE
    return errors.OK
