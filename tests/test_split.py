"""`partitions split`: one file per chunk and a manifest, never clobbering by accident."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pypdf import PdfReader

from retab_cli.chunks import safe_name

from cli_support import SAMPLE_PDF, Cli


def completed(cli: Cli, path: Path = SAMPLE_PDF, *extra: str) -> str:
    result = cli("partitions", "create", str(path), "--key", "invoice number", "-q", *extra)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_split_pdf_writes_chunks_and_manifest(cli: Cli, tmp_path: Path) -> None:
    run_id = completed(cli)
    out = tmp_path / "out"
    result = cli("partitions", "split", run_id, "--document", str(SAMPLE_PDF), "--out-dir",
                 str(out), "--json")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert result.json() == manifest
    assert manifest["partition_id"] == run_id and manifest["document"] == "invoices.pdf"
    assert [(c["key"], c["pages"], c["file"]) for c in manifest["chunks"]] == [
        ("INV-001", [1, 2], "INV-001.pdf"), ("INV-002", [3, 4, 5], "INV-002.pdf"),
        ("INV-003", [6, 7], "INV-003.pdf")]
    for chunk in manifest["chunks"]:
        data = (out / chunk["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == chunk["sha256"]
        reader = PdfReader(out / chunk["file"])
        assert len(reader.pages) == len(chunk["pages"])
        assert chunk["key"] in reader.pages[0].extract_text()


def test_split_refuses_to_clobber_without_overwrite(cli: Cli, tmp_path: Path) -> None:
    run_id = completed(cli)
    args = ["partitions", "split", run_id, "--document", str(SAMPLE_PDF), "--out-dir",
            str(tmp_path)]
    (tmp_path / "INV-002.pdf").write_bytes(b"mine")
    refused = cli(*args)
    assert refused.exit_code == 2 and "INV-002.pdf already exists" in refused.stderr
    assert (tmp_path / "INV-002.pdf").read_bytes() == b"mine"
    assert not (tmp_path / "INV-001.pdf").exists()
    assert cli(*args, "--overwrite").exit_code == 0
    assert (tmp_path / "INV-002.pdf").read_bytes().startswith(b"%PDF-")


def test_split_checks_the_document_is_the_one_partitioned(cli: Cli, tmp_path: Path) -> None:
    run_id = completed(cli)
    other = tmp_path / "other.txt"
    other.write_text("Invoice number: Z\n")
    args = ["partitions", "split", run_id, "--document", str(other), "--out-dir",
            str(tmp_path / "o")]
    refused = cli(*args)
    assert refused.exit_code == 2 and "is not the document run" in refused.stderr
    forced = cli(*args, "--force")
    assert forced.exit_code == 2 and "has 1 pages" in forced.stderr


def test_split_text_document(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "letters.txt"
    doc.write_text("Invoice number: A\fcontinued\fInvoice number: B\f")
    run_id = completed(cli, doc)
    out = tmp_path / "out"
    result = cli("partitions", "split", run_id, "--document", str(doc), "--out-dir", str(out))
    assert result.exit_code == 0, result.stderr
    assert (out / "A.txt").read_text() == "Invoice number: A\fcontinued"
    assert (out / "B.txt").read_text().startswith("Invoice number: B")


def test_split_needs_a_completed_run(cli: Cli, tmp_path: Path) -> None:
    cli.emu.next_create("stuck")
    run_id = cli("partitions", "create", str(SAMPLE_PDF), "--key", "invoice number",
                 "--background", "-q").stdout.strip()
    result = cli("partitions", "split", run_id, "--document", str(SAMPLE_PDF), "--out-dir",
                 str(tmp_path / "o"))
    assert result.exit_code == 8
    assert "not completed" in result.stderr and "--wait" in result.stderr
    assert not (tmp_path / "o").exists()


def test_safe_names() -> None:
    used: set[str] = set()
    assert [safe_name(k, used) for k in ("../etc/passwd", "INV 1", "inv_1", "", ".hidden")] == [
        "etc_passwd", "INV_1", "inv_1-2", "chunk", "hidden"]
