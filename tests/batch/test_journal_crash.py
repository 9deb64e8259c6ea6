"""Crash safety: a process SIGKILLed after claiming a send leaves the same key behind."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from retab_cli.batch.hashing import Digest
from retab_cli.batch.journal import Journal, idempotency_key

from .conftest import PARAMS

# Claims one send per document and prints its key once claim_send has returned; after
# `stop` documents it waits on stdin (no sleep), else it goes on until killed.
CHILD = """
import hashlib, sys
from pathlib import Path
from retab_cli.batch.hashing import Digest
from retab_cli.batch.journal import Journal
from retab_cli.batch.params import Params

path, stop = Path(sys.argv[1]), int(sys.argv[2])
params = Params(key="invoice number", instructions="split the invoices", model="retab-small")
journal = Journal.open(path, params, sources=["docs"])
for i in range(10**6):
    content = f"document {i}".encode()
    digest = Digest(hashlib.sha256(content).hexdigest(), len(content), 1, "text/plain", 1)
    row = journal.record_digest(f"doc-{i:06d}.txt", "/docs", digest)
    print(row.relpath, journal.claim_send(row), flush=True)
    if i + 1 == stop:
        sys.stdin.read()
"""


def digest_for(i: int) -> Digest:
    content = f"document {i}".encode()
    return Digest(hashlib.sha256(content).hexdigest(), len(content), 1, "text/plain", 1)


def run_and_kill(path: Path, stop: int, lines: int) -> list[tuple[str, str]]:
    """Start the child, read `lines` claimed keys, SIGKILL it; returns what it printed."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(stop)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    claimed = []
    try:
        for _ in range(lines):
            relpath, key = child.stdout.readline().split()
            claimed.append((relpath, key))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return claimed


def test_killed_after_claiming_the_rerun_sends_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    [(relpath, key)] = run_and_kill(path, stop=1, lines=1)
    assert (relpath, key) == ("doc-000000.txt", idempotency_key(
        digest_for(0).sha256, PARAMS.digest(), 1, "doc-000000.txt"))
    with Journal.open(path, PARAMS, sources=["docs"]) as journal:  # the lock died with it
        row = journal.row(relpath)
        assert row is not None and row.status == "sending" and row.idempotency_key == key
        claimed_at = row.claimed_at
        again = journal.record_digest(relpath, "/docs", digest_for(0))
        assert journal.claim_send(again) == key
        reread = journal.row(relpath)
        assert reread is not None and reread.claimed_at == claimed_at  # the first claim's


def test_killed_at_any_instant_every_printed_claim_survives(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    claimed = run_and_kill(path, stop=0, lines=200)  # killed mid-loop, maybe mid-write
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Journal.open(path, PARAMS, sources=["docs"]) as journal:
        stored = {r.relpath: r.idempotency_key for r in journal.rows()}
        assert len(stored) >= 200
        for relpath, key in claimed:
            assert stored[relpath] == key
        # Resumed from the start, every document gets the key it had (or would have had).
        for i in range(len(stored) + 5):
            relpath = f"doc-{i:06d}.txt"
            row = journal.record_digest(relpath, "/docs", digest_for(i))
            key = journal.claim_send(row)
            assert key == idempotency_key(digest_for(i).sha256, PARAMS.digest(), 1, relpath)
            assert stored.get(relpath) in (None, key)
