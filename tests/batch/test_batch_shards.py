"""`--shard 1/3`, `2/3`, `3/3` as three processes at once: disjoint, complete, one report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from retab_cli.batch.journal import Journal
from retab_cli.batch.shard import Shard

from .corpus import check_chunks, make_corpus
from .support import batch_args, emulator_runs, report, spawn
from cli_support import Cli
from emulator_support import Emulator


def test_three_shards_cover_the_folder_once(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 90)
    out = tmp_path / "out"
    journals = [tmp_path / f"shard-{i}.sqlite3" for i in (1, 2, 3)]
    procs = [spawn(cli, *batch_args(corpus.root, journal, "--shard", f"{i}/3", "--split-to",
                                    str(out), "--json"))
             for i, journal in zip((1, 2, 3), journals, strict=True)]
    results = [proc.communicate(timeout=300) for proc in procs]
    summaries = [json.loads(stdout) for stdout, _ in results]
    # Each shard's own documents; the three refused ones fail where they fall (exit 3).
    for proc, summary in zip(procs, summaries, strict=True):
        assert proc.returncode == summary["exit_code"]
        assert summary["exit_code"] == (3 if summary["documents"].get("local_error") else 0)

    taken: dict[str, int] = {}
    for index, journal in enumerate(journals, start=1):
        with Journal.read(journal) as opened:
            assert opened.meta["shard"] == f"{index}/3"
            for row in opened.rows():
                assert row.relpath not in taken  # disjoint
                assert Shard(index, 3).takes(row.relpath)
                taken[row.relpath] = index
    assert sorted(taken) == corpus.documents  # complete
    assert len(set(taken.values())) == 3

    rows = report(cli, *journals)  # merged by path
    assert [r["path"] for r in rows] == corpus.documents
    for record in rows:
        if record["path"] in corpus.refused:
            assert record["status"] == "local_error"
            continue
        assert record["status"] == "completed"
        check_chunks(out, record["path"])
    # One run per distinct document within a shard; shards share nothing, so a copy that
    # falls in another shard than its original has a run of its own.
    expected = sum(len({hashlib.sha256((corpus.root / p).read_bytes()).hexdigest()
                        for p, shard in taken.items() if shard == index
                        and p not in corpus.refused}) for index in (1, 2, 3))
    assert len(emulator_runs(emu)) == expected
    assert sum(s["totals"]["runs"] for s in summaries) == expected
