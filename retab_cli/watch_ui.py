"""Watching on screen: the watch engine's events turned into output, and what follows.

`watch_runs` drives a `retab_cli.watch.Watcher` and renders its events (a live table on
a terminal, one line per change otherwise, objects in jsonl), then the final objects,
the summary line and, in GitHub Actions, the step summary and annotations.
`report_interrupt` says after Ctrl-C/SIGTERM where each run stood and how to resume or
cancel (writing the ids to a private file when there are too many for one line), and
for --cancel-on-interrupt sends the cancels first, in the same event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retab_cli import errors
from retab_cli.statuses import TERMINAL

if TYPE_CHECKING:
    from retab_cli.bulk import Tally
    from retab_cli.client import Client
    from retab_cli.session import Env
    from retab_cli.watch import Event, RunState, Watcher

CANCEL_ON_INTERRUPT_BUDGET = 5.0  # GitHub Actions sends SIGTERM ~7.5 s after SIGINT
LIST_IN_HINT = 20  # ids written out in the resume/cancel commands
LIST_STATUSES = 50  # runs listed one per line after an interrupt


@dataclass(frozen=True)
class WatchOptions:
    timeout: float | None = None
    interval: float | None = None
    fail_fast: bool = False
    ci_summary: bool = True
    any_end_ok: bool = False  # cancel --wait: every terminal state is a success
    single: bool = False


@dataclass
class WatchSession:
    """What an interrupt handler needs to know about a watch in progress."""

    watcher: Watcher | None = None
    ids: list[str] = field(default_factory=list)


async def watch_until_terminal(env: Env, client: Client, finals: list[dict[str, Any]],
                               timeout: float | None, *, single: bool = False,
                               any_end_ok: bool = False,
                               session: WatchSession | None = None) -> int:
    """The watch after `create --wait` / `cancel --wait`, seeded with the objects returned.

    Pass a `session` to be able to call `report_interrupt` on Ctrl-C."""
    ids = [str(f["id"]) for f in finals if isinstance(f.get("id"), str)]
    options = WatchOptions(timeout=timeout, single=single, any_end_ok=any_end_ok)
    if session is not None:
        session.ids = ids
    return await watch_runs(env, client, ids, options, session=session,
                            initial={str(f["id"]): f for f in finals if "id" in f})


async def watch_after(env: Env, client: Client, tally: Tally, timeout: float | None, *,
                      single: bool, session: WatchSession, any_end_ok: bool = False) -> int:
    """`create --wait` / `cancel --wait`: watch the runs a bulk step returned; the worse
    of the watch's exit code and the step's own."""
    code = await watch_until_terminal(env, client, tally.values, timeout, single=single,
                                      any_end_ok=any_end_ok, session=session)
    return errors.worst([code, *tally.codes])


async def report_if_watching(env: Env, session: WatchSession, code: int) -> bool:
    """On an interrupt: the watch's report if a watch had begun (and say whether)."""
    if session.watcher is None:
        return False
    await report_interrupt(env, session, cancel=False, code=code)
    return True


async def watch_runs(env: Env, client: Client, ids: list[str], options: WatchOptions, *,
                     initial: dict[str, dict[str, Any]] | None = None,
                     session: WatchSession | None = None) -> int:
    import contextlib

    from retab_cli.watch import Watcher

    watcher = Watcher(client, ids, interval=options.interval, timeout=options.timeout,
                      fail_fast=options.fail_fast, initial=initial)
    if session is not None:
        session.watcher = watcher
    started = time.monotonic()
    display = _Display(env, _open_view(env, watcher))
    try:
        async with contextlib.aclosing(watcher.run()) as events:
            async for event in events:
                display.show(event)
    finally:
        display.close()
    if watcher.fatal is not None:
        raise watcher.fatal
    _finish(env, watcher, options, time.monotonic() - started)
    return watcher.exit_code(any_end_ok=options.any_end_ok)


def _open_view(env: Env, watcher: Watcher) -> Any:
    if not env.renderer.stderr_tty or env.renderer.quiet or not env.renderer.progress:
        return None
    from retab_cli.render.live import LiveView

    return LiveView(env.renderer, watcher.runs).__enter__()


class _Display:
    """Turns engine events into output, remembering just enough not to repeat itself."""

    def __init__(self, env: Env, view: Any) -> None:
        self.env = env
        self.view = view
        # The poll error last shown per run: a run failing the same way for two minutes
        # gets one line, not one per retry.
        self.failing: dict[str, str] = {}
        self.fatal = False  # a 400/401/403/422 stopped the watch, not --fail-fast
        # Why runs ended abnormally, held back while the live table owns the screen.
        self.notes: list[str] = []

    def show(self, event: Event) -> None:
        from retab_cli.render import watching

        renderer = self.env.renderer
        run = event.run
        if event.kind == "fatal":
            self.fatal = True
        terminal = event.kind == "status" and event.new in TERMINAL
        if renderer.mode == "jsonl" and event.data is not None and (
                event.kind == "ended" or (event.kind == "status" and not terminal)):
            renderer.jsonl(event.data)
        if event.kind == "status":
            self.failing.pop(run.id, None)
            if self.view is None:
                renderer.progress_line(watching.change_line(
                    event.wall, run.id, event.old, event.new, event.data or run.raw,
                    event.at - run.started))
        elif event.kind == "retry":
            message = event.error.message if event.error else "unknown error"
            if self.view is None and self.failing.get(run.id) != message:
                self.failing[run.id] = message
                renderer.info(f"{watching.clock(event.wall)} {run.id} poll failed, retrying: "
                              f"{message}")
        else:  # the run's final event
            if self.view is not None:
                self.view.ended(run.id)
            if event.kind in ("ended", "fatal"):
                return  # the status line said it; a fatal error is reported once, at the end
            kind = "stopped_by_error" if event.kind == "stopped" and self.fatal else event.kind
            if kind == "gone" and run.status is None:
                kind = "not_found"  # never seen: it did not exist, rather than was deleted
            line = f"{watching.clock(event.wall)} {run.id} {watching.end_note(kind, run.last_error)}"
            if self.view is None:
                renderer.info(line)
            elif event.kind in ("gone", "gave_up"):
                self.notes.append(line)

    def close(self) -> None:
        if self.view is not None:
            self.view.__exit__(None, None, None)
            self.view = None
        for line in self.notes:
            self.env.renderer.info(line)
        self.notes.clear()


def _finish(env: Env, watcher: Watcher, options: WatchOptions, elapsed: float) -> None:
    from retab_cli.recent import remember
    from retab_cli.render import watching

    runs = watcher.runs
    finals = [run.raw for run in runs if run.raw is not None]
    renderer = env.renderer
    if renderer.mode == "json" and finals:
        renderer.json_result(finals, single=options.single)
    elif renderer.mode == "ids":
        for run in runs:
            renderer.id_line(run.id)
    elif renderer.mode == "csv" and finals:
        renderer.partitions(finals, single=options.single)
    elif renderer.mode == "table" and finals:
        _final_table(env, finals)
    statuses = [_shown_status(run) for run in runs]
    credits = sum(watching.credits_of(run.raw) or 0.0 for run in runs)
    line = watching.summary_line(statuses, credits, elapsed)
    renderer.info(line)
    outcome_errors(env, runs, any_end_ok=options.any_end_ok)
    if options.ci_summary and watching.in_github_actions():
        _github(env, runs, line, any_end_ok=options.any_end_ok)
    remember((run.id for run in runs), env.settings)


_OUTCOME_ERRORS: dict[str, tuple[type[errors.RetabError], str]] = {
    "failed": (errors.RunFailedError, "run failed"),
    "cancelled": (errors.RunCancelledError, "run cancelled"),
    "timeout": (errors.TimeoutExpiredError, "still running at --timeout"),
    "still_running": (errors.TimeoutExpiredError, "still running"),
    "not_found": (errors.NotFoundError, "not found (404)"),
}


def outcome_error(partition_id: str, outcome: str | None,
                  raw: dict[str, Any] | None) -> errors.RetabError | None:
    """The JSON error object's exception for a run that did not complete, or None: the
    one mapping watch, create and get --exit-status share (docs/design.md §12)."""
    from retab_cli.render import pick, watching

    known = _OUTCOME_ERRORS.get(outcome or "")
    if known is None:
        return None
    cls, message = known
    detail = pick(raw, "error.message") if raw else None
    if isinstance(detail, str) and detail:
        message = f"{message}: {detail}"
    return cls(message, partition_id=partition_id, file=watching.filename_of(raw) or None,
               status=404 if outcome == "not_found" else None)


def outcome_errors(env: Env, runs: list[RunState], *, any_end_ok: bool = False) -> None:
    """Under explicit -o json|jsonl, one error object per run that did not complete."""
    for run in runs:
        if any_end_ok and run.outcome in TERMINAL:
            continue  # cancel --wait: any end is what was asked for
        error = outcome_error(run.id, run.outcome, run.raw)
        if error is not None:
            env.renderer.error_object(error)


def status_error(env: Env, raw: dict[str, Any]) -> None:
    """One run object's status as a JSON error object when it did not complete (get
    --exit-status, a synchronous create)."""
    status = raw.get("status")
    outcome = None if status == "completed" else (
        status if status in ("failed", "cancelled") else "still_running")
    error = outcome_error(str(raw.get("id", "")), outcome, raw)
    if error is not None:
        env.renderer.error_object(error)


def _final_table(env: Env, finals: list[dict[str, Any]]) -> None:
    if len(finals) == 1:
        env.renderer.partitions(finals, single=True)
        return
    env.renderer.begin_list()
    env.renderer.list_items(finals)


def _shown_status(run: RunState) -> str:
    if run.outcome == "not_found":
        return "gone"
    if run.outcome in ("gave_up", "timeout", "stopped") and run.status not in TERMINAL:
        return run.outcome
    return run.status or "unknown"


def _github(env: Env, runs: list[RunState], line: str, *, any_end_ok: bool) -> None:
    from retab_cli.render import watching

    rows = []
    for run in runs:
        rows.append({
            "id": run.id, "file": watching.filename_of(run.raw), "status": _shown_status(run),
            "chunks": watching.chunk_count(run.raw) if run.status == "completed" else None,
            "credits": watching.credits_of(run.raw),
            "elapsed": (run.ended or time.monotonic()) - run.started,
        })
        # cancel --wait: a run that ended in any state is what was asked for
        settled = any_end_ok and run.outcome in TERMINAL
        if run.exit_code not in (errors.OK, errors.STILL_RUNNING) and not settled:
            env.renderer.notice(watching.error_annotation(run.id, run.raw, _shown_status(run)))
        elif run.exit_code == errors.STILL_RUNNING:  # not a failure yet: a warning
            env.renderer.notice(watching.error_annotation(run.id, run.raw, _shown_status(run),
                                                          level="warning"))
    watching.write_step_summary(env.renderer, watching.step_summary(rows, line))


# ---- interrupts --------------------------------------------------------------------------


async def report_interrupt(env: Env, session: WatchSession, *, cancel: bool,
                           code: int = errors.SIGINT) -> None:
    """After Ctrl-C/SIGTERM: optionally cancel, then each run's last status and what to run."""
    runs = session.watcher.runs if session.watcher else []
    # A run seen terminal whose full object was still on its way has ended all the same.
    active = [run.id for run in runs if run.ended is None and run.status not in TERMINAL] \
        if runs else list(session.ids)
    cancelled = await cancel_active(env, active) if cancel and active else {}
    renderer = env.renderer
    message = "interrupted; the runs were not cancelled" if not cancel else "interrupted"
    if renderer.explicit_json:  # scripts asked for JSON: say it as JSON too (docs/design.md §2)
        renderer.error(errors.InterruptError(message, exit_code=code))
    else:
        renderer.warn(message)
    for run in runs[:LIST_STATUSES]:
        status = run.status or "unknown"
        if run.id in cancelled:
            status = f"{status} → {cancelled[run.id]} (cancel sent)"
        renderer.warn(f"  {run.id}  {status}")
    if len(runs) > LIST_STATUSES:
        from collections import Counter

        rest = Counter(run.status or "unknown" for run in runs[LIST_STATUSES:])
        renderer.warn("  … and " + ", ".join(f"{n} {s}" for s, n in rest.most_common()))
    if active and not cancel:
        if len(active) <= LIST_IN_HINT:
            renderer.warn(f"resume: retab partitions watch {' '.join(active)}")
            renderer.warn(f"cancel: retab partitions cancel {' '.join(active)}")
        else:  # too many for one line: a private file the hint can feed back
            from retab_cli.bulk import save_private

            saved = save_private("\n".join(active) + "\n", prefix="interrupted-")
            renderer.warn(f"resume: retab partitions watch - < {saved}" if saved else
                          f"resume: retab partitions watch {' '.join(active)}")
            renderer.warn(f"cancel: retab partitions cancel - < {saved}" if saved else
                          f"cancel: retab partitions cancel {' '.join(active)}")


async def cancel_active(env: Env, ids: list[str]) -> dict[str, str]:
    """Cancel within CANCEL_ON_INTERRUPT_BUDGET; the status each cancelled run now has."""
    import asyncio

    from retab_cli.bulk import Outcome, ordered
    from retab_cli.render import sanitize

    done: dict[str, str] = {}

    async def one(partition_id: str) -> Any:
        return await client.cancel(partition_id)

    def emit(outcome: Outcome) -> None:
        if outcome.error is None:
            status = outcome.value.data.get("status") if isinstance(
                outcome.value.data, dict) else None
            done[outcome.item] = sanitize(status or "?", single_line=True)

    try:
        async with asyncio.timeout(CANCEL_ON_INTERRUPT_BUDGET), env.client() as client:
            await ordered(ids, one, emit)
    except (TimeoutError, errors.RetabError) as exc:
        reason = "time ran out" if isinstance(exc, TimeoutError) else str(exc)
        env.renderer.warn(f"cancel-on-interrupt: {reason}")
    missed = [i for i in ids if i not in done]
    env.renderer.warn(f"cancel-on-interrupt: sent {len(done)} of {len(ids)} cancels")
    if missed:
        env.renderer.warn("not cancelled: " + " ".join(missed))
    return done
