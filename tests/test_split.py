"""`partitions split`: one file per chunk and a manifest, never clobbering by accident."""

from __future__ import annotations

import hashlib
import json
import os
import stat
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
    keys = ("../etc/passwd", "INV 1", "inv_1", "", ".hidden")
    assert [safe_name(k, ".pdf", used) for k in keys] == [
        "etc_passwd.pdf", "INV_1.pdf", "inv_1-2.pdf", "chunk.pdf", "hidden.pdf"]


# ---- atomic and symlink-safe (issue 8, item 12) ---------------------------------------------


def split_args(run_id: str, doc: Path, out: Path, *extra: str) -> list[str]:
    return ["partitions", "split", run_id, "--document", str(doc), "--out-dir", str(out), *extra]


def test_a_write_error_leaves_nothing_and_a_rerun_works(cli: Cli, tmp_path: Path) -> None:
    import resource
    import subprocess
    import sys

    doc = tmp_path / "letters.txt"
    doc.write_text("Invoice number: A\fInvoice number: B\n" + "x" * 20_000)
    run_id = completed(cli, doc)
    out = tmp_path / "out"

    def small_files() -> None:  # the second chunk cannot be written whole: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}}
    proc = subprocess.run([sys.executable, "-m", "retab_cli", *split_args(run_id, doc, out)],
                          env=env, capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: cannot write {out}/B.txt: File too large; nothing was kept",
        "hint: run it again once that is fixed"]
    assert os.listdir(out) == []  # neither A.txt nor any temporary file
    again = cli(*split_args(run_id, doc, out), "-q")
    assert again.exit_code == 0, again.stderr
    assert sorted(os.listdir(out)) == ["A.txt", "B.txt", "manifest.json"]


def test_planted_symlinks_are_never_followed(cli: Cli, tmp_path: Path) -> None:
    run_id = completed(cli)
    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    (out / ".INV-001.pdf.tmp").symlink_to("../precious.txt")  # the old temporary name
    result = cli(*split_args(run_id, SAMPLE_PDF, out))
    assert result.exit_code == 0, result.stderr
    assert precious.read_text() == "mine"
    assert (out / "INV-001.pdf").read_bytes().startswith(b"%PDF-")
    assert not (out / "INV-001.pdf").is_symlink()
    assert sorted(os.listdir(out)) == [".INV-001.pdf.tmp", "INV-001.pdf", "INV-002.pdf",
                                       "INV-003.pdf", "manifest.json"]
    # A symlink where a chunk goes is a name taken (even dangling): refused; replaced by
    # --overwrite, never written through.
    (out / "INV-002.pdf").unlink()
    (out / "INV-002.pdf").symlink_to("../precious.txt")
    refused = cli(*split_args(run_id, SAMPLE_PDF, out))
    assert refused.exit_code == 2 and f"{out}/INV-001.pdf already exists (and 3 more)" \
        in refused.stderr
    assert cli(*split_args(run_id, SAMPLE_PDF, out, "--overwrite")).exit_code == 0
    assert precious.read_text() == "mine"
    assert not (out / "INV-002.pdf").is_symlink()
    assert stat.S_IMODE((out / "INV-002.pdf").stat().st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_output_directory_others_can_write_to_is_refused(cli: Cli, tmp_path: Path) -> None:
    run_id = completed(cli)
    for bits, shown in ((0o775, "0775"), (0o757, "0757"), (0o1777, "1777")):
        out = tmp_path / f"shared-{shown}"
        out.mkdir()
        out.chmod(bits)  # what chmod g+w / o+w / a /tmp-like directory leave
        result = cli(*split_args(run_id, SAMPLE_PDF, out))
        assert result.exit_code == 2
        assert result.stderr.splitlines() == [
            f"error: refusing to write chunks into {out}: others can write to it (mode "
            f"{shown}), so they could plant or swap files in it",
            f"hint: choose a directory of your own, or run chmod go-w {out}"]
        assert os.listdir(out) == []


def test_an_output_directory_of_another_user_is_refused(cli: Cli, tmp_path: Path) -> None:
    run_id = completed(cli)
    if os.geteuid() == 0:  # root can hand a directory to someone else
        out = tmp_path / "theirs"
        out.mkdir()
        os.chown(out, 65534, 65534)
    else:  # anyone else: a directory root owns
        out = Path("/")
    result = cli(*split_args(run_id, SAMPLE_PDF, out))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: refusing to write chunks into {out}: it belongs "
                                    "to another user")
    if out != Path("/"):
        assert os.listdir(out) == []


def test_no_chunk_name_collides_with_the_manifest_or_another(tmp_path: Path) -> None:
    from retab_cli.chunks import write_chunks

    doc = tmp_path / "notes.json"
    doc.write_bytes(b"one\ftwo\fthree\ffour\ffive\fsix")
    keys = ["manifest", "MANIFEST", "a/b", "a_b", "a_b-2", "manifest"]
    raw = {"id": "prtn_x", "status": "completed",
           "output": [{"key": k, "pages": [n + 1]} for n, k in enumerate(keys)]}
    manifest = write_chunks(raw, doc, doc.read_bytes(), tmp_path / "out", overwrite=False,
                            force=False)
    files = [c["file"] for c in manifest["chunks"]]
    assert files == ["manifest-2.json", "MANIFEST-3.json", "a_b.json", "a_b-2.json",
                     "a_b-2-2.json", "manifest-4.json"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    assert [(tmp_path / "out" / f).read_text() for f in files] == [
        "one", "two", "three", "four", "five", "six"]
