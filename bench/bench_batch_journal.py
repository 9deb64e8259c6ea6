"""The batch journal's own cost: 10,000 documents through every write a batch makes.

Per document, in the order a batch makes them: `record_digest` (hashed, linked to its
run), `claim_send` (the Idempotency-Key committed with an fsync before the create),
`record_created` (partition id, queued), `record_status` (completed, credits, chunks)
and `record_split`. Then the reads: `latest_run_status` for every document (the
`--dry-run` plan over a journal) and one pass of `rows()` (what `report` reads).

Variants, measured in the same run, interleaved, on a file in a temporary directory
(`--dir` to choose one on the disk journals live on: on tmpfs an fsync costs nothing):
- shipped: WAL, synchronous=NORMAL, FULL (an fsync) for the claim commit only;
- shipped/32: the same, claims made 32 at a time (`claim_sends`, one fsync each);
- no-fsync: NORMAL everywhere (what the claim's fsync costs);
- fsync-all: FULL for every commit (what NORMAL saves).
Nothing asserts; the figures are printed as a table and as JSON on the last line.

    .venv/bin/python bench/bench_batch_journal.py            # --rows 10000 --repeat 3
    .venv/bin/python bench/bench_batch_journal.py --variants fsync-all --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from sqlite3 import Connection
from typing import Any

from retab_cli.batch.hashing import Digest
from retab_cli.batch.journal import Journal
from retab_cli.batch.params import Params

PARAMS = Params(key="invoice number", instructions="split the invoices", model="retab-small")


class NoFsync(Journal):
    def _transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        return super()._transaction(durable=False)


class FsyncAll(Journal):
    def _transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        return super()._transaction(durable=True)


# name: (journal class, documents claimed per transaction)
VARIANTS: dict[str, tuple[type[Journal], int]] = {
    "shipped": (Journal, 1), "shipped/32": (Journal, 32), "no-fsync": (NoFsync, 1),
    "fsync-all": (FsyncAll, 1)}


def digests(count: int) -> Iterator[tuple[str, Digest]]:
    for i in range(count):
        content = f"document {i}".encode()
        yield (f"dir{i % 100:02d}/doc-{i:05d}.pdf",
               Digest(hashlib.sha256(content).hexdigest(), len(content), 1, "application/pdf", 1))


def writes(journal: Journal, count: int, group: int) -> dict[str, float]:
    """Seconds spent in each kind of write over `count` documents, claimed `group` at a
    time (a sender with several creates ready claims them in one transaction)."""
    spent = dict.fromkeys(("record_digest", "claim_send", "record_created", "record_status",
                           "record_split"), 0.0)
    clock = time.perf_counter
    items = list(digests(count))
    for start in range(0, count, group):
        t0 = clock()
        rows = [journal.record_digest(relpath, "/docs/" + relpath, digest)
                for relpath, digest in items[start:start + group]]
        t1 = clock()
        journal.claim_sends(rows)
        spent["record_digest"] += t1 - t0
        spent["claim_send"] += clock() - t1
        for row in rows:
            assert row.run_id is not None
            t2 = clock()
            journal.record_created(row.run_id, f"prtn_{row.run_id:021d}", "queued")
            t3 = clock()
            journal.record_status(row.run_id, "completed", credits=1.0, chunks=1)
            t4 = clock()
            journal.record_split(row.relpath, "out/" + row.relpath, "0" * 64)
            t5 = clock()
            spent["record_created"] += t3 - t2
            spent["record_status"] += t4 - t3
            spent["record_split"] += t5 - t4
    return spent


def reads(journal: Journal, count: int) -> dict[str, float]:
    t0 = time.perf_counter()
    for _, digest in digests(count):
        journal.latest_run_status(digest.sha256)
    t1 = time.perf_counter()
    rows = sum(1 for _ in journal.rows())
    t2 = time.perf_counter()
    assert rows == count
    return {"latest_run_status": t1 - t0, "rows": t2 - t1}


def one_run(kind: type[Journal], group: int, directory: Path, count: int) -> dict[str, Any]:
    path = Path(tempfile.mkdtemp(dir=directory)) / "journal.sqlite3"
    start = time.perf_counter()
    with kind.open(path, PARAMS, sources=["docs"]) as journal:
        spent = writes(journal, count, group)
        write_total = time.perf_counter() - start
        spent.update(reads(journal, count))
    return {"writes_s": write_total, "parts_s": spent, "size_bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated, of: " + ", ".join(VARIANTS))
    args = parser.parse_args(argv)
    chosen = {name: VARIANTS[name] for name in args.variants.split(",")}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory(prefix=".bench-journal-", dir=args.dir) as tmp:
        for _ in range(args.repeat):
            for name, (kind, group) in chosen.items():  # interleaved: a shared machine
                results[name].append(one_run(kind, group, Path(tmp), args.rows))
    summary = summarise(results, args.rows)
    for line in table(summary, args.rows):
        print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": args.rows, "repeat": args.repeat, "peak_rss_mib": round(peak, 1),
                      "python": sys.version.split()[0], "variants": summary}))
    return 0


def summarise(results: dict[str, list[dict[str, Any]]], count: int) -> dict[str, Any]:
    summary = {}
    for name, runs in results.items():
        median = statistics.median(r["writes_s"] for r in runs)
        parts = {part: round(statistics.median(r["parts_s"][part] for r in runs), 3)
                 for part in runs[0]["parts_s"]}
        summary[name] = {"writes_s": round(median, 3),
                         "per_document_ms": round(median / count * 1000, 3),
                         "parts_s": parts, "size_bytes": runs[0]["size_bytes"]}
    return summary


def table(summary: dict[str, Any], count: int) -> Iterator[str]:
    parts = list(next(iter(summary.values()))["parts_s"])
    yield f"{count} documents; median seconds per variant"
    yield f"{'variant':<10} {'writes':>8} {'ms/doc':>8} " + " ".join(f"{p:>18}" for p in parts)
    for name, figures in summary.items():
        yield (f"{name:<10} {figures['writes_s']:>8.2f} {figures['per_document_ms']:>8.3f} "
               + " ".join(f"{figures['parts_s'][p]:>18.3f}" for p in parts))


if __name__ == "__main__":
    raise SystemExit(main())
