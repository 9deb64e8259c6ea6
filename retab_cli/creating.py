"""Starting partition runs: the request body, the documents, the sends, the safe retry.

`CreateOptions` is what every run of one invocation shares (`create` now, `batch`
next); `DocumentSource` says where the documents come from; `send_creates` posts one
request per document (bounded by count and by bytes in flight, one Idempotency-Key
each, results in input order); `rerun` is the ready command that retries one document
without creating a duplicate run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from retab_cli.errors import OutcomeUnknownError, RetabError, UsageError

if TYPE_CHECKING:
    from retab_cli.bulk import Outcome
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
        args = ["retab", "partitions", "create", *source, *self._flags()]
        if document.label in ("-", "data URL") or document.filename != _basename(document):
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


def _basename(document: Document) -> str:
    return document.path.name if document.path else document.filename


@dataclass(frozen=True)
class DocumentSource:
    """FILE arguments (or `-` for stdin) or one --url, and what to call them."""

    files: tuple[str, ...] = ()
    url: str | None = None
    filename: str | None = None
    mime_type: str | None = None

    def load(self, stdin: BinaryIO, warn: Callable[[str], None]) -> list[Document]:
        from retab_cli.documents import from_path, from_stdin, from_url

        files, name, mime = list(self.files), self.filename, self.mime_type
        if self.url is not None:
            if files:
                raise UsageError("give either FILE arguments or --url, not both")
            return [from_url(self.url, filename=name, mime_type=mime)]
        if not files:
            raise UsageError("no document given: pass FILE..., - for stdin, or --url URL")
        if "-" in files and len(files) > 1:
            raise UsageError("'-' (stdin) cannot be combined with other files")
        if files == ["-"]:
            return [from_stdin(stdin, filename=name, mime_type=mime, warn=warn)]
        if name and len(files) > 1:
            raise UsageError("--filename needs a single document")
        return [from_path(f, filename=name, mime_type=mime, warn=warn) for f in files]


@dataclass(frozen=True)
class Plan:
    """One invocation, checked: the shared options, the documents and their keys."""

    options: CreateOptions
    documents: list[Document]
    keys: list[str]  # one Idempotency-Key per document, reused on every retry
    deadline: float | None
    wait: bool

    @classmethod
    def make(cls, options: CreateOptions, documents: list[Document], *,
             idempotency_key: str | None, deadline: float | None, wait: bool) -> Plan:
        import secrets

        _check_idempotency_key(idempotency_key, len(documents))
        keys = [idempotency_key or secrets.token_hex(16) for _ in documents]
        return cls(options, documents, keys, deadline, wait)


def _check_idempotency_key(key: str | None, documents: int) -> None:
    if key is None:
        return
    if documents != 1:
        raise UsageError("--idempotency-key needs a single document")
    if not key.strip() or not key.isprintable():
        raise UsageError("--idempotency-key must be printable and not empty")


def dry_run_requests(options: CreateOptions, documents: Sequence[Document],
                     keys: Sequence[str]) -> list[dict[str, Any]]:
    """The requests `send_creates` would send, with inline bytes shown by their size."""
    requests = []
    for document, key in zip(documents, keys, strict=True):
        body = options.body(document)
        shown = body["document"]["url"]
        if shown.startswith("data:"):
            head = shown.split(",", 1)[0]
            body["document"]["url"] = f"{head},<{document.size} bytes>"
        requests.append({"method": "POST", "path": "/v1/partitions",
                         "headers": {"Idempotency-Key": key}, "body": body})
    return requests


async def send_creates(client: Client, options: CreateOptions, documents: Sequence[Document],
                       keys: Sequence[str], emit: Callable[[Outcome], None], *,
                       answered: set[int], advance: Callable[[str], None] | None = None) -> None:
    """One create per document; `emit` gets each outcome (its item is the document's
    index) in input order, `answered` the indexes the server answered."""
    import asyncio

    from retab_cli.bulk import ByteBudget, ordered

    in_flight = ByteBudget(BYTES_IN_FLIGHT)

    async def one(index: int) -> dict[str, Any]:
        document = documents[index]
        async with in_flight.hold(document.size or 0):
            body = await asyncio.to_thread(options.body, document)
            result = await client.create(body, idempotency_key=keys[index])
        answered.add(index)
        if advance:
            advance(document.filename)
        data: dict[str, Any] = result.data
        return data

    await ordered(list(range(len(documents))), one, emit, limit=UPLOADS_AT_ONCE)


def explain_failure(error: RetabError, options: CreateOptions, document: Document, key: str,
                    wait: bool) -> None:
    """Name the document in the error and, when the outcome is unknown, the safe retry."""
    error.file = document.label if document.label != "data URL" else document.filename
    if isinstance(error, OutcomeUnknownError):
        error.hint = ("retry safely (no duplicate run) with: "
                      + options.rerun(document, key, wait))
    if not error.message.startswith(document.filename):
        error.message = f"{error.file}: {error.message}"
