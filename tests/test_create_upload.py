"""`create` with big documents end to end against the emulator (issue 10, docs/design.md
§11): the transport each document takes (inline under the API's 32 MiB body cap, the files
API above it, `--upload never|always`), `--file-id`, the upload's failures as one-line
errors with their exit codes, the safe re-run commands, the dry run and the upload bar.

Big documents are sparse files: a real PDF (the 7-page invoices of the emulator's tests)
with a zero-filled stream object appended as an incremental update, so the emulator
partitions it exactly as the small one and nothing writes 30 MiB of bytes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator.helpers import EXPECTED_CHUNKS, INVOICE_PAGES

from retab_cli import creating
from retab_cli.client import _encode
from retab_cli.creating import CreateOptions, Delivery, Plan
from retab_cli.documents import CHUNK, MAX_BODY, from_file_id, from_path, inline_body_size
from retab_cli.emulator.pdfgen import make_pdf

from cli_support import Cli
from emulator_support import Emulator, start_emulator, wait_until

MIB = 1024 * 1024
KEY = "invoice number"
OTHER_KEY = "rt_test_upload_other"
UPLOAD_PUT = re.compile(r"/_storage/uploads/(file_[0-9a-f]{16})")


def padded_pdf(path: Path, size: int) -> Path:
    """The invoices PDF grown to exactly `size` bytes by an unreferenced stream of zeros
    (a hole in a sparse file), added as an incremental update pypdf reads past."""
    base = make_pdf(INVOICE_PAGES)
    old_xref = int(base.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    number = int(base.split(b"/Size ", 1)[1].split(b" ", 1)[0])
    tail = b"\nendstream\nendobj\n"
    pad = size - len(base)
    for _ in range(3):  # the lengths' digits depend on the padding: settle them
        head = b"%d 0 obj\n<< /Length %d >>\nstream\n" % (number, pad)
        xref_at = len(base) + len(head) + pad + len(tail)
        trailer = (b"xref\n%d 1\n%010d 00000 n \ntrailer\n<< /Size %d /Root 1 0 R /Prev %d >>\n"
                   b"startxref\n%d\n%%%%EOF\n" % (number, len(base), number + 1, old_xref, xref_at))
        pad = size - len(base) - len(head) - len(tail) - len(trailer)
    with path.open("wb") as fh:
        fh.write(base + head)
        fh.seek(pad, os.SEEK_CUR)
        fh.write(tail + trailer)
    assert path.stat().st_size == size
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padded_pdf(tmp_path_factory.mktemp("big") / "contract.pdf", 30 * MIB)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padded_pdf(tmp_path_factory.mktemp("medium") / "invoices.pdf", 20 * MIB)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.pdf"
    path.write_bytes(make_pdf(INVOICE_PAGES))
    return path


def steps(emu: Emulator) -> list[str]:
    """The requests the emulator saw, as `METHOD path` with file ids as `ID`."""
    return [f"{r['method']} {re.sub(r'file_[0-9a-f]{16}', 'ID', r['path'])}"
            for r in emu.requests()]


UPLOAD_STEPS = ["POST /v1/files/upload", "PUT /_storage/uploads/ID",
                "POST /v1/files/upload/ID/complete", "POST /v1/partitions"]


def session_of(emu: Emulator, size: int) -> dict[str, Any]:
    """A real upload session, started directly (not by the tool)."""
    body = {"filename": "contract.pdf", "content_type": "application/pdf", "size_bytes": size}
    request = urllib.request.Request(f"{emu.url}/v1/files/upload", data=json.dumps(body).encode(),
                                     method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {emu.api_key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    with opener.open(request, timeout=30) as response:
        session: dict[str, Any] = json.loads(response.read())
    return session


# ---- the transport each document takes -----------------------------------------------------


def test_a_30_mib_document_is_uploaded_and_partitioned(cli: Cli, big: Path) -> None:
    result = cli.run("partitions", "create", str(big), "--key", KEY, "--json")
    assert result.exit_code == 0, result.stderr
    run = result.json()
    assert run["status"] == "completed" and run["output"] == EXPECTED_CHUNKS
    assert steps(cli.emu) == UPLOAD_STEPS
    start, put, complete, create = cli.emu.requests()
    assert start["body"] == {"filename": "contract.pdf", "content_type": "application/pdf",
                             "size_bytes": 30 * MIB}
    # The bytes went to the signed URL whole, with exactly its headers and no API key.
    assert put["status"] == 200 and put["body_bytes"] == 30 * MIB
    assert "authorization" not in put["headers"]
    assert put["headers"]["content-type"] == "application/pdf"
    file_id = UPLOAD_PUT.fullmatch(put["path"])[1]  # type: ignore[index]
    assert complete["body"] == {"sha256": sha256_of(big)}
    assert create["body"]["document"] == {"filename": "contract.pdf",
                                          "url": f"{cli.emu.url}/_storage/files/{file_id}"}
    assert create["body_bytes"] < 4096  # the MIMEData, not the bytes
    assert run["file"]["id"] == file_id
    assert result.stderr == ""  # no terminal: no bar, and nothing went wrong


def test_a_20_mib_document_goes_inline(cli: Cli, medium: Path) -> None:
    result = cli("partitions", "create", str(medium), "--key", KEY, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["output"] == EXPECTED_CHUNKS
    assert steps(cli.emu) == ["POST /v1/partitions"]
    (create,) = cli.emu.requests()
    digest = sha256_of(medium)
    assert create["body"]["document"]["url"] == (
        f"data:application/pdf;base64,<{20 * MIB} bytes; sha256 {digest}>")
    assert 26 * MIB < create["body_bytes"] < MAX_BODY  # base64: 4/3 of the bytes


def test_an_upload_beside_an_inline_file_with_wait(cli: Cli, big: Path, small: Path) -> None:
    result = cli("partitions", "create", str(big), str(small), "--key", KEY, "--wait",
                 "-o", "json")
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert [r["file"]["filename"] for r in runs] == ["contract.pdf", "small.pdf"]
    assert all(r["status"] == "completed" and r["output"] == EXPECTED_CHUNKS for r in runs)
    creates = [r for r in cli.emu.requests() if r["path"] == "/v1/partitions"]
    documents = sorted(str(r["body"]["document"]["url"])[:5] for r in creates)
    assert documents == ["data:", "http:"]  # one inline, one the stored file's MIMEData
    assert all(r["body"]["background"] is True for r in creates)


def test_stdin_over_the_inline_cap_is_uploaded(cli: Cli, tmp_path: Path) -> None:
    """stdin is held in memory (at most 32 MiB): 25 MiB of it pass the body cap inline
    (base64), so it is uploaded from memory, named by --filename."""
    data = padded_pdf(tmp_path / "scan.pdf", 25 * MIB).read_bytes()
    result = cli("partitions", "create", "-", "--filename", "scan.pdf", "--key", KEY, "--json",
                 input=data)
    assert result.exit_code == 0, result.stderr
    assert result.json()["output"] == EXPECTED_CHUNKS
    assert steps(cli.emu) == UPLOAD_STEPS
    start, put, complete, _ = cli.emu.requests()
    assert start["body"]["filename"] == "scan.pdf" and put["body_bytes"] == 25 * MIB
    assert complete["body"] == {"sha256": hashlib.sha256(data).hexdigest()}


def test_upload_never_refuses_a_30_mib_document_locally(cli: Cli, big: Path) -> None:
    result = cli("partitions", "create", str(big), "--key", KEY, "--upload", "never")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {big} would make a 40.0 MiB request body inline (base64), over the API's "
        "32 MiB limit",
        "hint: use --upload auto to send it through the files API, or pass --url https://... "
        "to a copy the API can fetch"]
    assert cli.emu.requests() == []


def test_upload_always_sends_a_small_file_through_the_files_api(cli: Cli, small: Path) -> None:
    result = cli("partitions", "create", str(small), "--key", KEY, "--upload", "always", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["output"] == EXPECTED_CHUNKS
    assert steps(cli.emu) == UPLOAD_STEPS


def test_upload_modes_in_any_case_and_a_near_miss_hinted(cli: Cli, small: Path) -> None:
    upper = cli("partitions", "create", str(small), "--key", KEY, "--upload", "ALWAYS", "--dry-run")
    assert upper.exit_code == 0, upper.stderr
    assert upper.json()["transport"] == "upload"
    near = cli("partitions", "create", str(small), "--key", KEY, "--upload", "alway")
    assert near.exit_code == 2
    assert near.stderr.splitlines() == [
        "error: invalid --upload 'alway': choose from auto, always, never",
        "hint: did you mean 'always'?"]
    assert cli.emu.requests() == []


def test_the_inline_limit_is_the_exact_encoded_body(tmp_path: Path) -> None:
    """The planner's size is the body the client sends, byte for byte: a file whose body is
    the cap goes inline, one base64 quantum more is uploaded."""
    options = CreateOptions(key="invoice n°", instructions="Split \"exactly\"", model="retab-large",
                            consensus=3, no_overlap=True, background=True)
    doc = from_path(str(padded_pdf(tmp_path / "é.pdf", 4000)), filename=None, mime_type=None,
                    warn=lambda _: None)
    assert len(_encode(options.body(doc))) == inline_body_size(doc, options.envelope())
    # Grow the file (by its recorded size only: plan_transport never reads it).
    over = inline_body_size(doc, options.envelope()) - doc.size  # type: ignore[operator]
    doc.size = (MAX_BODY - over) * 3 // 4
    while inline_body_size(doc, options.envelope()) <= MAX_BODY:
        doc.size += 1
    at_cap = Plan.make(options, [doc], idempotency_key=None, deadline=None, wait=False)
    assert at_cap.transports == ["upload"]
    doc.size -= 1
    assert inline_body_size(doc, options.envelope()) <= MAX_BODY
    assert Plan.make(options, [doc], idempotency_key=None, deadline=None,
                     wait=False).transports == ["inline"]


def test_the_byte_budget_holds_one_chunk_for_an_upload(tmp_path: Path) -> None:
    doc = from_path(str(padded_pdf(tmp_path / "a.pdf", 2 * MIB)), filename=None, mime_type=None,
                    warn=lambda _: None)
    delivery = Delivery(["upload", "inline", "url", "file"])
    assert [delivery.held(i, doc) for i in range(4)] == [CHUNK, 2 * MIB, 0, 0]


def test_big_uploads_do_not_wait_for_each_other(cli: Cli, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two files bigger than the bytes-in-flight bound upload side by side: an upload holds
    one chunk in memory, not its size (before: the second waited for the first's create)."""
    monkeypatch.setattr(creating, "BYTES_IN_FLIGHT", 3 * MIB)
    files = [str(padded_pdf(tmp_path / f"{n}.pdf", 4 * MIB)) for n in "ab"]
    result = cli("partitions", "create", *files, "--key", KEY, "--upload", "always",
                 "--background", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["file"]["filename"] for r in result.json()] == ["a.pdf", "b.pdf"]
    seen = steps(cli.emu)
    assert seen[:2] == ["POST /v1/files/upload"] * 2, seen
    assert sorted(seen) == sorted(UPLOAD_STEPS * 2)


def test_dry_run_says_how_each_document_travels(cli: Cli, big: Path, small: Path) -> None:
    result = cli("partitions", "create", str(small), str(big), "--key", KEY, "--dry-run",
                 env={"RETAB_API_KEY": ""})
    assert result.exit_code == 0, result.stderr
    inline, upload = result.json()
    assert inline["transport"] == "inline" and "upload" not in inline
    assert inline["body"]["document"]["url"] == (
        f"data:application/pdf;base64,<{small.stat().st_size} bytes>")
    assert upload["transport"] == "upload"
    assert upload["upload"] == {"method": "POST", "path": "/v1/files/upload", "body": {
        "filename": "contract.pdf", "content_type": "application/pdf", "size_bytes": 30 * MIB}}
    assert upload["body"]["document"] == {
        "filename": "contract.pdf", "url": f"<the MIMEData of the upload: {30 * MIB} bytes>"}
    assert result.stderr == "dry run: 2 request(s) not sent (1 inline, 1 upload)\n"
    assert cli.emu.requests() == []


def test_dry_run_of_a_data_url_shows_its_own_header(cli: Cli) -> None:
    result = cli("partitions", "create", "--url", "data:text/plain;base64,aGVsbG8=", "--filename",
                 "a.txt", "--mime-type", "text/csv", "--key", KEY, "--dry-run")
    assert result.exit_code == 0, result.stderr
    request = result.json()
    assert request["transport"] == "url"
    assert request["body"]["document"] == {"filename": "a.txt",
                                           "url": "data:text/plain;base64,<5 bytes>"}


def test_a_plan_made_without_transports_sends_as_auto_would(small: Path, big: Path) -> None:
    """`Plan` built directly (not through `make`): its creates still go the auto way."""
    from retab_cli.creating import Creates

    docs = [from_path(str(p), filename=None, mime_type=None, warn=lambda _: None)
            for p in (small, big)]
    creates = Creates(Plan(CreateOptions(key=KEY), docs, ["k1", "k2"], None, False))
    assert list(creates.delivery.transports) == ["inline", "upload"]


# ---- --file-id -----------------------------------------------------------------------------


def uploaded(cli: Cli, path: Path) -> str:
    """A file stored through the tool (`--upload always`); its id."""
    result = cli("partitions", "create", str(path), "--key", KEY, "--upload", "always",
                 "--background", "--json")
    assert result.exit_code == 0, result.stderr
    file_id: str = result.json()["file"]["id"]
    cli.emu.clear_requests()
    return file_id


def test_file_id_round_trip(cli: Cli, small: Path) -> None:
    file_id = uploaded(cli, small)
    result = cli("partitions", "create", "--file-id", file_id, "--key", KEY, "--json")
    assert result.exit_code == 0, result.stderr
    run = result.json()
    assert run["output"] == EXPECTED_CHUNKS and run["file"]["filename"] == "small.pdf"
    link, create = cli.emu.requests()
    assert (link["method"], link["path"]) == ("GET", f"/v1/files/{file_id}/download-link")
    assert create["body"]["document"] == {"filename": "small.pdf",
                                          "url": f"{cli.emu.url}/_storage/files/{file_id}"}


def test_several_file_ids_with_wait(cli: Cli, small: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pdf"
    shutil.copy(small, other)
    ids = [uploaded(cli, small), uploaded(cli, other)]
    result = cli("partitions", "create", "--file-id", ids[0], "--file-id", ids[1], "--key", KEY,
                 "--wait", "-o", "json")
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert [r["file"]["filename"] for r in runs] == ["small.pdf", "other.pdf"]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert all(r["output"] == EXPECTED_CHUNKS for r in runs)


def test_file_id_dry_run_and_refusals(cli: Cli, small: Path) -> None:
    dry = cli("partitions", "create", "--file-id", "file_0123456789abcdef", "--key", KEY,
              "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    request = dry.json()
    assert request["transport"] == "file"
    assert request["file"] == {"method": "GET",
                               "path": "/v1/files/file_0123456789abcdef/download-link"}
    bad = cli("partitions", "create", "--file-id", "../x", "--key", KEY)
    assert (bad.exit_code, bad.stderr.splitlines()[0]) == (
        2, "error: invalid file id ../x: ids are 1-128 characters of A-Z a-z 0-9 _ -")
    both = cli("partitions", "create", str(small), "--file-id", "file_1", "--key", KEY)
    assert (both.exit_code, both.stderr.splitlines()[0]) == (
        2, "error: give FILE arguments, --url or --file-id, not several of them")
    named = cli("partitions", "create", "--file-id", "file_1", "--filename", "x.pdf", "--key", KEY)
    assert named.exit_code == 2 and "do not apply to --file-id" in named.stderr
    assert cli.emu.requests() == []


@pytest.fixture(scope="module")
def two_keys() -> Iterator[Emulator]:
    emu = start_emulator("--api-key", "rt_test_emulator", "--api-key", OTHER_KEY)
    yield emu
    emu.stop()


def test_another_keys_file_is_not_found(two_keys: Emulator, small: Path, tmp_path: Path) -> None:
    mine = Cli(two_keys, tmp_path / "mine")
    file_id = uploaded(mine, small)
    theirs = Cli(two_keys, tmp_path / "theirs")
    result = theirs("partitions", "create", "--file-id", file_id, "--key", KEY, "--json",
                    env={"RETAB_API_KEY": OTHER_KEY})
    assert result.exit_code == 6
    assert result.stdout == ""
    assert re.fullmatch(rf"error: file {file_id}: File not found \(request_id req_\w+\)",
                        result.stderr.splitlines()[0])
    assert "hint: files belong to the API key that uploaded them" in result.stderr
    assert [r["path"] for r in two_keys.requests()] == [f"/v1/files/{file_id}/download-link"]


# ---- the upload's failures -----------------------------------------------------------------


def test_a_put_cut_off_mid_stream_is_sent_again(cli: Cli, big: Path) -> None:
    cli.emu.add_fault(path="^/_storage/uploads/", method="PUT", drop_after=5 * MIB, times=1)
    result = cli("partitions", "create", str(big), "--key", KEY, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["output"] == EXPECTED_CHUNKS
    puts = [r for r in cli.emu.requests() if r["method"] == "PUT"]
    assert [r["body_bytes"] for r in puts][-1] == 30 * MIB
    assert len(puts) == 2 and puts[0]["path"] == puts[1]["path"]  # the same URL again
    (notice,) = [line for line in result.stderr.splitlines() if "retrying" in line]
    assert notice.startswith(f"retrying the upload of {big} in ")


def test_an_expired_upload_url_starts_a_new_session(cli: Cli, small: Path) -> None:
    cli.emu.add_fault(path="^/_storage/uploads/", method="PUT", status=410, times=1)
    result = cli("partitions", "create", str(small), "--key", KEY, "--upload", "always", "--json")
    assert result.exit_code == 0, result.stderr
    assert steps(cli.emu) == ["POST /v1/files/upload", "PUT /_storage/uploads/ID", *UPLOAD_STEPS]
    assert (f"upload of {small}: the upload URL has expired (HTTP 410); starting a new upload "
            "session (2/3)") in result.stderr.splitlines()


def test_an_upload_that_keeps_expiring_is_one_clean_error(cli: Cli, small: Path) -> None:
    cli.emu.add_fault(path="^/_storage/uploads/", method="PUT", status=410, times=3)
    result = cli("partitions", "create", str(small), "--key", KEY, "--upload", "always", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("{")]
    (error,) = [json.loads(line)["error"] for line in errors]
    assert error["message"] == (f"the upload of {small} failed: the upload URL has "
                                "expired (HTTP 410) (3 upload sessions tried)")
    assert error["file"] == str(small) and error["exit_code"] == 1
    assert "Traceback" not in result.stderr
    assert steps(cli.emu).count("POST /v1/files/upload") == 3
    assert "POST /v1/partitions" not in steps(cli.emu)


def test_a_checksum_mismatch_at_completion_is_a_usage_error(cli: Cli, small: Path) -> None:
    detail = {"code": "checksum_mismatch", "message": "sha256 does not match the bytes received",
              "details": {}}
    cli.emu.add_fault(path="/complete$", method="POST", status=422, body={"detail": detail})
    result = cli("partitions", "create", str(small), "--key", KEY, "--upload", "always")
    assert result.exit_code == 2
    assert result.stdout == ""
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: the upload of {small} was refused at completion: the "
                            "server's copy does not match the file's size or sha256 (sha256 "
                            "does not match the bytes received) (request_id req_")
    assert rest[0] == "hint: did the file change while it was being sent? run the command again"
    assert "POST /v1/partitions" not in steps(cli.emu)


def test_a_tampered_signature_is_refused_by_storage(cli: Cli, small: Path) -> None:
    """The API hands out a URL whose signature storage refuses (403): one line, exit 1."""
    session = session_of(cli.emu, small.stat().st_size)
    url = urllib.parse.urlsplit(session["uploadUrl"])
    query = dict(urllib.parse.parse_qsl(url.query))
    query["signature"] = ("0" if query["signature"][0] != "0" else "1") + query["signature"][1:]
    session["uploadUrl"] = url._replace(query=urllib.parse.urlencode(query)).geturl()
    cli.emu.clear_requests()
    cli.emu.add_fault(path="^/v1/files/upload$", method="POST", status=200, body=session)
    result = cli("partitions", "create", str(small), "--key", KEY, "--upload", "always")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {small}: the storage server answered HTTP 403 Forbidden: the upload was refused",
        "hint: storage did not accept the signed upload URL the API gave; run the command again "
        "for a new upload session"]
    put = cli.emu.requests()[1]
    assert (put["method"], put["status"]) == ("PUT", 403)
    assert "POST /v1/partitions" not in steps(cli.emu)


# ---- safe re-runs --------------------------------------------------------------------------


def test_an_unknown_outcome_after_an_upload_retries_with_the_stored_file(
        cli: Cli, small: Path) -> None:
    """The create after an upload went unanswered: the retry names the uploaded file, so
    its body is the same (a second upload would be another file, and the reused key with
    another body is refused)."""
    cli.emu.add_fault(path="^/v1/partitions$", method="POST", drop=True, times=5)
    result = cli("partitions", "create", str(small), "--key", KEY, "--upload", "always",
                 "--background")
    assert result.exit_code == 1
    file_id = UPLOAD_PUT.fullmatch(cli.emu.requests()[1]["path"])[1]  # type: ignore[index]
    (hint,) = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    command = hint.split("with: ", 1)[1]
    key = command.rsplit(" ", 1)[1]
    assert command == (f"retab partitions create --file-id {file_id} --key 'invoice number' "
                       f"--background --idempotency-key {key}")
    cli.emu.clear_requests()
    again = cli(*command.split(" ", 3)[1:3], "--file-id", file_id, "--key", KEY, "--background",
                "--idempotency-key", key, "--json")
    assert again.exit_code == 0, again.stderr
    assert steps(cli.emu) == ["GET /v1/files/ID/download-link", "POST /v1/partitions"]
    assert again.json()["file"]["id"] == file_id


def test_rerun_commands_carry_upload_and_file_id(small: Path) -> None:
    options = CreateOptions(key=KEY)
    doc = from_path(str(small), filename=None, mime_type=None, warn=lambda _: None)
    assert options.rerun(doc, "k1", False, upload="never") == (
        f"retab partitions create {small} --upload never --key 'invoice number' "
        "--idempotency-key k1")
    assert options.rerun(doc, "k1", True) == (
        f"retab partitions create {small} --key 'invoice number' --wait --idempotency-key k1")
    named = from_path(str(small), filename="other.pdf", mime_type=None, warn=lambda _: None)
    assert options.rerun(named, "k2", False, upload="always", file_id="file_ab") == (
        "retab partitions create --file-id file_ab --key 'invoice number' --idempotency-key k2")
    stored = from_file_id("file_cd")  # given as --file-id: named so again
    assert CreateOptions(key=KEY, background=True).rerun(stored, "k3", False) == (
        "retab partitions create --file-id file_cd --key 'invoice number' --background "
        "--idempotency-key k3")


@pytest.fixture
def own_emulator() -> Iterator[Emulator]:
    """An emulator of this test's own: requests it leaves hanging cannot reach another
    test's request log."""
    emu = start_emulator()
    yield emu
    emu.stop()


def test_an_interrupted_upload_create_prints_reruns_with_upload(
        tmp_path: Path, own_emulator: Emulator, small: Path) -> None:
    """Ctrl-C while uploads hang and other documents wait: every document's safe re-run
    keeps `--upload always` (none was answered, so none names a stored file)."""
    files = []
    for n in range(6):
        copy = tmp_path / f"doc{n}.pdf"
        shutil.copy(small, copy)
        files.append(str(copy))
    emu = own_emulator
    emu.add_fault(path="^/v1/files/upload$", method="POST", delay=60, times=6)
    cli = Cli(emu, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", "partitions", "create", *files,
                             "--key", KEY, "--upload", "always", "--background"],
                            env={**os.environ, **{k: v for k, v in cli.env.items() if v}},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Four uploads at once (UPLOADS_AT_ONCE) have taken their delay; two documents wait.
    wait_until(lambda: _pending_delays(emu) == 6 - creating.UPLOADS_AT_ONCE, timeout=30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out == ""
    # The four being uploaded had sent no create: "not sent", like the two waiting.
    assert "interrupted: created 0 of 6 run(s); 6 not sent" in err
    reruns = [line.strip() for line in err.splitlines() if line.strip().startswith("retab ")]
    assert [line.split(" ")[3] for line in reruns] == files
    assert all(" --upload always --key 'invoice number' --background --idempotency-key " in line
               for line in reruns)


def _pending_delays(emu: Emulator) -> int:
    """Delay faults not yet taken (each POST /v1/files/upload takes one)."""
    faults = emu.control("GET", "faults")
    assert isinstance(faults, list)
    return sum(int(f["times"]) for f in faults)


# ---- the upload bar ------------------------------------------------------------------------


def test_the_upload_bar_on_a_terminal_shows_bytes(cli: Cli, big: Path) -> None:
    from test_watch_e2e import plain, run_in_script

    # Storage stalls a second before reading: the bar is drawn with part of the bytes sent.
    cli.emu.add_fault(path="^/_storage/uploads/", method="PUT", delay=1.0)
    code, received = run_in_script(cli, "partitions", "create", str(big), "--key", KEY)
    assert code == 0, received
    lines = plain(received)
    assert any(re.search(r"uploading contract\.pdf .* \d+\.\d/30\.0 MiB (\?|[\d.]+ MiB/s)", line)
               for line in lines), received
    assert any(re.search(r"waiting for the run .*\d:\d\d:\d\d", line) for line in lines), received
    assert "Traceback" not in received


@pytest.mark.parametrize("flag", ["-q", "--no-progress"])
def test_the_upload_bar_is_off_on_a_terminal_with_quiet_or_no_progress(
        cli: Cli, big: Path, flag: str) -> None:
    from test_watch_e2e import plain, run_in_script

    cli.emu.add_fault(path="^/_storage/uploads/", method="PUT", delay=1.0)
    code, received = run_in_script(cli, "partitions", "create", str(big), "--key", KEY, flag,
                                   "--background")
    assert code == 0, received
    assert "uploading" not in received and "MiB" not in received
    assert re.search(r"prtn_[\w-]+", plain(received)[0]), received  # the run, still shown


def test_upload_bars_draw_bytes_and_rate_and_sanitise_names(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from retab_cli.render import Renderer
    from retab_cli.render.transfer import UploadBars

    monkeypatch.setattr(Renderer, "stderr_tty", property(lambda self: True))
    with UploadBars(Renderer("table", color="always", width=120), status="created",
                    total=2) as bars:
        track = bars.tracker("scan\x1b[2J.pdf")
        for sent in (0, 4 * MIB, 8 * MIB, 12 * MIB):
            track(sent, 30 * MIB)
        assert bars._progress is not None
        bars._progress.refresh()
        bars.advance("a.pdf")
        track(30 * MIB, 30 * MIB)  # done: the row goes
        assert len(bars._progress.tasks) == 1
    err = capsys.readouterr().err
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)
    assert re.search(r"uploading scan\\x1b\[2J\.pdf .* 12\.0/30\.0 MiB [\d.]+ MiB/s", text), text
    assert "created" in text and "0/2" in text
    assert "\x1b[2J" not in err


@pytest.mark.parametrize(("quiet", "progress"), [(True, True), (False, False)])
def test_upload_bars_are_silent_with_quiet_or_no_progress(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        quiet: bool, progress: bool) -> None:
    from retab_cli.render import Renderer
    from retab_cli.render.transfer import UploadBars

    monkeypatch.setattr(Renderer, "stderr_tty", property(lambda self: True))
    with UploadBars(Renderer("table", color="always", quiet=quiet, progress=progress),
                    status="created", total=2) as bars:
        bars.tracker("a.pdf")(5, 10)
        bars.advance("a.pdf")
        assert not bars.live
    assert capsys.readouterr() == ("", "")


def test_upload_completion_offers_the_modes(cli: Cli) -> None:
    from test_completion import complete

    assert complete(cli, "retab partitions create --upload ") == ["auto", "always", "never"]
    assert complete(cli, "retab partitions create --upload a") == ["auto", "always"]
