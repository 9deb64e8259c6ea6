"""examples/github-actions-batch.yml, run as its jobs would: three shard jobs (their run
scripts as written, the matrix value in $SHARD), then the merging job's script."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from test_docs import run_blocks
from test_readme import base_env, shell

from .corpus import make_corpus
from .support import emulator_runs
from emulator_support import Emulator

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions-batch.yml"


def test_the_workflow_installs_retab_from_the_repository() -> None:
    text = WORKFLOW.read_text()
    installs = [cmd for block in run_blocks(text) for cmd in re.findall(r"pip install (\S+)",
                                                                         block)]
    assert installs == [".", "."]
    assert "shard: [1, 2, 3, 4]" in text and "SHARDS: 4" in text


def test_the_shard_jobs_and_the_merge(emu: Emulator, tmp_path: Path) -> None:
    blocks = run_blocks(WORKFLOW.read_text())
    shard_script = next(b for b in blocks if "partitions batch" in b)
    merge_script = next(b for b in blocks if "partitions report" in b)
    corpus = make_corpus(tmp_path / "documents", 30)
    summary = tmp_path / "summary.md"
    env = {**base_env(tmp_path), "RETAB_API_BASE_URL": emu.url, "RETAB_API_KEY": emu.api_key,
           "RETAB_MAX_RPS": "0", "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
           "SHARDS": "3"}
    codes = []
    for shard in ("1", "2", "3"):
        result = shell(shard_script, tmp_path, {**env, "SHARD": shard}, timeout=120)
        assert "Traceback" not in result.stderr
        codes.append(result.returncode)
        assert (tmp_path / f"journal-{shard}.sqlite3").is_file()
    assert set(codes) <= {0, 3} and 3 in codes  # the refused documents fail their shard
    summary.write_text("")  # the merging job starts with a summary of its own
    merged = shell(merge_script, tmp_path, env)
    assert merged.returncode == 0, merged.stderr
    table = summary.read_text().splitlines()
    assert table[0].startswith("| path | sha256 | partition_id | status |")
    assert len([line for line in table if line.startswith("| ")]) == 2 + len(corpus.documents)
    assert table[-1].startswith(f"**Totals:** {len(corpus.documents)} documents: ")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text(), newline="")))
    assert sorted(r["path"] for r in rows) == corpus.documents
    completed = [r for r in rows if r["status"] == "completed"]
    assert len(completed) == len(corpus.documents) - len(corpus.refused)
    assert {r["partition_id"] for r in completed} <= {run["id"] for run in emulator_runs(emu)}
    for row in completed:
        assert (tmp_path / "chunks" / row["path"] / "manifest.json").is_file()
