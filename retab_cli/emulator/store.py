"""SQLite storage for partition runs, idempotency keys and uploaded files.

One connection guarded by a lock serves every thread (`:memory:` needs exactly one
shared connection anyway); files use WAL. Runs are ordered by `(created_us, id)`
and listed with keyset cursors over an index, so paging through 50,000 rows stays
fast and stable while new rows arrive. Deleted runs keep a tombstone row: a cursor
pointing at a deleted id still positions the page.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS partitions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    filename_lower TEXT NOT NULL,
    queued_until_us INTEGER NOT NULL,
    done_us INTEGER,
    final_status TEXT NOT NULL,
    deleted_us INTEGER,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS partitions_by_owner_time ON partitions (owner, created_us, id);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    uploaded_size INTEGER,
    uploaded_sha256 TEXT,
    completed_us INTEGER,
    mime_type TEXT,
    page_count INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_digest ON files (uploaded_sha256);
"""

_COLUMNS = "id, owner, created_us, filename_lower, queued_until_us, done_us, final_status, record"


@dataclass(frozen=True)
class Run:
    id: str
    owner: str
    created_us: int
    filename_lower: str
    queued_until_us: int
    done_us: int | None  # None: never finishes (a "stuck" run)
    final_status: str
    record: str  # the Partition's stored fields as JSON text


@dataclass(frozen=True)
class ListQuery:
    limit: int = 10
    order: str = "desc"
    before: str | None = None
    after: str | None = None
    filename: str | None = None
    status: str | None = None
    from_us: int | None = None
    to_us: int | None = None  # exclusive


@dataclass(frozen=True)
class Page:
    runs: list[Run]
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Replay:
    fingerprint: str
    status: int
    body: bytes


@dataclass(frozen=True)
class FileRecord:
    """An upload session, and once completed, the stored file."""

    id: str
    owner: str
    filename: str
    content_type: str
    size_bytes: int  # as declared at upload
    sha256: str | None  # as declared at upload
    created_us: int
    expires_us: int  # the end of the upload session
    uploaded_size: int | None = None  # the last PUT that arrived whole
    uploaded_sha256: str | None = None
    completed_us: int | None = None
    mime_type: str | None = None
    page_count: int | None = None


_FILE_COLUMNS = ", ".join(FileRecord.__dataclass_fields__)


class UnknownCursor(LookupError):
    """A before/after id this owner never had."""


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "retab" / "emulator.sqlite3"


class Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            parent = Path(path).expanduser().parent
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # Runs

    def insert(self, runs: Iterable[Run]) -> int:
        rows = [
            (
                r.id,
                r.owner,
                r.created_us,
                r.filename_lower,
                r.queued_until_us,
                r.done_us,
                r.final_status,
                r.record,
            )
            for r in runs
        ]
        with self._transaction() as db:
            db.executemany(f"INSERT INTO partitions ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def get(self, owner: str, run_id: str) -> Run | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM partitions WHERE id = ? AND owner = ? AND deleted_us IS NULL",
                (run_id, owner),
            ).fetchone()
        return Run(*row) if row else None

    def cancel(self, owner: str, run_id: str, now: int) -> Run | None:
        """Cancel a run that has not ended yet; a terminal run stays as it is."""
        with self._transaction() as db:
            db.execute(
                "UPDATE partitions SET final_status = 'cancelled', done_us = ?,"
                " queued_until_us = MIN(queued_until_us, ?)"
                " WHERE id = ? AND owner = ? AND deleted_us IS NULL"
                " AND (done_us IS NULL OR done_us > ?)",
                (now, now, run_id, owner, now),
            )
            row = db.execute(
                f"SELECT {_COLUMNS} FROM partitions WHERE id = ? AND owner = ? AND deleted_us IS NULL",
                (run_id, owner),
            ).fetchone()
        return Run(*row) if row else None

    def delete(self, owner: str, run_id: str, now: int) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE partitions SET deleted_us = ?, record = '{}'"
                " WHERE id = ? AND owner = ? AND deleted_us IS NULL",
                (now, run_id, owner),
            )
        return cursor.rowcount == 1

    def list_page(self, owner: str, query: ListQuery, now: int) -> Page:
        filters, params = _filters(owner, query, now)
        with self._lock:
            runs = self._page(filters, params, owner, query)
            if not runs:
                return Page(runs=[], before=None, after=None)
            descending = query.order == "desc"
            # `before`: the first id, when something precedes it (pass it as `before`
            # to get the previous page); `after`: the last id, when more follow.
            earlier = self._exists(filters, params, runs[0], "<" if not descending else ">")
            later = self._exists(filters, params, runs[-1], "<" if descending else ">")
        return Page(
            runs=runs,
            before=runs[0].id if earlier else None,
            after=runs[-1].id if later else None,
        )

    def _page(self, filters: list[str], params: list[object], owner: str, q: ListQuery) -> list[Run]:
        descending = q.order == "desc"
        cursor_id = q.after if q.after is not None else q.before
        backwards = q.after is None and q.before is not None
        conditions, values = list(filters), list(params)
        # Walk the index away from the cursor: `after` goes on in display order,
        # `before` goes back (the rows nearest the cursor first, flipped afterwards).
        smaller_first = descending != backwards
        if cursor_id is not None:
            created, key = self._cursor(owner, cursor_id)
            conditions.append(f"(created_us, id) {'<' if smaller_first else '>'} (?, ?)")
            values += [created, key]
        direction = "DESC" if smaller_first else "ASC"
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM partitions WHERE {' AND '.join(conditions)}"
            f" ORDER BY created_us {direction}, id {direction} LIMIT ?",
            [*values, q.limit],
        ).fetchall()
        runs = [Run(*row) for row in rows]
        return runs[::-1] if backwards else runs

    def _cursor(self, owner: str, run_id: str) -> tuple[int, str]:
        # Tombstones count: a page may end at a run deleted since.
        row = self._db.execute(
            "SELECT created_us, id FROM partitions WHERE id = ? AND owner = ?", (run_id, owner)
        ).fetchone()
        if row is None:
            raise UnknownCursor(run_id)
        return row[0], row[1]

    def _exists(self, filters: list[str], params: list[object], run: Run, comparison: str) -> bool:
        sql = (
            f"SELECT 1 FROM partitions WHERE {' AND '.join(filters)}"
            f" AND (created_us, id) {comparison} (?, ?) LIMIT 1"
        )
        return self._db.execute(sql, [*params, run.created_us, run.id]).fetchone() is not None

    def count(self, owner: str | None = None) -> int:
        with self._lock:
            if owner is None:
                row = self._db.execute("SELECT COUNT(*) FROM partitions WHERE deleted_us IS NULL")
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM partitions WHERE owner = ? AND deleted_us IS NULL", (owner,)
                )
            return int(row.fetchone()[0])

    # Idempotency keys

    def replay(self, owner: str, key: str, since_us: int) -> Replay | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, status, body FROM idempotency"
                " WHERE owner = ? AND key = ? AND created_us >= ?",
                (owner, key, since_us),
            ).fetchone()
        return Replay(row[0], row[1], bytes(row[2])) if row else None

    def remember(self, owner: str, key: str, replay: Replay, now: int, expired_us: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM idempotency WHERE created_us < ?", (expired_us,))
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?,?,?,?,?,?)",
                (owner, key, replay.fingerprint, replay.status, replay.body, now),
            )

    # Files

    def insert_file(self, record: FileRecord) -> None:
        values = [getattr(record, name) for name in FileRecord.__dataclass_fields__]
        with self._transaction() as db:
            db.execute(f"INSERT INTO files ({_FILE_COLUMNS}) VALUES ({','.join('?' * len(values))})", values)

    def file(self, file_id: str, owner: str | None = None) -> FileRecord | None:
        """The file or upload session; `owner` None for a signed URL, which any holder may use."""
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?"
        params: list[object] = [file_id]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return FileRecord(*row) if row else None

    def file_uploaded(self, file_id: str, size: int, sha256: str) -> str | None:
        """Note a PUT that arrived whole; the digest of the one it replaces, if other."""
        with self._transaction() as db:
            row = db.execute("SELECT uploaded_sha256 FROM files WHERE id = ?", (file_id,)).fetchone()
            db.execute(
                "UPDATE files SET uploaded_size = ?, uploaded_sha256 = ?"
                " WHERE id = ? AND completed_us IS NULL",
                (size, sha256, file_id),
            )
        previous: str | None = row[0] if row else None
        return previous if previous != sha256 else None

    def file_completed(self, file_id: str, now: int, mime_type: str, page_count: int | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE files SET completed_us = ?, mime_type = ?, page_count = ? WHERE id = ?",
                (now, mime_type, page_count, file_id),
            )

    def drop_expired_uploads(self, now: int) -> list[str]:
        """Forget upload sessions that expired before completing; the digests they held."""
        expired = "completed_us IS NULL AND expires_us <= ?"
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT uploaded_sha256 FROM files WHERE {expired} AND uploaded_sha256 IS NOT NULL", (now,)
            ).fetchall()
            db.execute(f"DELETE FROM files WHERE {expired}", (now,))
        return [row[0] for row in rows]

    def unreferenced(self, digests: Iterable[str]) -> list[str]:
        """The digests no file or session holds any more (their blobs can go)."""
        held = "SELECT 1 FROM files WHERE uploaded_sha256 = ? LIMIT 1"
        with self._lock:
            return [d for d in dict.fromkeys(digests) if self._db.execute(held, (d,)).fetchone() is None]

    def reset(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM partitions")
            db.execute("DELETE FROM idempotency")
            db.execute("DELETE FROM files")


def _filters(owner: str, q: ListQuery, now: int) -> tuple[list[str], list[object]]:
    conditions = ["owner = ?", "deleted_us IS NULL"]
    params: list[object] = [owner]
    if q.filename:
        prefix = q.filename.lower()
        conditions.append("substr(filename_lower, 1, ?) = ?")
        params += [len(prefix), prefix]
    if q.from_us is not None:
        conditions.append("created_us >= ?")
        params.append(q.from_us)
    if q.to_us is not None:
        conditions.append("created_us < ?")
        params.append(q.to_us)
    if q.status is not None:
        condition, values = _status_condition(q.status, now)
        conditions.append(condition)
        params += values
    return conditions, params


def _status_condition(status: str, now: int) -> tuple[str, list[object]]:
    """The SQL twin of lifecycle.derive_status for one status."""
    if status == "queued":
        return "queued_until_us > ?", [now]
    if status == "in_progress":
        return "queued_until_us <= ? AND (done_us IS NULL OR done_us > ?)", [now, now]
    if status == "pending":
        return "0", []
    return "done_us <= ? AND final_status = ?", [now, status]
