"""`retab partitions create FILE... | - | --url URL --key KEY`."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import RunFlags, duration

if TYPE_CHECKING:
    from retab_cli.bulk import Outcome, Tally
    from retab_cli.client import Client
    from retab_cli.creating import Plan
    from retab_cli.session import Env


@dataclass(frozen=True)
class SendFlags:
    """How the documents are named and sent, and what to wait for."""

    filename: Annotated[str | None, typer.Option(
        metavar="NAME", help="Filename to send (needed with - and data: URLs).", show_default=False)] = None
    mime_type: Annotated[str | None, typer.Option(
        metavar="TYPE", help="MIME type to send instead of the one sniffed from the bytes.",
        show_default=False)] = None
    idempotency_key: Annotated[str | None, typer.Option(
        metavar="KEY", help="Idempotency-Key for a safe retry (one document only; generated otherwise).",
        show_default=False)] = None
    background: Annotated[bool, typer.Option(
        "--background", help="Return at once with the run queued.")] = False
    wait: Annotated[bool, typer.Option(
        "--wait", help="Start in the background and watch until every run ends.")] = False
    timeout: Annotated[str | None, typer.Option(
        metavar="DUR", help="Give up after this long: the synchronous request (default 10m) or, with "
             "--wait, the watch (exit 8).", show_default=False)] = None
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the requests that would be sent; send nothing.")] = False


@command()
def create(
    env: Env,
    files: Annotated[list[str] | None, typer.Argument(
        metavar="FILE", help="Documents to partition (PDF, images, text), or - to read one from stdin.",
        show_default=False)] = None,
    url: Annotated[str | None, typer.Option(
        metavar="URL", help="A document URL for the service to fetch (https://...), or a data: URL.",
        show_default=False)] = None,
    *,
    run: RunFlags,
    send: SendFlags,
) -> int:
    """Partition documents along a key (one chunk per invoice, per contract, ...)."""
    from retab_cli.creating import DEFAULT_SYNC_TIMEOUT, dry_run_requests
    from retab_cli.watch_ui import WatchSession, report_if_watching, watch_after

    plan = _plan(env, files or [], url, run, send)
    if send.dry_run:
        requests = dry_run_requests(plan.options, plan.documents, plan.keys)
        env.renderer.objects(requests, single=True)
        env.renderer.info(f"dry run: {len(requests)} request(s) not sent")
        return errors.OK
    answered: set[int] = set()
    session = WatchSession()
    sync_timeout = None if plan.options.background else (plan.deadline or DEFAULT_SYNC_TIMEOUT)

    async def main() -> int:
        async with env.client(request_timeout=sync_timeout) as client:
            created = await _create_all(env, client, plan, answered)
            if plan.wait and created.values:
                return await watch_after(env, client, created, plan.deadline,
                                         single=len(plan.documents) == 1, session=session)
        return created.code

    async def on_interrupt(code: int) -> None:
        await report_if_watching(env, session, code)
        pending = [i for i in range(len(plan.documents)) if i not in answered]
        if pending:
            env.renderer.warn("interrupted before every create was answered; to retry safely "
                              "(no duplicate runs):")
        for index in pending:
            env.renderer.warn("  " + plan.options.rerun(plan.documents[index], plan.keys[index],
                                                        plan.wait))

    return env.run(main, on_interrupt=on_interrupt)


def _plan(env: Env, files: list[str], url: str | None, run: RunFlags, send: SendFlags) -> Plan:
    from retab_cli.creating import DocumentSource, Plan, require_key

    require_key(run.key)
    if send.background and send.wait:
        raise errors.UsageError("--background and --wait cannot be used together")
    if send.timeout and send.background:
        raise errors.UsageError("--timeout applies to a synchronous create or --wait")
    options = run.options(background=send.background or send.wait, warn=env.renderer.warn)
    deadline = duration(send.timeout, "--timeout")
    source = DocumentSource(tuple(files), url, send.filename, send.mime_type)
    return Plan.make(options, source.load(sys.stdin.buffer, env.renderer.warn),
                     idempotency_key=send.idempotency_key, deadline=deadline, wait=send.wait)


async def _create_all(env: Env, client: Client, plan: Plan, answered: set[int]) -> Tally:
    """Send the creates, showing each result as it comes (or, with --wait, leaving the
    showing to the watch)."""
    from retab_cli.bulk import Tally
    from retab_cli.creating import explain_failure, send_creates
    from retab_cli.render.progress import create_spinner
    from retab_cli.watch_ui import status_error

    renderer, documents = env.renderer, plan.documents
    created = Tally(renderer.error)

    def emit(outcome: Outcome) -> None:
        if outcome.error is not None:
            index = outcome.item
            explain_failure(outcome.error, plan.options, documents[index], plan.keys[index],
                            plan.wait)
            created.failed(outcome.error)
            return
        created.values.append(outcome.value)
        if not plan.options.background:
            created.codes.append(errors.exit_for_status(str(outcome.value.get("status"))))
            status_error(env, outcome.value)
        if renderer.mode == "jsonl" and not plan.wait:
            renderer.jsonl(outcome.value)

    progress = create_spinner(renderer, synchronous=not plan.options.background,
                              total=len(documents))
    with progress or contextlib.nullcontext():
        await send_creates(client, plan.options, documents, plan.keys, emit, answered=answered,
                           advance=progress.advance if progress else None)
    _show_created(env, created.values, wait=plan.wait, single=len(documents) == 1)
    return created


def _show_created(env: Env, values: list[dict[str, Any]], *, wait: bool, single: bool) -> None:
    if wait:  # the watch shows the runs and remembers their ids
        if values:
            ids = ", ".join(str(f.get("id")) for f in values[:5])
            env.renderer.info(f"created {len(values)} run(s): {ids}"
                              + (" …" if len(values) > 5 else ""))
        return
    from retab_cli.recent import remember

    remember((f.get("id") for f in values), env.settings)
    if env.renderer.mode != "jsonl" and values:
        env.renderer.partitions(values, single=single)
