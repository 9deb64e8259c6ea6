"""`retab partitions create FILE... | - | --url URL --key KEY`."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.errors import OutcomeUnknownError, UsageError

if TYPE_CHECKING:
    from retab_cli.bulk import Tally
    from retab_cli.documents import Document
    from retab_cli.session import Env

DEFAULT_SYNC_TIMEOUT = 600.0
UPLOADS_AT_ONCE = 4
BYTES_IN_FLIGHT = 64 * 1024 * 1024
MODELS = ["retab-micro", "retab-small", "retab-large"]


def _complete_model(incomplete: str) -> list[str]:
    return [m for m in MODELS if m.startswith(incomplete)]


@dataclass
class CreateOptions:
    key: str
    instructions: str | None
    model: str | None
    consensus: int | None
    no_overlap: bool
    bust_cache: bool
    background: bool

    def body(self, document: Document) -> dict[str, Any]:
        body: dict[str, Any] = {
            "document": {"filename": document.filename, "url": document.data_url()},
            "key": self.key,
            "instructions": self.instructions or default_instructions(self.key),
        }
        if self.model:
            body["model"] = self.model
        if self.consensus is not None:
            body["n_consensus"] = self.consensus
        if self.no_overlap:
            body["allow_overlap"] = False
        if self.bust_cache:
            body["bust_cache"] = True
        body["background"] = self.background
        return body

    def rerun(self, document: Document, idempotency_key: str, wait: bool) -> str:
        """A ready command that retries this one document without creating a duplicate."""
        import shlex

        # A URL (data: included) is the document itself; a file or stdin is named again.
        source = ["--url", document.url] if document.url else [document.label]
        args = ["retab", "partitions", "create", *source, "--key", self.key]
        if self.instructions:
            args += ["--instructions", self.instructions]
        if self.model:
            args += ["--model", self.model]
        if self.consensus is not None:
            args += ["--consensus", str(self.consensus)]
        if self.no_overlap:
            args.append("--no-overlap")
        if self.bust_cache:
            args.append("--bust-cache")
        if document.label in ("-", "data URL") or document.filename != _basename(document):
            args += ["--filename", document.filename]
        if wait or self.background:
            args.append("--wait" if wait else "--background")
        args += ["--idempotency-key", idempotency_key]
        return shlex.join(args)


def _basename(document: Document) -> str:
    return document.path.name if document.path else document.filename


def default_instructions(key: str) -> str:
    return (f"Split the document into one chunk per distinct {key}: each chunk holds the "
            f"pages that belong to that {key}.")


@command()
def create(
    env: Env,
    files: Annotated[list[str] | None, typer.Argument(
        metavar="FILE", help="Documents to partition (PDF, images, text), or - to read one from stdin.",
        show_default=False)] = None,
    url: Annotated[str | None, typer.Option(
        metavar="URL", help="A document URL for the service to fetch (https://...), or a data: URL.",
        show_default=False)] = None,
    key: Annotated[str, typer.Option(
        metavar="KEY", help="What to split along, e.g. 'invoice number'.", show_default=False)] = "",
    instructions: Annotated[str | None, typer.Option(
        metavar="TEXT", help="How to partition (default: a sentence built from --key).",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        metavar="TIER", help="Model tier: retab-micro, retab-small or retab-large (server default when "
             "omitted).", autocompletion=_complete_model, show_default=False)] = None,
    consensus: Annotated[int | None, typer.Option(
        metavar="N", help="Consensus votes, 1-8.", show_default=False)] = None,
    no_overlap: Annotated[bool, typer.Option(
        "--no-overlap", help="A page may belong to one chunk only.")] = False,
    bust_cache: Annotated[bool, typer.Option(
        "--bust-cache", help="Skip the service's cache.")] = False,
    filename: Annotated[str | None, typer.Option(
        metavar="NAME", help="Filename to send (needed with - and data: URLs).", show_default=False)] = None,
    mime_type: Annotated[str | None, typer.Option(
        metavar="TYPE", help="MIME type to send instead of the one sniffed from the bytes.",
        show_default=False)] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        metavar="KEY", help="Idempotency-Key for a safe retry (one document only; generated otherwise).",
        show_default=False)] = None,
    background: Annotated[bool, typer.Option(
        "--background", help="Return at once with the run queued.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Start in the background and watch until every run ends.")] = False,
    timeout: Annotated[str | None, typer.Option(
        metavar="DUR", help="Give up after this long: the synchronous request (default 10m) or, with "
             "--wait, the watch (exit 8).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the requests that would be sent; send nothing.")] = False,
) -> int:
    """Partition documents along a key (one chunk per invoice, per contract, ...)."""
    options, documents, deadline = _prepare(
        files or [], url, key, instructions, model, consensus, no_overlap, bust_cache,
        filename, mime_type, idempotency_key, background, wait, timeout, env)
    import secrets

    keys = [idempotency_key or secrets.token_hex(16) for _ in documents]
    if dry_run:
        _dry_run(env, options, documents, keys)
        return errors.OK
    # One document in, one object out; '-' is one document here, not a list of ids.
    single = len(documents) == 1

    async def main() -> int:
        sync_timeout = None if (background or wait) else (deadline or DEFAULT_SYNC_TIMEOUT)
        async with env.client(request_timeout=sync_timeout) as client:
            created = await _create_all(env, client, options, documents, keys, wait, single,
                                        answered)
            if wait and created.values:
                from retab_cli.watch_ui import watch_until_terminal

                code = await watch_until_terminal(env, client, created.values, deadline,
                                                  single=single, session=session)
                return errors.worst([code, *created.codes])
        return errors.worst(created.codes)

    answered: set[int] = set()
    from retab_cli.watch_ui import WatchSession, report_interrupt

    session = WatchSession()

    async def on_interrupt(code: int) -> None:
        pending = [i for i in range(len(documents)) if i not in answered]
        if session.watcher is not None:
            await report_interrupt(env, session, cancel=False, code=code)
        if not pending:
            return
        env.renderer.warn("interrupted before every create was answered; to retry safely "
                          "(no duplicate runs):")
        for index in pending:
            env.renderer.warn("  " + options.rerun(documents[index], keys[index], wait))

    return env.run(main, on_interrupt=on_interrupt)


def _prepare(files: list[str], url: str | None, key: str, instructions: str | None,
             model: str | None, consensus: int | None, no_overlap: bool, bust_cache: bool,
             filename: str | None, mime_type: str | None, idempotency_key: str | None,
             background: bool, wait: bool, timeout: str | None, env: Env
             ) -> tuple[CreateOptions, list[Document], float | None]:
    from retab_cli.parsing import parse_duration

    if not key.strip():
        raise UsageError("--key is required: what to split along, e.g. --key 'invoice number'")
    if background and wait:
        raise UsageError("--background and --wait cannot be used together")
    if timeout and background:
        raise UsageError("--timeout applies to a synchronous create or --wait")
    if consensus is not None and not 1 <= consensus <= 8:
        raise UsageError(f"--consensus must be between 1 and 8 (got {consensus})")
    if model is not None and not model.strip():
        raise UsageError("--model must not be empty")
    deadline = parse_duration(timeout, "--timeout") if timeout else None
    documents = _documents(files, url, filename, mime_type, env)
    if idempotency_key is not None:
        if len(documents) != 1:
            raise UsageError("--idempotency-key needs a single document")
        if not idempotency_key.strip() or not idempotency_key.isprintable():
            raise UsageError("--idempotency-key must be printable and not empty")
    options = CreateOptions(key=key, instructions=instructions, model=model,
                            consensus=consensus, no_overlap=no_overlap,
                            bust_cache=bust_cache, background=background or wait)
    return options, documents, deadline


def _documents(files: list[str], url: str | None, filename: str | None,
               mime_type: str | None, env: Env) -> list[Document]:
    from retab_cli.documents import from_path, from_stdin, from_url

    warn = env.renderer.warn
    if url is not None:
        if files:
            raise UsageError("give either FILE arguments or --url, not both")
        return [from_url(url, filename=filename, mime_type=mime_type)]
    if not files:
        raise UsageError("no document given: pass FILE..., - for stdin, or --url URL")
    if "-" in files and len(files) > 1:
        raise UsageError("'-' (stdin) cannot be combined with other files")
    if files == ["-"]:
        return [from_stdin(sys.stdin.buffer, filename=filename, mime_type=mime_type,
                           warn=warn)]
    if filename and len(files) > 1:
        raise UsageError("--filename needs a single document")
    return [from_path(f, filename=filename, mime_type=mime_type, warn=warn) for f in files]


def _dry_run(env: Env, options: CreateOptions, documents: list[Document],
             keys: list[str]) -> None:
    requests = []
    for document, key in zip(documents, keys, strict=True):
        body = options.body(document)
        shown = body["document"]["url"]
        if shown.startswith("data:"):
            head = shown.split(",", 1)[0]
            body["document"]["url"] = f"{head},<{document.size} bytes>"
        requests.append({"method": "POST", "path": "/v1/partitions",
                         "headers": {"Idempotency-Key": key}, "body": body})
    if env.renderer.mode == "jsonl":
        for request in requests:
            env.renderer.jsonl(request)
    else:
        env.renderer.json_result(requests, single=True)
    env.renderer.info(f"dry run: {len(requests)} request(s) not sent")


async def _create_all(env: Env, client: Any, options: CreateOptions,
                      documents: list[Document], keys: list[str], wait: bool,
                      single: bool, answered: set[int]) -> Tally:
    import asyncio

    from retab_cli.bulk import ByteBudget, Outcome, Tally, ordered

    created = Tally()
    in_flight = ByteBudget(BYTES_IN_FLIGHT)
    progress = None
    if len(documents) > 1 and env.renderer.mode == "table":
        from retab_cli.render import tables

        progress = tables.UploadProgress(env.renderer, total=len(documents))

    async def one(index: int) -> dict[str, Any]:
        document = documents[index]
        async with in_flight.hold(document.size or 0):
            body = await asyncio.to_thread(options.body, document)
            result = await client.create(body, idempotency_key=keys[index])
        answered.add(index)
        if progress:
            progress.advance(document.filename)
        data: dict[str, Any] = result.data
        return data

    def emit(outcome: Outcome) -> None:
        document = documents[outcome.item]
        if outcome.error is not None:
            _report_failure(env, options, document, keys[outcome.item], outcome.error, wait)
            created.codes.append(outcome.error.exit_code)
            return
        created.values.append(outcome.value)
        if not options.background:
            created.codes.append(errors.exit_for_status(str(outcome.value.get("status"))))
        if env.renderer.mode == "jsonl" and not wait:
            env.renderer.jsonl(outcome.value)

    with progress or contextlib.nullcontext():
        await ordered(list(range(len(documents))), one, emit, limit=UPLOADS_AT_ONCE)
    if not wait:  # with --wait, the watch shows the runs and remembers their ids
        from retab_cli.recent import remember

        remember(str(f.get("id", "")) for f in created.values)
        if env.renderer.mode != "jsonl" and created.values:
            env.renderer.partitions(created.values, single=single)
    elif created.values:
        ids = ", ".join(str(f.get("id")) for f in created.values[:5])
        env.renderer.info(f"created {len(created.values)} run(s): {ids}"
                          + (" …" if len(created.values) > 5 else ""))
    return created


def _report_failure(env: Env, options: CreateOptions, document: Document, key: str,
                    error: errors.RetabError, wait: bool) -> None:
    error.file = document.label if document.label != "data URL" else document.filename
    if isinstance(error, OutcomeUnknownError):
        error.hint = ("retry safely (no duplicate run) with: "
                      + options.rerun(document, key, wait))
    if not error.message.startswith(document.filename):
        error.message = f"{error.file}: {error.message}"
    env.renderer.error(error)
