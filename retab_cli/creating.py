"""Starting partition runs: the request body, the documents, the sends, the safe retry.

`CreateOptions` is what every run of one invocation shares (`create` now, `batch`
next); `DocumentSource` says where the documents come from; `send_creates` posts one
request per document (bounded by count and by bytes in flight, one Idempotency-Key
each, results in input order); `Creates` is one invocation's sends and what came back,
and `report_unfinished` what a stop left undone; `rerun` is the ready command that
retries one document without creating a duplicate run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from retab_cli import errors
from retab_cli.errors import BadResponseError, OutcomeUnknownError, RetabError, UsageError

if TYPE_CHECKING:
    from retab_cli.bulk import Ledger, Outcome, Reporter, Tally
    from retab_cli.client import Client
    from retab_cli.documents import Document

DEFAULT_SYNC_TIMEOUT = 600.0
UPLOADS_AT_ONCE = 4
BYTES_IN_FLIGHT = 64 * 1024 * 1024
MODELS = ("retab-micro", "retab-small", "retab-large")
CONSENSUS_RANGE = range(1, 9)


def default_instructions(key: str) -> str:
    return (f"Split the document into one chunk per distinct {key}: each chunk holds the "
            f"pages that belong to that {key}.")


def require_key(key: str) -> None:
    if not key.strip():
        raise UsageError("--key is required: what to split along, e.g. --key 'invoice number'")


@dataclass(frozen=True)
class CreateOptions:
    """The body fields every document of one invocation shares; checked when made."""

    key: str
    instructions: str | None = None
    model: str | None = None
    consensus: int | None = None
    no_overlap: bool = False
    bust_cache: bool = False
    background: bool = False

    def __post_init__(self) -> None:
        require_key(self.key)
        if self.consensus is not None and self.consensus not in CONSENSUS_RANGE:
            raise UsageError(f"--consensus must be between 1 and 8 (got {self.consensus})")
        if self.model is not None and not self.model.strip():
            raise UsageError("--model must not be empty")

    def body(self, document: Document, sent: dict[str, str] | None = None) -> dict[str, Any]:
        """The create body; `sent` is the `document` field when it is not the bytes inline
        (an upload's or a stored file's MIMEData)."""
        field_ = sent or {"filename": document.filename, "url": document.data_url()}
        return {"document": field_, **self.fields()}

    def fields(self) -> dict[str, Any]:
        """The body's fields other than `document`, in the order they are sent."""
        body: dict[str, Any] = {
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

    def envelope(self) -> int:
        """The exact bytes these fields add to an encoded body (as the client writes JSON:
        compact, ASCII): `,"key":...}` is as long as `{"key":...}`."""
        import json

        return len(json.dumps(self.fields(), ensure_ascii=True, separators=(",", ":")))

    def rerun(self, document: Document, idempotency_key: str, wait: bool, *,
              upload: str = "auto", file_id: str | None = None) -> str:
        """A ready command that retries this one document without creating a duplicate.

        `file_id`: the file this document was uploaded as; the retry names it, so the
        body is the one sent before (a second upload would be another file, and the key
        reused with another body is refused)."""
        import shlex

        args = ["retab", "partitions", "create", *_source(document, upload, file_id),
                *self._flags()]
        named = document.label in ("-", "data URL") or document.filename != _basename(document)
        if named and not (file_id or document.file_id):
            args += ["--filename", document.filename]
        if wait or self.background:
            args.append("--wait" if wait else "--background")
        args += ["--idempotency-key", idempotency_key]
        return shlex.join(args)

    def _flags(self) -> list[str]:
        flags = ["--key", self.key]
        if self.instructions:
            flags += ["--instructions", self.instructions]
        if self.model:
            flags += ["--model", self.model]
        if self.consensus is not None:
            flags += ["--consensus", str(self.consensus)]
        if self.no_overlap:
            flags.append("--no-overlap")
        if self.bust_cache:
            flags.append("--bust-cache")
        return flags


def _source(document: Document, upload: str, file_id: str | None) -> list[str]:
    """How a re-run names the document: the stored file, the URL, or the file again."""
    stored = file_id or document.file_id
    if stored:
        return ["--file-id", stored]
    if document.url:  # a URL (data: included) is the document itself
        return ["--url", document.url]
    return [document.label, *(["--upload", upload] if upload != "auto" else [])]


def _basename(document: Document) -> str:
    return document.path.name if document.path else document.filename


@dataclass(frozen=True)
class DocumentSource:
    """FILE arguments (or `-` for stdin), one --url or --file-id ids, and what to call them."""

    files: tuple[str, ...] = ()
    url: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    file_ids: tuple[str, ...] = ()

    def load(self, stdin: BinaryIO, warn: Callable[[str], None]) -> list[Document]:
        from retab_cli.documents import from_path, from_stdin, from_url

        files, name, mime = list(self.files), self.filename, self.mime_type
        if self.file_ids:
            return self._stored()
        if self.url is not None:
            if files:
                raise UsageError("give either FILE arguments or --url, not both")
            return [from_url(self.url, filename=name, mime_type=mime)]
        if not files:
            raise UsageError("no document given: pass FILE..., - for stdin, --url URL or "
                             "--file-id FILE_ID")
        if "-" in files and len(files) > 1:
            raise UsageError("'-' (stdin) cannot be combined with other files")
        if files == ["-"]:
            return [from_stdin(stdin, filename=name, mime_type=mime, warn=warn)]
        if name and len(files) > 1:
            raise UsageError("--filename needs a single document")
        return [from_path(f, filename=name, mime_type=mime, warn=warn) for f in files]

    def _stored(self) -> list[Document]:
        from retab_cli.documents import from_file_id

        if self.files or self.url is not None:
            raise UsageError("give FILE arguments, --url or --file-id, not several of them")
        if self.filename or self.mime_type:
            raise UsageError("--filename and --mime-type do not apply to --file-id: a stored "
                             "file keeps the name and type it was uploaded with")
        return [from_file_id(f) for f in self.file_ids]


@dataclass(frozen=True)
class Plan:
    """One invocation, checked: the shared options, the documents, their keys and how
    each one travels (`transports`: url, file, inline or upload, per `upload`)."""

    options: CreateOptions
    documents: list[Document]
    keys: list[str]  # one Idempotency-Key per document, reused on every retry
    deadline: float | None
    wait: bool
    upload: str = "auto"
    transports: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, options: CreateOptions, documents: list[Document], *,
             idempotency_key: str | None, deadline: float | None, wait: bool,
             upload: str = "auto") -> Plan:
        import secrets

        from retab_cli.documents import plan_transport

        _check_idempotency_key(idempotency_key, len(documents))
        envelope = options.envelope()
        transports = [plan_transport(d, upload, envelope=envelope) for d in documents]
        keys = [idempotency_key or secrets.token_hex(16) for _ in documents]
        return cls(options, documents, keys, deadline, wait, upload, transports)

    def how(self) -> str:
        """How the documents travel, when any is not inline: " (2 inline, 1 upload)"."""
        counts = {t: self.transports.count(t) for t in dict.fromkeys(self.transports)}
        if set(counts) <= {"inline"}:
            return ""
        return " (" + ", ".join(f"{n} {t}" for t, n in counts.items()) + ")"


def _check_idempotency_key(key: str | None, documents: int) -> None:
    if key is None:
        return
    if documents != 1:
        raise UsageError("--idempotency-key needs a single document")
    if not key.strip() or not key.isprintable():
        raise UsageError("--idempotency-key must be printable and not empty")


def auto_transports(options: CreateOptions, documents: Sequence[Document]) -> list[str]:
    """How each document travels under `--upload auto` (a plan made without a mode)."""
    from retab_cli.documents import plan_transport

    envelope = options.envelope()
    return [plan_transport(d, "auto", envelope=envelope) for d in documents]


Progress = Callable[[int, int], None]


def _ignore(*_: object) -> None:
    return None


@dataclass
class Delivery:
    """How each document reaches the API at send time: inline, uploaded through the files
    API (bytes and rate to `progress`), a stored file's link, or a URL as is; and the
    files uploaded on the way (`file_ids`, by document index) for the safe re-runs."""

    transports: Sequence[str]
    progress: Callable[[Document], Progress] = lambda _: _ignore
    notice: Callable[[str], None] = _ignore
    file_ids: dict[int, str] = field(default_factory=dict)

    def held(self, index: int, document: Document) -> int:
        """The bytes of this document in memory while it is sent (documents.bytes_held)."""
        from retab_cli.documents import bytes_held

        return bytes_held(document, self.transports[index])

    async def document(self, client: Client, index: int,
                       document: Document) -> dict[str, str] | None:
        """The `document` field, uploaded or looked up; None for the bytes inline."""
        from retab_cli import uploads

        transport = self.transports[index]
        if transport == "file" and document.file_id is not None:
            return await uploads.document_from_file_id(client, document.file_id)
        if transport != "upload":
            return None

        def stored(file_id: str) -> None:
            self.file_ids[index] = file_id

        return await uploads.upload(client, document, progress=self.progress(document),
                                    notice=self.notice, on_uploaded=stored)


@dataclass
class Creates:
    """One invocation's creates as they are sent: as the answers come, the runs and their
    exit codes (`tally`) and where every document stands (`ledger`), so a stop (an
    interrupt, a closed stdout) can say what was created and how to retry the rest."""

    plan: Plan
    ledger: Ledger = field(init=False)
    tally: Tally = field(init=False)
    delivery: Delivery = field(init=False)

    def __post_init__(self) -> None:
        from retab_cli.bulk import Ledger, Tally

        self.ledger = Ledger(range(len(self.plan.documents)))
        self.tally = Tally()
        plan = self.plan
        self.delivery = Delivery(plan.transports or auto_transports(plan.options,
                                                                     plan.documents))

    @property
    def single(self) -> bool:
        return len(self.plan.documents) == 1

    async def send(self, client: Client, out: Reporter, *,
                   each: Callable[[dict[str, Any]], None] | None = None,
                   advance: Callable[[str], None] | None = None) -> None:
        """Send every create: each failure reported through `out` (naming its document,
        with the safe retry when its outcome is unknown), each run kept and, in input
        order, given to `each`. A synchronous create is bounded whole by the plan's
        deadline (DEFAULT_SYNC_TIMEOUT without one)."""
        plan, tally = self.plan, self.tally
        tally.report = out.error

        def emit(outcome: Outcome) -> None:
            if outcome.error is not None:
                index = outcome.item
                explain_failure(outcome.error, plan.options, plan.documents[index],
                                plan.keys[index], plan.wait, upload=plan.upload,
                                file_id=self.delivery.file_ids.get(index))
                tally.failed(outcome.error)
                return
            tally.values.append(outcome.value)
            if not plan.options.background:
                tally.codes.append(errors.exit_for_status(str(outcome.value.get("status"))))
            if each is not None:
                each(outcome.value)

        sync = None if plan.options.background else (plan.deadline or DEFAULT_SYNC_TIMEOUT)
        await send_creates(client, plan.options, plan.documents, plan.keys, emit,
                           ledger=self.ledger, advance=advance, timeout=sync,
                           delivery=self.delivery)

    def report_stop(self, out: Reporter, why: str, *, ids_shown: bool) -> None:
        """`report_unfinished`, naming the runs created unless stdout showed them."""
        ids = [] if ids_shown else [str(v.get("id")) for v in self.tally.values]
        plan = self.plan
        report_unfinished(out, plan.options, plan.documents, plan.keys, self.ledger,
                          wait=plan.wait, why=why, created=ids, upload=plan.upload,
                          file_ids=self.delivery.file_ids)


def dry_run_requests(options: CreateOptions, documents: Sequence[Document],
                     keys: Sequence[str], transports: Sequence[str] | None = None
                     ) -> list[dict[str, Any]]:
    """The requests `send_creates` would send, one per document, each saying how its
    document travels (`transport`): inline bytes shown by their size, an upload by the
    session it would start, a stored file by the link it would ask for."""
    requests = []
    for index, (document, key) in enumerate(zip(documents, keys, strict=True)):
        transport = transports[index] if transports else ("url" if document.url else "inline")
        request: dict[str, Any] = {"method": "POST", "path": "/v1/partitions",
                                   "headers": {"Idempotency-Key": key},
                                   "body": _dry_body(options, document, transport),
                                   "transport": transport}
        if transport == "upload":
            request["upload"] = {"method": "POST", "path": "/v1/files/upload",
                                 "body": {"filename": document.filename,
                                          "content_type": document.mime_type,
                                          "size_bytes": document.size}}
        if transport == "file":
            request["file"] = {"method": "GET",
                               "path": f"/v1/files/{document.file_id}/download-link"}
        requests.append(request)
    return requests


def _dry_body(options: CreateOptions, document: Document, transport: str) -> dict[str, Any]:
    if transport == "upload":
        shown = {"filename": document.filename,
                 "url": f"<the MIMEData of the upload: {document.size} bytes>"}
    elif transport == "file":
        shown = {"filename": "<the stored file's>",
                 "url": f"<the MIMEData of {document.file_id}>"}
    elif document.url is not None and not document.url.startswith("data:"):
        shown = {"filename": document.filename, "url": document.url}
    else:  # the bytes inline (a data: URL is sent as given: its own header)
        head = (document.url.split(",", 1)[0] if document.url
                else f"data:{document.mime_type};base64")
        shown = {"filename": document.filename, "url": f"{head},<{document.size} bytes>"}
    return options.body(document, shown)


async def send_creates(client: Client, options: CreateOptions, documents: Sequence[Document],
                       keys: Sequence[str], emit: Callable[[Outcome], None], *,
                       ledger: Ledger, advance: Callable[[str], None] | None = None,
                       timeout: float | None = None, delivery: Delivery | None = None) -> None:
    """One create per document; `emit` gets each outcome (its item is the document's
    index) in input order. `ledger` (over the indexes) says, if it stops early, which
    creates were answered, in flight or never sent. `timeout` bounds each create whole,
    its retries included (a synchronous create's --timeout). `delivery` says how each
    document travels (default: inline, or its URL)."""
    import asyncio

    from retab_cli.bulk import IN_FLIGHT, NOT_SENT, ByteBudget, ordered

    if delivery is None:
        delivery = Delivery(auto_transports(options, documents))
    in_flight = ByteBudget(BYTES_IN_FLIGHT)

    async def one(index: int) -> dict[str, Any]:
        document = documents[index]
        async with in_flight.hold(delivery.held(index, document)):
            # While it is uploaded or looked up, no create has left: a stop there says
            # "not sent", not "outcome unknown".
            ledger.state[index] = NOT_SENT
            sent = await delivery.document(client, index, document)
            ledger.state[index] = IN_FLIGHT
            body = await asyncio.to_thread(options.body, document, sent)
            result = await client.create(body, idempotency_key=keys[index], timeout=timeout)
        if advance:
            advance(document.filename)
        return _run_of(result.data, result.request_id)

    await ordered(ledger.items, one, emit, limit=UPLOADS_AT_ONCE, ledger=ledger)


def _run_of(data: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """The run a create answered (an object: the client checks), or, when it has no id
    this tool can watch or name again, that document's own failure."""
    from retab_cli.client import validate_id

    run_id = data.get("id")
    try:
        validate_id(run_id if isinstance(run_id, str) else "")
    except UsageError:
        raise BadResponseError("unusable response: the partition object has no valid id",
                               request_id=request_id) from None
    return data


def report_unfinished(out: Reporter, options: CreateOptions, documents: Sequence[Document],
                      keys: Sequence[str], ledger: Ledger, *, wait: bool, why: str,
                      created: Sequence[str] = (), upload: str = "auto",
                      file_ids: Mapping[int, str] | None = None) -> None:
    """After a stop (interrupt, closed stdout): how many runs were created, then the safe
    re-run command of every document whose create was in flight (outcome unknown) or
    never sent. `created`: the ids, when stdout could not show them; `upload` and
    `file_ids` (the files uploaded, by index) as `CreateOptions.rerun` takes them. Longer
    lists go to a private file, a script that runs the commands (the ids in comments)."""
    from retab_cli.bulk import DONE, FAILED, HINT_IDS, IN_FLIGHT, NOT_SENT, save_private

    counts = [(len(ledger.indexes(FAILED)), "failed"),
              (len(ledger.indexes(IN_FLIGHT)), "outcome unknown (in flight)"),
              (len(ledger.indexes(NOT_SENT)), "not sent")]
    out.warn(f"{why}: created {len(ledger.indexes(DONE))} of {len(documents)} run(s)"
             + "".join(f"; {n} {what}" for n, what in counts if n))
    if created:
        out.warn(f"  created ({len(created)}): " + " ".join(created[:HINT_IDS])
                 + (" …" if len(created) > HINT_IDS else ""))
    commands = counts[1][0] + counts[2][0]
    lines = _rerun_lines(options, documents, keys, ledger, wait, upload, file_ids or {})
    if lines:
        out.warn(f"{why} before every create was answered; to retry safely (no duplicate "
                 "runs):")
    if commands <= HINT_IDS and len(created) <= HINT_IDS:
        for line in lines:
            out.warn(f"  {line}")
        return
    script = [f"# retab partitions create, {why}", *(f"# created: {i}" for i in created),
              *lines]
    saved = save_private("\n".join(script) + "\n", prefix="create-stopped-")
    if saved is None:  # no file to point at: everything on stderr, then
        for line in lines:
            out.warn(f"  {line}")
    elif commands:
        out.warn(f"  sh {saved}   (a private file: the {commands} command(s) and the ids "
                 "created)")
    else:
        out.warn(f"  every id created: {saved}")


def _rerun_lines(options: CreateOptions, documents: Sequence[Document], keys: Sequence[str],
                 ledger: Ledger, wait: bool, upload: str,
                 file_ids: Mapping[int, str]) -> list[str]:
    """The re-run commands of the creates not answered, under a # comment per kind."""
    from retab_cli.bulk import IN_FLIGHT, NOT_SENT

    lines = []
    for label, state in (("outcome unknown, in flight", IN_FLIGHT), ("not sent", NOT_SENT)):
        todo = ledger.indexes(state)
        if todo:
            lines.append(f"# {label} ({len(todo)})")
            lines.extend(options.rerun(documents[i], keys[i], wait, upload=upload,
                                       file_id=file_ids.get(i)) for i in todo)
    return lines


def explain_failure(error: RetabError, options: CreateOptions, document: Document, key: str,
                    wait: bool, *, upload: str = "auto", file_id: str | None = None) -> None:
    """Name the document in the error and, when the outcome is unknown, the safe retry."""
    error.file = document.label if document.label != "data URL" else document.filename
    # A 200 that is not a run may still have started one: the key makes a retry safe.
    if isinstance(error, OutcomeUnknownError | BadResponseError):
        error.hint = ("retry safely (no duplicate run) with: "
                      + options.rerun(document, key, wait, upload=upload, file_id=file_id))
    # An upload's or a stored file's error names the document already ("the upload of
    # scan.pdf failed", "file file_1: ..."); "-" is too short to tell.
    named = error.message.startswith(document.filename) or (
        len(error.file) > 1 and error.file in error.message)
    if not named:
        error.message = f"{error.file}: {error.message}"
