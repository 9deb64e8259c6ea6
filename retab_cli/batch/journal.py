"""The batch journal: one SQLite file recording every document and run, crash-safe.

Layout (schema version 1):
- `meta`: schema version, the parameters' canonical JSON and hash, sources, shard.
- `runs`: one row per (sha256, parameters hash, attempt), the unit the API is asked
  for: idempotency key, the filename and type sent (fixed by the first claim, so a
  resent create is the same request), partition id, status, chunks, credits, error,
  timestamps.
  Documents with identical bytes point at the same run ("the others point at it").
- `documents`: one row per relative path: source, size, mtime, sha256, type, pages,
  its run, local state and error, split outputs (directory and manifest sha256).
- `uploads`: the MIMEData of each uploaded file by sha256, reused across rows (§11).

Durability: WAL with `synchronous=NORMAL`, so each short transaction reaches the OS at
commit and survives the process being killed at any instant; only an OS crash or power
loss can drop the last ones. Claims alone commit with `synchronous=FULL` (an fsync):
a claim records that a create may be on the wire, which a resume after the service's
idempotency keys expired must know (`claim_sends` claims a group with one fsync). The
other writes are cheap to redo, and the key is derived, not random, so even a claim
lost with the power sends the same key again. Readers (`report` while a batch runs) never block the writer.
One writer at a time: a second batch on the same journal is refused (flock).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retab_cli.batch.hashing import Digest, LocalError
from retab_cli.batch.params import Params, canonical_json, differences
from retab_cli.batch.shard import WHOLE, Shard
from retab_cli.errors import UsageError
from retab_cli.statuses import TERMINAL

SCHEMA_VERSION = 1
# Run states before the API knows of the run; after it, the API's own statuses.
UNSENT, SENDING = "unsent", "sending"
# Document states of its own (before a run, or instead of one).
DISCOVERED, HASHED, LOCAL_ERROR = "discovered", "hashed", "local_error"
RETRYABLE = frozenset({"failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT PRIMARY KEY, mime_data TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, params_hash TEXT NOT NULL,
    attempt INTEGER NOT NULL, owner TEXT, idempotency_key TEXT, filename TEXT,
    mime_type TEXT, partition_id TEXT,
    status TEXT NOT NULL, chunks INTEGER, credits REAL, error_code TEXT,
    error_message TEXT, claimed_at TEXT, sent_at TEXT, finished_at TEXT,
    updated_at TEXT NOT NULL, UNIQUE (sha256, params_hash, attempt));
CREATE INDEX IF NOT EXISTS runs_partition ON runs (partition_id);
CREATE TABLE IF NOT EXISTS documents (
    relpath TEXT PRIMARY KEY, source TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
    sha256 TEXT, mime_type TEXT, pages INTEGER, run_id INTEGER REFERENCES runs (id),
    state TEXT NOT NULL, error_code TEXT, error_message TEXT, split_dir TEXT,
    manifest_sha256 TEXT, split_at TEXT, discovered_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_run ON documents (run_id);
"""

_ROW_SQL = """
SELECT d.relpath, d.source, d.size, d.mtime_ns, d.sha256, d.mime_type, d.pages,
       d.state, d.error_code AS local_code, d.error_message AS local_message,
       d.split_dir, d.manifest_sha256, d.updated_at AS document_updated_at,
       r.id AS run_id, r.attempt, r.owner, r.idempotency_key, r.partition_id,
       r.status AS run_status, r.chunks, r.credits, r.error_code AS run_code,
       r.error_message AS run_message, r.claimed_at, r.sent_at, r.finished_at,
       r.updated_at AS run_updated_at
FROM documents d LEFT JOIN runs r ON r.id = d.run_id
"""


def idempotency_key(sha256: str, params_hash: str, attempt: int, filename: str) -> str:
    """The create's Idempotency-Key, a pure function of what is sent and the attempt.

    The filename is part of the request, so it is part of the key: shards (journals that
    know nothing of each other) sending the same bytes under another name send another
    request, which must not reuse the key (the service would answer 409)."""
    seed = f"{sha256}:{params_hash}:{attempt}:{filename}".encode("utf-8", "surrogateescape")
    return "retab-batch-" + hashlib.sha256(seed).hexdigest()[:32]


def basename(relpath: str) -> str:
    """The filename a document is sent with: its relative path's last part."""
    return relpath.rsplit("/", 1)[-1]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Row:
    """One document with its run (when it has one), as the journal holds them."""

    relpath: str
    source: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    mime_type: str | None
    pages: int | None
    state: str
    local_code: str | None
    local_message: str | None
    split_dir: str | None
    manifest_sha256: str | None
    document_updated_at: str
    run_id: int | None
    attempt: int | None
    owner: str | None
    idempotency_key: str | None
    partition_id: str | None
    run_status: str | None
    chunks: int | None
    credits: float | None
    run_code: str | None
    run_message: str | None
    claimed_at: str | None
    sent_at: str | None
    finished_at: str | None
    run_updated_at: str | None

    @property
    def status(self) -> str:
        """discovered, hashed, local_error, sending, an API status (queued, ...)."""
        if self.state != HASHED or self.run_status is None:
            return self.state
        return HASHED if self.run_status == UNSENT else self.run_status

    @property
    def error_code(self) -> str | None:
        return self.local_code if self.state == LOCAL_ERROR else self.run_code

    @property
    def error_message(self) -> str | None:
        return self.local_message if self.state == LOCAL_ERROR else self.run_message

    @property
    def duplicate(self) -> bool:
        """Another document with the same bytes owns this row's run."""
        return self.run_id is not None and self.owner != self.relpath

    @property
    def updated_at(self) -> str:
        return max(self.document_updated_at, self.run_updated_at or "")

    def unchanged(self, size: int, mtime_ns: int) -> bool:
        """Same size and mtime as when hashed: the caller may skip hashing it again."""
        return self.sha256 is not None and (self.size, self.mtime_ns) == (size, mtime_ns)


def default_path(sources: list[str], params: Params, shard: Shard = WHOLE,
                 env: Mapping[str, str] = os.environ) -> Path:
    """XDG_DATA_HOME/retab/batch/<hash of resolved sources, parameters, shard>.sqlite3.

    The sources are resolved and sorted, so `a b` and `./b a` share one journal.
    """
    resolved = sorted({s if s == "-" else os.path.realpath(s) for s in sources})
    seed = canonical_json({"sources": resolved, "params": params.as_dict(),
                           "shard": shard.label})
    name = hashlib.sha256(seed.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "retab" / "batch" / f"{name}.sqlite3"


class Journal:
    """The journal of one batch; open with `Journal.open` (writer) or `Journal.read`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, writer: bool,
                 now: Callable[[], str] = utc_now) -> None:
        self.path = path
        self._conn = conn
        self._writer = writer
        self._now = now
        self._lock_fd: int | None = None
        self._retried: set[str] = set()
        self.meta = self._read_meta()
        self.params_hash = self.meta.get("params_hash", "")

    # -- opening and closing -------------------------------------------------------

    @classmethod
    def open(cls, path: Path, params: Params, *, sources: list[str], shard: Shard = WHOLE,
             now: Callable[[], str] = utc_now) -> Journal:
        """Create or reopen the journal for these parameters; refuse another batch's."""
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path, read_only=False)
        journal = cls(path, conn, writer=True, now=now)
        try:
            journal._lock()
            journal._prepare(params, sources, shard)
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def read(cls, path: Path) -> Journal:
        """A read-only view (for `report`), safe while a batch writes the same file."""
        if not path.is_file():
            raise UsageError(f"no such journal: {path}", file=str(path))
        journal = cls(path, _connect(path, read_only=True), writer=False)
        try:
            journal._check_schema()
        except BaseException:
            journal.close()
            raise
        return journal

    def close(self) -> None:
        """Fold the WAL back into the file, so a copied journal (a CI artifact) is whole."""
        if self._writer:
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("PRAGMA journal_mode=DELETE")
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one writer is on the user
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError(f"journal {self.path} is in use by another batch",
                             file=str(self.path),
                             hint="wait for it to finish, or use another --journal") from None
        self._lock_fd = fd

    def _prepare(self, params: Params, sources: list[str], shard: Shard) -> None:
        tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables and not self.meta:
            raise UsageError(f"{self.path} is an SQLite file but not a batch journal",
                             file=str(self.path), hint="use another --journal")
        if self.meta:
            self._check_schema()  # before touching tables another version may lay out
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            if not self._read_meta():
                self._write_meta(params, sources, shard)
        self.meta = self._read_meta()
        self._check_schema()
        self.check_match(params, shard)
        self.params_hash = self.meta["params_hash"]

    def _write_meta(self, params: Params, sources: list[str], shard: Shard) -> None:
        values = {"schema_version": str(SCHEMA_VERSION), "params": params.canonical(),
                  "params_hash": params.digest(), "sources": canonical_json(sources),
                  "shard": shard.label, "created_at": self._now()}
        self._conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                               values.items())

    def _read_meta(self) -> dict[str, str]:
        try:
            return dict(self._conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.OperationalError:  # a new file: no tables yet
            return {}

    def _check_schema(self) -> None:
        version = self.meta.get("schema_version")
        if version is None:
            raise UsageError(f"{self.path} is not a batch journal", file=str(self.path))
        if version != str(SCHEMA_VERSION):
            raise UsageError(f"journal {self.path} has schema version {version}; this "
                             f"retab reads version {SCHEMA_VERSION}", file=str(self.path),
                             hint="use the retab-cli that wrote it, or another --journal")

    def check_match(self, params: Params, shard: Shard) -> None:
        """Refuse parameters or a shard other than the ones this journal was written for."""
        theirs = self.meta["params_hash"]
        if theirs != params.digest():
            changed = "; ".join(differences(json.loads(self.meta["params"]), params.as_dict()))
            raise UsageError(
                f"journal {self.path} was written with other parameters (hash "
                f"{theirs[:12]} there, {params.digest()[:12]} here): {changed}",
                file=str(self.path), hint="use another --journal (or the same parameters)")
        if self.meta.get("shard", WHOLE.label) != shard.label:
            raise UsageError(f"journal {self.path} belongs to shard {self.meta['shard']}, "
                             f"not {shard.label}", file=str(self.path),
                             hint="use another --journal for this shard")

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A short write transaction; `durable` adds an fsync at commit."""
        if durable:
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            if durable:
                self._conn.execute("PRAGMA synchronous=NORMAL")

    # -- documents -------------------------------------------------------------------

    def discover(self, relpath: str, source: str) -> None:
        """A document found, not read yet (a row that already exists is left as it is)."""
        now = self._now()
        with self._transaction() as db:
            db.execute("INSERT INTO documents (relpath, source, state, discovered_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (relpath) DO NOTHING",
                       (relpath, source, DISCOVERED, now, now))

    def record_digest(self, relpath: str, source: str, digest: Digest, *,
                      retry_failed: bool = False) -> Row:
        """The document as read now, linked to the run its bytes and parameters call for.

        Same bytes as journaled: the row keeps its run (and its split outputs). Changed
        bytes are a new version: the run of the new sha256 (one more attempt's, or the
        run another path with those bytes already has). `retry_failed` gives a failed or
        cancelled run's bytes one new attempt per journal session.
        """
        with self._transaction() as db:
            old = db.execute("SELECT sha256, run_id FROM documents WHERE relpath = ?",
                             (relpath,)).fetchone()
            run_id = self._run_for(digest.sha256, relpath, retry_failed)
            keep_split = old is not None and tuple(old) == (digest.sha256, run_id)
            self._upsert(relpath, source, digest, run_id, keep_split)
            if old is not None and old[1] is not None and old[1] != run_id:
                self._release(old[1], relpath)
        return self._required_row(relpath)

    def record_local_error(self, relpath: str, source: str, error: LocalError) -> Row:
        """The document cannot be sent (unreadable, empty, unsupported, ...)."""
        now = self._now()
        with self._transaction() as db:
            old = db.execute("SELECT run_id FROM documents WHERE relpath = ?",
                             (relpath,)).fetchone()
            db.execute(
                "INSERT INTO documents (relpath, source, state, error_code, error_message, "
                "discovered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (relpath) DO UPDATE SET source = excluded.source, size = NULL, "
                "mtime_ns = NULL, sha256 = NULL, mime_type = NULL, pages = NULL, "
                "run_id = NULL, state = excluded.state, error_code = excluded.error_code, "
                "error_message = excluded.error_message, split_dir = NULL, "
                "manifest_sha256 = NULL, split_at = NULL, updated_at = excluded.updated_at",
                (relpath, source, LOCAL_ERROR, error.code, error.message, now, now))
            if old is not None and old[0] is not None:
                self._release(old[0], relpath)
        return self._required_row(relpath)

    def record_split(self, relpath: str, split_dir: str, manifest_sha256: str) -> None:
        """The chunk files and manifest of the document's completed run are written."""
        now = self._now()
        with self._transaction() as db:
            db.execute("UPDATE documents SET split_dir = ?, manifest_sha256 = ?, split_at = ?, "
                       "updated_at = ? WHERE relpath = ?",
                       (split_dir, manifest_sha256, now, now, relpath))

    def _upsert(self, relpath: str, source: str, digest: Digest, run_id: int,
                keep_split: bool) -> None:
        now = self._now()
        keep = "documents.{0}" if keep_split else "NULL"
        self._conn.execute(
            "INSERT INTO documents (relpath, source, size, mtime_ns, sha256, mime_type, pages, "
            "run_id, state, discovered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (relpath) DO UPDATE SET source = excluded.source, "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
            "mime_type = excluded.mime_type, pages = excluded.pages, run_id = excluded.run_id, "
            "state = excluded.state, error_code = NULL, error_message = NULL, "
            f"split_dir = {keep.format('split_dir')}, "
            f"manifest_sha256 = {keep.format('manifest_sha256')}, "
            f"split_at = {keep.format('split_at')}, updated_at = excluded.updated_at",
            (relpath, source, digest.size, digest.mtime_ns, digest.sha256, digest.mime_type,
             digest.pages, run_id, HASHED, now, now))

    # -- runs --------------------------------------------------------------------------

    def _run_for(self, sha256: str, relpath: str, retry_failed: bool) -> int:
        latest = self._conn.execute(
            "SELECT id, attempt, status, owner FROM runs WHERE sha256 = ? AND params_hash = ? "
            "ORDER BY attempt DESC LIMIT 1", (sha256, self.params_hash)).fetchone()
        if latest is None:
            return self._new_run(sha256, 1, relpath)
        run_id, attempt, status, owner = latest
        if retry_failed and status in RETRYABLE and sha256 not in self._retried:
            self._retried.add(sha256)
            return self._new_run(sha256, attempt + 1, relpath)
        if owner is None:
            self._conn.execute("UPDATE runs SET owner = ? WHERE id = ?", (relpath, run_id))
        return int(run_id)

    def _new_run(self, sha256: str, attempt: int, owner: str) -> int:
        cursor = self._conn.execute(
            "INSERT INTO runs (sha256, params_hash, attempt, owner, status, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (sha256, self.params_hash, attempt, owner, UNSENT, self._now()))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _release(self, run_id: int, relpath: str) -> None:
        """A document left the run: if it owned it, another document of the run does."""
        self._conn.execute(
            "UPDATE runs SET owner = (SELECT relpath FROM documents WHERE run_id = ?1 "
            "ORDER BY relpath LIMIT 1) WHERE id = ?1 AND owner = ?2", (run_id, relpath))

    def claim_send(self, row: Row) -> str:
        """Commit (with an fsync) the run's Idempotency-Key before its create is sent.

        Killed at any instant after this, the next process gets the same key back, so
        the service replays the run it already made instead of making a second one.
        """
        return self.claim_sends([row])[0]

    def claim_sends(self, rows: Sequence[Row]) -> list[str]:
        """`claim_send` for several rows in one transaction: one fsync for all of them,
        for a sender that has a group of creates ready to go."""
        missing = [row.relpath for row in rows if row.run_id is None]
        if missing:
            raise ValueError(f"{missing[0]} has no run to send")
        with self._transaction(durable=True) as db:
            return [self._claim(db, row) for row in rows]

    def _claim(self, db: sqlite3.Connection, row: Row) -> str:
        sha256, params_hash, attempt, stored = db.execute(
            "SELECT sha256, params_hash, attempt, idempotency_key FROM runs WHERE id = ?",
            (row.run_id,)).fetchone()
        filename = basename(row.relpath)
        key = str(stored or idempotency_key(sha256, params_hash, attempt, filename))
        now = self._now()
        db.execute("UPDATE runs SET idempotency_key = ?, status = CASE WHEN status = ? "
                   "THEN ? ELSE status END, claimed_at = COALESCE(claimed_at, ?), "
                   "filename = COALESCE(filename, ?), mime_type = COALESCE(mime_type, ?), "
                   "updated_at = ? WHERE id = ?",
                   (key, UNSENT, SENDING, now, filename, row.mime_type, now, row.run_id))
        return key

    def sent_as(self, run_id: int) -> tuple[str, str]:
        """The filename and MIME type a claimed run is sent with, whichever document of
        its bytes claimed it first: every resend of its key is the same request."""
        filename, mime_type = self._conn.execute(
            "SELECT filename, mime_type FROM runs WHERE id = ?", (run_id,)).fetchone()
        if filename is None or mime_type is None:
            raise ValueError(f"run {run_id} is not claimed")
        return str(filename), str(mime_type)

    def record_created(self, run_id: int, partition_id: str, status: str) -> None:
        """The create answered: the run's id on the service and its first status."""
        self._update_run(run_id, status, partition_id=partition_id)

    def record_status(self, run_id: int, status: str, *, credits: float | None = None,
                      chunks: int | None = None, error_code: str | None = None,
                      error_message: str | None = None) -> None:
        """A status seen while watching, or the outcome of a finished run."""
        self._update_run(run_id, status, credits=credits, chunks=chunks,
                         error_code=error_code, error_message=error_message)

    def _update_run(self, run_id: int, status: str, *, partition_id: str | None = None,
                    credits: float | None = None, chunks: int | None = None,
                    error_code: str | None = None, error_message: str | None = None) -> None:
        now = self._now()
        finished = now if status in TERMINAL else None
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, partition_id = COALESCE(?, partition_id), "
                "sent_at = CASE WHEN ? IS NULL THEN sent_at ELSE COALESCE(sent_at, ?) END, "
                "credits = COALESCE(?, credits), chunks = COALESCE(?, chunks), "
                "error_code = ?, error_message = ?, "
                "finished_at = COALESCE(finished_at, ?), updated_at = ? WHERE id = ?",
                (status, partition_id, partition_id, now, credits, chunks, error_code,
                 error_message, finished, now, run_id))

    def latest_run_status(self, sha256: str) -> str | None:
        """The status of the run these bytes would join (the plan of `--dry-run`)."""
        found = self._conn.execute(
            "SELECT status FROM runs WHERE sha256 = ? AND params_hash = ? "
            "ORDER BY attempt DESC LIMIT 1", (sha256, self.params_hash)).fetchone()
        return None if found is None else str(found[0])

    def in_flight(self) -> Iterator[tuple[int, str]]:
        """(run id, partition id) of every run created and not finished (unknown statuses
        included: they are watched until they end)."""
        marks = ", ".join("?" * len(TERMINAL))
        yield from self._conn.execute(
            f"SELECT id, partition_id FROM runs WHERE partition_id IS NOT NULL AND status "
            f"NOT IN ({marks}) ORDER BY id", tuple(sorted(TERMINAL)))

    # -- uploads -----------------------------------------------------------------------

    def record_upload(self, sha256: str, mime_data: Mapping[str, Any]) -> None:
        """An uploaded file's durable MIMEData, reused by every row with these bytes."""
        with self._transaction() as db:
            db.execute("INSERT INTO uploads (sha256, mime_data, created_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (sha256) DO UPDATE SET mime_data = excluded.mime_data",
                       (sha256, canonical_json(dict(mime_data)), self._now()))

    def upload(self, sha256: str) -> dict[str, Any] | None:
        found = self._conn.execute("SELECT mime_data FROM uploads WHERE sha256 = ?",
                                   (sha256,)).fetchone()
        return None if found is None else dict(json.loads(found[0]))

    # -- reading -----------------------------------------------------------------------

    def row(self, relpath: str) -> Row | None:
        found = self._conn.execute(_ROW_SQL + " WHERE d.relpath = ?", (relpath,)).fetchone()
        return None if found is None else Row(*found)

    def documents_of(self, run_id: int) -> list[Row]:
        """The documents pointing at a run (one, or several with identical bytes)."""
        return [Row(*found) for found in self._conn.execute(
            _ROW_SQL + " WHERE d.run_id = ? ORDER BY d.relpath", (run_id,))]

    def _required_row(self, relpath: str) -> Row:
        row = self.row(relpath)
        assert row is not None, relpath
        return row

    def rows(self) -> Iterator[Row]:
        """Every document, by relative path, read in pages (memory stays flat)."""
        cursor = self._conn.execute(_ROW_SQL + " ORDER BY d.relpath")
        while batch := cursor.fetchmany(500):
            yield from (Row(*found) for found in batch)


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    target = f"file:{_uri_path(path)}?mode={'ro' if read_only else 'rwc'}"
    try:
        conn = sqlite3.connect(target, uri=True, isolation_level=None, timeout=10.0)
        conn.execute("PRAGMA busy_timeout = 10000")
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"cannot open journal {path}: {exc}", file=str(path),
                         hint="is it a batch journal? use another --journal") from None
    return conn


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.absolute()), safe="/")
