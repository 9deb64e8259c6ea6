"""The limits' gate, the batch's exit code, and the all-or-nothing chunk directory."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from retab_cli.batch.hashing import LocalError
from retab_cli.batch.limits import Gate, Limits
from retab_cli.batch.pipeline import Outcome
from retab_cli.batch.splitting import is_split, split_document, target_dir

TEXT = b"Invoice number: A\fmore A\fInvoice number: B"
RAW = {"id": "prtn_1", "status": "completed", "file": {},
       "output": [{"key": "A", "pages": [1, 2]}, {"key": "B", "pages": [3]}]}


def test_max_credits_stops_before_the_estimate_would_pass_it() -> None:
    gate = Gate(Limits(max_credits=5))
    assert [gate.admit(c) for c in (2, 2, 1)] == [True, True, True]  # exactly 5 is allowed
    assert gate.admit(0.2) is False
    assert gate.stopped == ("--max-credits 5: the next document (0.2 credits) would bring "
                            "the estimate to 5.2")
    assert gate.admit(0) is False and gate.estimated == 5


def test_max_failures_counts_in_a_row_and_zero_is_off() -> None:
    gate = Gate(Limits(max_failures=3))
    for _ in range(2):
        gate.failure()
    gate.success()
    gate.failure()
    gate.failure()
    assert gate.stopped is None and gate.streak == 2
    gate.failure()
    assert gate.stopped == "--max-failures 3: 3 documents failed in a row"
    off = Gate(Limits(max_failures=0))
    for _ in range(100):
        off.failure()
    assert off.stopped is None and off.admit(1.0)


def test_max_duration_is_read_on_the_clock_given() -> None:
    now = [100.0]
    gate = Gate(Limits(max_duration=90), clock=lambda: now[0])
    now[0] = 189.9
    assert gate.admit(1) is True
    now[0] = 190.0
    assert gate.admit(1) is False and gate.stopped == "--max-duration 1m30s has passed"


@pytest.mark.parametrize(("statuses", "codes", "stopped", "expected"), [
    ({"completed": 3}, [], None, 0),
    ({"completed": 2, "failed": 1}, [], None, 3),
    ({"completed": 2, "local_error": 1}, [], None, 3),
    ({"completed": 2, "cancelled": 1}, [], None, 5),
    ({"failed": 1, "cancelled": 1}, [], None, 3),
    ({"completed": 1, "unsent": 2}, [], None, 7),
    ({"completed": 1}, [], "--max-duration 1s has passed", 7),
    ({"cancelled": 1, "unsent": 1}, [], "x", 5),  # 5 outranks 7
    ({"completed": 1, "unsent": 1}, [1], None, 1),  # a create that got no answer
    ({"local_error": 3}, [], None, 2),  # nothing could be read
    ({"local_error": 3}, [], "--max-failures 3: ...", 3),  # stopped: the rest unknown
])
def test_the_exit_code(statuses: dict[str, int], codes: list[int], stopped: str | None,
                       expected: int) -> None:
    taken = sum(statuses.values())
    outcome = Outcome(Counter(statuses), codes, stopped, found=taken, taken=taken)
    assert outcome.exit_code == expected


def test_nothing_found_is_2_and_an_empty_shard_is_0() -> None:
    assert Outcome(found=0).exit_code == 2
    assert Outcome(found=5, taken=0).exit_code == 0


def test_the_chunks_replace_the_old_directory_whole(tmp_path: Path) -> None:
    source = tmp_path / "doc.txt"
    source.write_bytes(TEXT)
    target = target_dir(tmp_path / "out", "sub/doc.txt")
    assert target == tmp_path / "out" / "sub" / "doc.txt"
    (target / "old-chunk.txt").parent.mkdir(parents=True)
    (target / "old-chunk.txt").write_text("from an earlier version")
    digest = split_document(RAW, source, hashlib.sha256(TEXT).hexdigest(), target, "sub/doc.txt")
    assert isinstance(digest, str)
    assert sorted(os.listdir(target)) == ["A.txt", "B.txt", "manifest.json"]
    assert hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest() == digest
    manifest = json.loads((target / "manifest.json").read_text())
    assert [(c["key"], c["pages"]) for c in manifest["chunks"]] == [("A", [1, 2]), ("B", [3])]
    assert (target / "A.txt").read_bytes() == b"Invoice number: A\fmore A"
    assert sorted(os.listdir(target.parent)) == ["doc.txt"]  # nothing left beside it
    assert is_split(str(target), target) and not is_split(None, target)


def test_leftovers_of_a_killed_split_are_cleared(tmp_path: Path) -> None:
    source = tmp_path / "doc.txt"
    source.write_bytes(TEXT)
    target = tmp_path / "out" / "doc.txt"
    partial, old = tmp_path / "out" / ".doc.txt.partial", tmp_path / "out" / ".doc.txt.old"
    partial.mkdir(parents=True)
    (partial / "A.txt").write_text("half")
    old.mkdir()
    (old / "manifest.json").write_text("{}")  # killed between the two renames
    digest = split_document(RAW, source, hashlib.sha256(TEXT).hexdigest(), target, "doc.txt")
    assert isinstance(digest, str)
    assert sorted(os.listdir(tmp_path / "out")) == ["doc.txt"]
    assert sorted(os.listdir(target)) == ["A.txt", "B.txt", "manifest.json"]


def test_a_document_that_cannot_be_split_is_a_local_error(tmp_path: Path) -> None:
    source = tmp_path / "doc.txt"
    source.write_bytes(TEXT)
    target = tmp_path / "out" / "doc.txt"
    changed = split_document(RAW, source, "0" * 64, target, "doc.txt")
    assert changed == LocalError("split_failed", "doc.txt changed after it was sent; run the "
                                                 "batch again to send the new version")
    bad = {**RAW, "output": [{"key": "A", "pages": [9]}]}
    refused = split_document(bad, source, hashlib.sha256(TEXT).hexdigest(), target, "doc.txt")
    assert isinstance(refused, LocalError) and refused.code == "split_failed"
    assert refused.message.startswith("cannot split doc.txt: chunk 'A' names page 9, but ")
    assert not target.exists() and os.listdir(tmp_path / "out") == []
    with pytest.raises(ValueError):
        target_dir(tmp_path, "../escape")
