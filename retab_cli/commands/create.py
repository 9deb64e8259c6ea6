"""`retab partitions create FILE... | - | --url URL --key KEY`."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import RunFlags, choices, duration
from retab_cli.parsing import UPLOAD_MODES

if TYPE_CHECKING:
    from retab_cli.client import Client
    from retab_cli.creating import Creates, DocumentSource, Plan
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
    upload: Annotated[str, typer.Option(
        metavar="WHEN", autocompletion=choices(UPLOAD_MODES),
        help="Send files through Retab's files API: auto (when the request would pass the "
             "API's 32 MiB body limit inline), always or never.")] = "auto"


@command()
def create(
    env: Env,
    files: Annotated[list[str] | None, typer.Argument(
        metavar="FILE", help="Documents to partition (PDF, images, text), or - to read one from stdin.",
        show_default=False)] = None,
    url: Annotated[str | None, typer.Option(
        metavar="URL", help="A document URL for the service to fetch (https://...), or a data: URL.",
        show_default=False)] = None,
    file_id: Annotated[list[str] | None, typer.Option(
        "--file-id", metavar="FILE_ID", help="A file already uploaded to Retab's files API "
        "(repeatable: one run each).", show_default=False)] = None,
    *,
    run: RunFlags,
    send: SendFlags,
) -> int:
    """Partition documents along a key (one chunk per invoice, per contract, ...)."""
    from retab_cli.creating import Creates, DocumentSource, dry_run_requests
    from retab_cli.watch_ui import WatchSession, report_if_watching, watch_after

    source = DocumentSource(tuple(files or ()), url, send.filename, send.mime_type,
                            tuple(file_id or ()))
    plan = _plan(env, source, run, send)
    if send.dry_run:
        requests = dry_run_requests(plan.options, plan.documents, plan.keys, plan.transports)
        env.renderer.objects(requests, single=True)
        env.renderer.info(f"dry run: {len(requests)} request(s) not sent{plan.how()}")
        return errors.OK
    creates, session = Creates(plan), WatchSession()

    async def main() -> int:
        async with env.client() as client:
            await _create_all(env, client, creates)
            if plan.wait and creates.tally.values:
                return await watch_after(env, client, creates.tally, plan.deadline,
                                         single=creates.single, session=session)
        return creates.tally.code

    async def on_interrupt(code: int) -> None:
        if await report_if_watching(env, session, code):
            return
        # Every run answered on stdout, every other document's safe retry on stderr.
        _show_created(env, creates, streamed=not plan.wait)
        creates.report_stop(env.renderer, "interrupted", ids_shown=True)

    def on_broken_pipe() -> int:
        creates.report_stop(env.renderer, "stdout was closed", ids_shown=False)
        return errors.ERROR

    return env.run(main, on_interrupt=on_interrupt, on_broken_pipe=on_broken_pipe)


def _plan(env: Env, source: DocumentSource, run: RunFlags, send: SendFlags) -> Plan:
    from retab_cli.creating import Plan, require_key
    from retab_cli.parsing import choose
    from retab_cli.session import stdin_is_tty

    require_key(run.key)
    if send.background and send.wait:
        raise errors.UsageError("--background and --wait cannot be used together")
    if send.timeout and send.background:
        raise errors.UsageError("--timeout applies to a synchronous create or --wait")
    options = run.options(background=send.background or send.wait, warn=env.renderer.warn)
    deadline = duration(send.timeout, "--timeout")
    if source.files == ("-",) and source.url is None and stdin_is_tty():  # it would block
        raise errors.UsageError("'-' reads the document from stdin, but stdin is a terminal",
                                hint="pipe it in, e.g. retab partitions create - --filename "
                                     "scan.pdf --key KEY < scan.pdf")
    return Plan.make(options, source.load(sys.stdin.buffer, env.renderer.warn),
                     idempotency_key=send.idempotency_key, deadline=deadline, wait=send.wait,
                     upload=choose(send.upload, UPLOAD_MODES, "--upload"))


async def _create_all(env: Env, client: Client, creates: Creates) -> None:
    """Send the creates, showing each result as it comes (or, with --wait, leaving the
    showing to the watch)."""
    from retab_cli.render.transfer import create_progress
    from retab_cli.watch_ui import status_error

    renderer, plan = env.renderer, creates.plan
    stream = renderer.mode == "jsonl" and not plan.wait

    def each(run: dict[str, Any]) -> None:
        if not plan.options.background:  # a run that did not complete, as a JSON error too
            status_error(env, run)
        if stream:
            renderer.jsonl(run)

    progress = create_progress(renderer, creates)
    with progress or contextlib.nullcontext():
        await creates.send(client, renderer, each=each,
                           advance=progress.advance if progress else None)
    values = creates.tally.values
    if not plan.wait:
        _show_created(env, creates, streamed=True)
    elif values:  # the watch shows the runs and remembers their ids
        ids = ", ".join(str(f.get("id")) for f in values[:5])
        renderer.info(f"created {len(values)} run(s): {ids}" + (" …" if len(values) > 5 else ""))


def _show_created(env: Env, creates: Creates, *, streamed: bool) -> None:
    """The runs created, on stdout in the chosen mode (jsonl: unless `streamed` already)."""
    from retab_cli.recent import remember

    values = creates.tally.values
    remember((f.get("id") for f in values), env.settings)
    if values and not (streamed and env.renderer.mode == "jsonl"):
        env.renderer.partitions(values, single=creates.single)
