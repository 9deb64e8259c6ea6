"""The engines together, as `--dry-run` and a batch use them: walk, hash, journal, plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from retab_cli.batch.estimate import build_plan
from retab_cli.batch.hashing import Digest, hash_document
from retab_cli.batch.journal import Journal
from retab_cli.batch.params import Params
from retab_cli.batch.shard import Shard
from retab_cli.batch.sources import WalkStats, walk
from retab_cli.errors import UsageError

from .conftest import PARAMS, make_tree
from cli_support import SAMPLE_PDF


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    pdf = SAMPLE_PDF.read_bytes()
    root = make_tree(tmp_path / "docs", {
        "2024/jan/invoices.pdf": pdf,              # 7 pages
        "2024/feb/invoices-copy.pdf": pdf,         # the same bytes: one run
        "2024/feb/notes.txt": "one\ftwo\fthree",   # 3 pages
        "scans/corrupt.pdf": b"%PDF-1.7\n1 0 obj <<",
        "scans/empty.txt": b"",
        "scans/.hidden.pdf": pdf,
        "readme.bin": b"\x00\x01",
    })
    (root / "scans" / "link.pdf").symlink_to(root / "2024" / "jan" / "invoices.pdf")
    return root


def test_a_dry_run_plan_over_a_fresh_tree(tree: Path) -> None:
    stats = WalkStats()
    plan = build_plan(walk([str(tree)], stats=stats), PARAMS, None)
    assert plan.as_dict() == {
        "documents": 5, "duplicates": 1, "done": 0, "in_flight": 0, "local_errors": 2,
        "to_send": 2, "pages": 10, "credits": 10.0, "dollars": 0.1, "model": "retab-small",
        "tier_known": True}
    assert (stats.hidden, stats.symlinks, stats.not_included) == (1, 1, 1)


def test_the_plan_reads_the_journal_and_shards(tree: Path, tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite3", PARAMS, sources=[str(tree)]) as journal:
        for item in walk([str(tree)]):
            digest = hash_document(item.path, item.relpath)
            if isinstance(digest, Digest) and item.relpath == "2024/feb/notes.txt":
                row = journal.record_digest(item.relpath, str(item.path), digest)
                assert row.run_id is not None
                journal.claim_send(row)
                journal.record_created(row.run_id, "prtn_n", "completed")
    with Journal.read(tmp_path / "j.sqlite3") as journal:
        plan = build_plan(walk([str(tree)]), PARAMS, journal).as_dict()
        assert (plan["done"], plan["to_send"], plan["pages"]) == (1, 1, 7)
        with pytest.raises(UsageError, match="was written with other parameters"):
            build_plan(walk([str(tree)]), Params(key="other"), journal)
    whole = [build_plan(walk([str(tree)]), PARAMS, None, shard=Shard(i, 2)).as_dict()
             for i in (1, 2)]
    assert sum(p["documents"] for p in whole) == 5
