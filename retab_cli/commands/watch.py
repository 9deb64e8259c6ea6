"""`retab partitions watch ID... | -` (alias `wait`), and the watch behind
`create --wait` and `cancel --wait`. The engine (retab_cli.watch) decides; this renders."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import Env, FieldsOpt, JsonOpt, OutputOpt, QuietOpt, read_ids

if TYPE_CHECKING:
    from retab_cli.client import Client
    from retab_cli.watch import Event, RunState, Watcher

CANCEL_ON_INTERRUPT_BUDGET = 5.0  # GitHub Actions sends SIGTERM ~7.5 s after SIGINT
LIST_IN_HINT = 20


@dataclass
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


def watch(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(
        help="Partition ids, or - to read them from stdin.", show_default=False)],
    timeout: Annotated[str | None, typer.Option(
        help="Stop waiting after this long (exit 8), e.g. 90s, 5m, 1h30m.",
        show_default=False)] = None,
    interval: Annotated[str | None, typer.Option(
        help="Poll each run this often (default: 1 s growing to 10 s for long runs).",
        show_default=False)] = None,
    cancel_on_interrupt: Annotated[bool, typer.Option(
        "--cancel-on-interrupt", help="On Ctrl-C or SIGTERM, cancel the runs still active "
                                      "(within 5 s) before exiting.")] = False,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="Stop at the first run that does not complete.")] = False,
    no_ci_summary: Annotated[bool, typer.Option(
        "--no-ci-summary", help="In GitHub Actions, write no step summary or annotations.")
    ] = False,
    output: OutputOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Wait for runs to end, showing each status change. Exit 0 when every run completed,
    3 if one failed, 5 if one was cancelled, 6 if one is gone, 8 on --timeout."""
    from retab_cli.parsing import parse_duration

    env = Env(ctx, output=output, json=json, quiet=quiet, fields=fields)
    try:
        wanted = read_ids(ids)
        options = WatchOptions(
            timeout=parse_duration(timeout, "--timeout") if timeout else None,
            interval=parse_duration(interval, "--interval") if interval else None,
            fail_fast=fail_fast, ci_summary=not no_ci_summary,
            single=len(ids) == 1 and ids[0] != "-")
        if options.interval is not None and options.interval < 0.1:
            raise errors.UsageError("--interval must be at least 100ms")
    except errors.RetabError as exc:
        raise env.fail(exc) from None
    session = WatchSession(ids=wanted)

    async def main() -> int:
        async with env.client() as client:
            return await watch_runs(env, client, wanted, options, session=session)

    def on_interrupt(code: int) -> None:
        report_interrupt(env, session, cancel=cancel_on_interrupt)

    env.run(main, on_interrupt=on_interrupt)


async def watch_until_terminal(env: Env, client: Client, finals: list[dict[str, Any]],
                               timeout: float | None, *, single: bool = False,
                               any_end_ok: bool = False) -> int:
    """The watch after `create --wait` / `cancel --wait`, seeded with the objects returned."""
    ids = [str(f["id"]) for f in finals if isinstance(f.get("id"), str)]
    options = WatchOptions(timeout=timeout, single=single, any_end_ok=any_end_ok)
    return await watch_runs(env, client, ids, options,
                            initial={str(f["id"]): f for f in finals if "id" in f})


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
    view = _open_view(env, watcher)
    try:
        async with contextlib.aclosing(watcher.run()) as events:
            async for event in events:
                _on_event(env, view, event)
    finally:
        if view is not None:
            view.__exit__(None, None, None)
    if watcher.fatal is not None:
        raise watcher.fatal
    _finish(env, watcher, options, time.monotonic() - started)
    return watcher.exit_code(any_end_ok=options.any_end_ok)


def _open_view(env: Env, watcher: Watcher) -> Any:
    if not env.renderer.stderr_tty or env.renderer.quiet:
        return None
    from retab_cli.render.live import LiveView

    return LiveView(env.renderer, watcher.runs).__enter__()


def _on_event(env: Env, view: Any, event: Event) -> None:
    from retab_cli.render import watching

    renderer = env.renderer
    run = event.run
    terminal = event.kind == "status" and event.new in ("completed", "failed", "cancelled")
    if renderer.mode == "jsonl" and event.data is not None and (
            event.kind == "ended" or (event.kind == "status" and not terminal)):
        renderer.jsonl(event.data)
    if view is not None:
        if event.kind not in ("status", "retry"):
            view.ended(run.id)
        return
    elapsed = event.at - run.started
    if event.kind == "status":
        renderer.info(watching.change_line(event.wall, run.id, event.old, event.new,
                                           event.data or run.raw, elapsed))
    elif event.kind == "retry":
        renderer.info(f"{watching.clock(event.wall)} {run.id} poll failed, retrying: "
                      f"{event.error.message if event.error else 'unknown error'}")
    elif event.kind not in ("ended", "fatal"):
        note = watching.end_note(event.kind, run.last_error)
        renderer.info(f"{watching.clock(event.wall)} {run.id} {note}")


def _finish(env: Env, watcher: Watcher, options: WatchOptions, elapsed: float) -> None:
    from retab_cli.recent import remember
    from retab_cli.render import watching

    runs = watcher.runs
    finals = [run.raw for run in runs if run.raw is not None]
    renderer = env.renderer
    if renderer.mode == "json" and finals:
        single = options.single and len(finals) == 1
        renderer.json(finals[0]) if single else renderer.json_list(finals)
    elif renderer.mode == "ids":
        for run in runs:
            renderer.line(run.id)
    elif renderer.mode == "table" and finals:
        _final_table(env, finals)
    statuses = [_shown_status(run) for run in runs]
    credits = sum(watching.credits_of(run.raw) or 0.0 for run in runs)
    line = watching.summary_line(statuses, credits, elapsed)
    renderer.info(line)
    if options.ci_summary and watching.in_github_actions():
        _github(env, runs, line)
    remember(run.id for run in runs)


def _final_table(env: Env, finals: list[dict[str, Any]]) -> None:
    if len(finals) == 1:
        env.renderer.partitions(finals, single=True)
        return
    env.renderer.begin_list()
    env.renderer.list_items(finals)


def _shown_status(run: RunState) -> str:
    if run.outcome == "not_found":
        return "gone"
    if run.outcome in ("gave_up", "timeout", "stopped") and run.status not in (
            "completed", "failed", "cancelled"):
        return run.outcome
    return run.status or "unknown"


def _github(env: Env, runs: list[RunState], line: str) -> None:
    from retab_cli.render import watching

    rows = []
    for run in runs:
        rows.append({
            "id": run.id, "file": watching.filename_of(run.raw), "status": _shown_status(run),
            "chunks": watching.chunk_count(run.raw) if run.status == "completed" else None,
            "credits": watching.credits_of(run.raw),
            "elapsed": (run.ended or time.monotonic()) - run.started,
        })
        if run.exit_code not in (errors.OK, errors.STILL_RUNNING):
            env.renderer.notice(watching.error_annotation(run.id, run.raw, _shown_status(run)))
    watching.write_step_summary(env.renderer, watching.step_summary(rows, line))


# ---- interrupts --------------------------------------------------------------------------


def report_interrupt(env: Env, session: WatchSession, *, cancel: bool) -> None:
    """After Ctrl-C/SIGTERM: optionally cancel, then each run's last status and what to run."""
    runs = session.watcher.runs if session.watcher else []
    active = [run.id for run in runs if run.ended is None] if runs else list(session.ids)
    if cancel and active:
        _cancel_active(env, active)
    renderer = env.renderer
    renderer.warn("interrupted; the runs were not cancelled" if not cancel else "interrupted")
    for run in runs:
        renderer.warn(f"  {run.id}  {run.status or 'unknown'}")
    if active and not cancel:
        shown = " ".join(active) if len(active) <= LIST_IN_HINT else "-"
        feed = "" if len(active) <= LIST_IN_HINT else \
            "retab partitions list --status queued --status in_progress -q | "
        renderer.warn(f"resume: {feed}retab partitions watch {shown}")
        renderer.warn(f"cancel: {feed}retab partitions cancel {shown}")


def _cancel_active(env: Env, ids: list[str]) -> None:
    import asyncio

    from retab_cli.commands._common import Outcome, ordered

    done: list[str] = []

    async def cancel_all() -> None:
        async with env.client() as client:
            async def one(partition_id: str) -> Any:
                return await client.cancel(partition_id)

            def emit(outcome: Outcome) -> None:
                if outcome.error is None:
                    done.append(outcome.item)

            async with asyncio.timeout(CANCEL_ON_INTERRUPT_BUDGET):
                await ordered(ids, one, emit)

    try:
        asyncio.run(cancel_all())
    except (TimeoutError, errors.RetabError, KeyboardInterrupt) as exc:
        reason = "time ran out" if isinstance(exc, TimeoutError) else str(exc)
        env.renderer.warn(f"cancel-on-interrupt: {reason}")
    missed = [i for i in ids if i not in set(done)]
    env.renderer.warn(f"cancel-on-interrupt: sent {len(done)} of {len(ids)} cancels")
    if missed:
        env.renderer.warn("not cancelled: " + " ".join(missed))
