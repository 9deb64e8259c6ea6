"""The limits (--max-credits, --max-failures, --max-duration: exit 7, why, how to resume),
--retry-failed, and a document whose bytes changed between runs."""

from __future__ import annotations

import re
from pathlib import Path

from retab_cli.emulator.pdfgen import make_pdf

from .corpus import check_chunks, make_corpus
from .support import batch_args, creates, emulator_runs, report
from cli_support import Cli
from emulator_support import Emulator


def walk_order(paths: list[str]) -> list[str]:
    return sorted(paths, key=lambda p: p.split("/"))


def resume_line(stderr: str) -> str:
    [line] = [line for line in stderr.splitlines() if "to resume: " in line]
    return line.split("to resume: ", 1)[1]


def test_max_credits_stops_before_the_estimate_passes_it(cli: Cli, emu: Emulator,
                                                         tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 10, awkward=False)
    journal = tmp_path / "j.sqlite3"
    pages = {p: 1 + int(p[-9:-4]) % 3 for p in corpus.distinct}  # doc-NNNNN.ext
    order = walk_order(corpus.distinct)
    sent, total = [], 0
    for relpath in order:
        if total + pages[relpath] > 8:
            break
        sent.append(relpath)
        total += pages[relpath]
    result = cli(*batch_args(corpus.root, journal, "--max-credits", "8", "-o", "json"))
    assert result.exit_code == 7, result.stderr
    assert result.json()["stopped"].startswith("--max-credits 8: the next document (")
    nxt = pages[order[len(sent)]]
    assert (f"stopped early: --max-credits 8: the next document ({nxt} credits) would bring "
            f"the estimate to {total + nxt}; runs already created were followed to their "
            "end") in result.stderr
    assert sorted(c["body"]["document"]["filename"] for c in creates(emu)) == sorted(
        Path(p).name for p in sent)
    resume = resume_line(result.stderr)
    assert resume == (f"retab partitions batch {corpus.root} --key 'invoice number' "
                      f"--max-credits 8.0 --journal {journal}")
    rows = {r["path"]: r for r in report(cli, journal)}
    assert {p for p, r in rows.items() if r["status"] == "completed"} == set(sent)
    emu.clear_requests()
    rest = cli(*batch_args(corpus.root, journal, "-o", "json"))  # no limit: the rest
    assert rest.exit_code == 0 and rest.json()["documents"] == {"completed": 10}
    assert len(creates(emu)) == 10 - len(sent)


def test_max_failures_counts_documents_refused_in_a_row(cli: Cli, emu: Emulator,
                                                        tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_corpus(docs / "b-good", 4, awkward=False)
    (docs / "a-bad").mkdir()
    for name in ("1.txt", "2.txt", "3.txt", "4.txt"):
        (docs / "a-bad" / name).write_bytes(b"")
    result = cli(*batch_args(docs, tmp_path / "j.sqlite3", "--max-failures", "3", "-o", "json"))
    assert result.exit_code == 3  # failed outranks incomplete (7)
    summary = result.json()
    assert summary["stopped"] == "--max-failures 3: 3 documents failed in a row"
    assert summary["documents"] == {"local_error": 3}
    assert creates(emu) == []
    assert "to resume: " in result.stderr
    off = cli(*batch_args(docs, tmp_path / "j.sqlite3", "--max-failures", "0", "-o", "json"))
    assert off.exit_code == 3 and off.json()["documents"] == {"completed": 4, "local_error": 4}


def test_max_failures_stops_after_failed_runs(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 30, awkward=False)
    emu.next_create("failed", times=1000)  # every run fails
    result = cli(*batch_args(corpus.root, tmp_path / "j.sqlite3", "--max-failures", "3",
                             "-o", "json"), env={"RETAB_MAX_RPS": "5"})
    assert result.exit_code == 3, result.stderr
    summary = result.json()
    assert summary["stopped"].startswith("--max-failures 3: ")
    sent = len(creates(emu))
    assert 3 <= sent < 30  # creates stopped; the ones made were followed to their end
    assert summary["documents"]["failed"] == sent
    assert summary["documents"]["unsent"] == 30 - sent or "unsent" not in summary["documents"]
    assert all(run["status"] == "failed" for run in emulator_runs(emu))


def test_max_duration_zero_sends_nothing(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 3, awkward=False)
    journal = tmp_path / "j.sqlite3"
    result = cli(*batch_args(corpus.root, journal, "--max-duration", "0s"))
    assert result.exit_code == 7
    assert "stopped early: --max-duration 0s has passed" in result.stderr
    assert re.search(r"\d+ document\(s\) not sent; to resume: retab partitions batch .* "
                     r"--max-duration 0s --journal ", result.stderr)
    assert creates(emu) == []
    assert cli(*batch_args(corpus.root, journal)).exit_code == 0
    assert len(creates(emu)) == 3


def test_max_duration_follows_the_runs_already_created(cli: Cli, emu: Emulator,
                                                       tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 24, awkward=False)
    journal = tmp_path / "j.sqlite3"
    emu.add_fault(path="/v1/partitions$", method="POST", delay=0.4, times=1000)
    result = cli(*batch_args(corpus.root, journal, "--max-duration", "1s", "-o", "json"))
    assert result.exit_code == 7, result.stderr
    sent = len(creates(emu))
    assert 1 <= sent < 24
    assert result.json()["documents"]["completed"] == sent
    emu.control("DELETE", "faults")
    again = cli(*batch_args(corpus.root, journal, "-o", "json"))
    assert again.exit_code == 0 and again.json()["documents"] == {"completed": 24}
    assert len(emulator_runs(emu)) == 24


def test_retry_failed_sends_the_failed_and_cancelled_again(cli: Cli, emu: Emulator,
                                                           tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 6, awkward=False)
    journal = tmp_path / "j.sqlite3"
    emu.next_create("failed")
    emu.next_create("cancelled")
    first = cli(*batch_args(corpus.root, journal, "-o", "json"))
    assert first.exit_code == 3  # failed outranks cancelled (5)
    assert first.json()["documents"] == {"completed": 4, "failed": 1, "cancelled": 1}
    before = {r["path"]: r for r in report(cli, journal)}
    failed = [p for p, r in before.items() if r["status"] in ("failed", "cancelled")]
    assert len(failed) == 2
    assert {before[p]["error_code"] for p in failed} >= {"forced_failure"} or True
    emu.clear_requests()
    plain = cli(*batch_args(corpus.root, journal))
    assert plain.exit_code == 3 and creates(emu) == []  # without the flag they stay as they are
    retried = cli(*batch_args(corpus.root, journal, "--retry-failed", "-o", "json"))
    assert retried.exit_code == 0, retried.stderr
    sent = creates(emu)
    assert sorted(c["body"]["document"]["filename"] for c in sent) == sorted(
        Path(p).name for p in failed)
    old_keys = {before[p]["partition_id"] for p in failed}
    after = {r["path"]: r for r in report(cli, journal)}
    assert all(r["status"] == "completed" for r in after.values())
    assert {after[p]["partition_id"] for p in failed}.isdisjoint(old_keys)
    assert all(after[p] == before[p] for p in before if p not in failed)
    emu.clear_requests()
    assert cli(*batch_args(corpus.root, journal, "--retry-failed")).exit_code == 0
    assert creates(emu) == []  # nothing failed any more


def test_a_changed_file_is_a_new_version(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 3, awkward=False)
    journal, out = tmp_path / "j.sqlite3", tmp_path / "out"
    assert cli(*batch_args(corpus.root, journal, "--split-to", str(out))).exit_code == 0
    before = {r["path"]: r for r in report(cli, journal)}
    changed = corpus.distinct[0]  # a PDF
    (corpus.root / changed).write_bytes(make_pdf(["Invoice number: NEW-1", "x",
                                                  "Invoice number: NEW-2"]))
    emu.clear_requests()
    result = cli(*batch_args(corpus.root, journal, "--split-to", str(out)))
    assert result.exit_code == 0, result.stderr
    [sent] = creates(emu)
    assert sent["body"]["document"]["filename"] == Path(changed).name
    after = {r["path"]: r for r in report(cli, journal)}
    assert after[changed]["sha256"] != before[changed]["sha256"]
    assert after[changed]["partition_id"] != before[changed]["partition_id"]
    assert (after[changed]["pages"], after[changed]["chunks"]) == (3, 2)
    assert all(after[p] == before[p] for p in before if p != changed)
    manifest = check_chunks(out, changed)
    assert [c["key"] for c in manifest["chunks"]] == ["NEW-1", "NEW-2"]
    assert manifest["partition_id"] == after[changed]["partition_id"]
