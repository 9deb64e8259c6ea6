"""The files API over HTTP: upload, signed PUT, complete, get, download link; stored
files as partition documents; the request log of an upload."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from retab_cli.emulator.pdfgen import make_pdf

from .helpers import EXPECTED_CHUNKS, INVOICE_PAGES, body, client, data_url
from emulator_support import Emulator, start_emulator, wait_until

FILE_ID = re.compile(r"file_[0-9a-f]{16}")
PDF = make_pdf(INVOICE_PAGES)
OTHER_KEY = "rt_test_files_other"


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with client(emu) as c:
        yield c


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def start(http: httpx.Client, data: bytes, **fields: Any) -> dict[str, Any]:
    request = {"filename": "invoices.pdf", "content_type": "application/pdf", "size_bytes": len(data)}
    response = http.post("/v1/files/upload", json={**request, **fields})
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def put(session: dict[str, Any], data: bytes, **headers: str) -> httpx.Response:
    """The PUT as a careful client sends it: exactly uploadHeaders, no API key."""
    with httpx.Client(trust_env=False, timeout=30) as storage:
        return storage.request(
            session["uploadMethod"],
            session["uploadUrl"],
            content=data,
            headers={**session["uploadHeaders"], **headers},
        )


def complete(http: httpx.Client, file_id: str, digest: str | None = None) -> httpx.Response:
    return http.post(f"/v1/files/upload/{file_id}/complete", json={"sha256": digest} if digest else {})


def upload(http: httpx.Client, data: bytes = PDF, **fields: Any) -> dict[str, Any]:
    """All three steps; the MIMEData."""
    session = start(http, data, **fields)
    assert put(session, data).status_code == 200
    response = complete(http, session["fileId"], sha(data))
    assert response.status_code == 200, response.text
    mime: dict[str, Any] = response.json()
    return mime


def test_an_upload_in_three_steps(emu: Emulator, http: httpx.Client) -> None:
    before = datetime.now(UTC)
    session = start(http, PDF, sha256=sha(PDF))
    assert list(session) == ["fileId", "uploadUrl", "uploadMethod", "uploadHeaders", "mimeData", "expiresAt"]
    file_id = session["fileId"]
    assert FILE_ID.fullmatch(file_id)
    url = urllib.parse.urlsplit(session["uploadUrl"])
    assert f"{url.scheme}://{url.netloc}" == emu.url and url.path == f"/_storage/uploads/{file_id}"
    assert set(urllib.parse.parse_qs(url.query)) == {"expires", "signature"}
    assert session["uploadMethod"] == "PUT"
    assert session["uploadHeaders"] == {"Content-Type": "application/pdf"}
    durable = {"filename": "invoices.pdf", "url": f"{emu.url}/_storage/files/{file_id}"}
    assert session["mimeData"] == durable
    # 15 minutes at speed 20: 45 s.
    lifetime = datetime.fromisoformat(session["expiresAt"]) - before
    assert 44 < lifetime.total_seconds() < 47
    stored = put(session, PDF)
    assert stored.status_code == 200
    assert stored.json() == {"file_id": file_id, "size_bytes": len(PDF), "sha256": sha(PDF)}
    done = complete(http, file_id, sha(PDF))
    assert done.status_code == 200 and done.json() == durable
    assert complete(http, file_id).json() == durable  # again: the same answer


def test_get_file_and_its_download_link(emu: Emulator, http: httpx.Client) -> None:
    mime = upload(http)
    file_id = mime["url"].rsplit("/", 1)[1]
    info = http.get(f"/v1/files/{file_id}")
    assert info.status_code == 200
    got = info.json()
    assert {k: got[k] for k in ("object", "id", "filename", "mime_type", "page_count")} == {
        "object": "file",
        "id": file_id,
        "filename": "invoices.pdf",
        "mime_type": "application/pdf",
        "page_count": 7,
    }
    assert got["created_at"] <= got["updated_at"]
    link = http.get(f"/v1/files/{file_id}/download-link").json()
    assert set(link) == {"download_url", "expires_in", "filename", "mime_data"}
    assert (link["filename"], link["mime_data"], link["expires_in"]) == ("invoices.pdf", mime, "180s")
    with httpx.Client(trust_env=False) as anyone:  # a signed URL needs no key
        download = anyone.get(link["download_url"])
        assert download.status_code == 200 and download.content == PDF
        assert download.headers["content-type"] == "application/pdf"
        unsigned = anyone.get(mime["url"])
        assert unsigned.status_code == 403 and unsigned.json()["detail"]["code"] == "invalid_signature"


@pytest.mark.parametrize(
    ("pages", "content_type", "count"),
    [
        (b"Invoice number: A\fInvoice number: B\f\f", "text/plain", 3),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png", 1),
        (bytes(range(256)), "application/octet-stream", None),
    ],
)
def test_page_counts(http: httpx.Client, pages: bytes, content_type: str, count: int | None) -> None:
    mime = upload(http, pages, filename="doc", content_type=content_type)
    info = http.get(f"/v1/files/{mime['url'].rsplit('/', 1)[1]}").json()
    assert info["page_count"] == count and info["mime_type"] == content_type


def test_stored_files_are_partitioned_as_inline_ones(http: httpx.Client) -> None:
    inline = http.post("/v1/partitions", json=body(data_url(PDF))).json()
    mime = upload(http)
    file_id = mime["url"].rsplit("/", 1)[1]
    link = http.get(f"/v1/files/{file_id}/download-link").json()
    for url in (mime["url"], link["download_url"]):
        run = http.post("/v1/partitions", json=body(url)).json()
        assert run["status"] == "completed" and run["output"] == EXPECTED_CHUNKS
        assert run["file"] == {**inline["file"], "id": file_id}
        assert (run["usage"], run["error"]) == (inline["usage"], None)


def test_a_30_mib_document_goes_through_upload(http: httpx.Client) -> None:
    filler = "lorem ipsum " * (10 * 1024 * 1024 // 12)
    text = "\f".join(f"Invoice number: INV-{n}\n{filler}" for n in (1, 2, 3)).encode()
    assert len(text) > 30 * 1024 * 1024
    too_big = http.post("/v1/partitions", json=body(data_url(text, "text/plain"), filename="big.txt"))
    assert too_big.status_code == 413
    mime = upload(http, text, filename="big.txt", content_type="text/plain")
    run = http.post("/v1/partitions", json=body(mime["url"], filename="big.txt")).json()
    assert run["status"] == "completed", run["error"]
    assert run["output"] == [{"key": f"INV-{n}", "pages": [n]} for n in (1, 2, 3)]


def test_the_request_log_shows_the_three_steps_without_the_bytes(emu: Emulator, http: httpx.Client) -> None:
    emu.clear_requests()
    mime = upload(http, PDF, sha256=sha(PDF))
    file_id = mime["url"].rsplit("/", 1)[1]
    log = emu.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/v1/files/upload", 200),
        ("PUT", f"/_storage/uploads/{file_id}", 200),
        ("POST", f"/v1/files/upload/{file_id}/complete", 200),
    ]
    start_entry, put_entry, complete_entry = log
    assert start_entry["body"] == {
        "filename": "invoices.pdf",
        "content_type": "application/pdf",
        "size_bytes": len(PDF),
        "sha256": sha(PDF),
    }
    assert "authorization" not in put_entry["headers"] and "api-key" not in put_entry["headers"]
    assert put_entry["headers"]["content-type"] == "application/pdf"
    assert put_entry["body"] is None and put_entry["body_bytes"] == len(PDF)
    assert put_entry["query"]["signature"].startswith("****")
    assert complete_entry["body"] == {"sha256": sha(PDF)}


def test_uploads_and_files_need_a_key(emu: Emulator) -> None:
    with httpx.Client(base_url=emu.url, trust_env=False) as anonymous:
        assert anonymous.post("/v1/files/upload", json={"filename": "a", "size_bytes": 1}).status_code == 401
        assert anonymous.get("/v1/files/file_0000000000000000").status_code == 401


def test_unknown_files_and_sessions(http: httpx.Client) -> None:
    missing = "file_0123456789abcdef"
    assert http.get(f"/v1/files/{missing}").json() == {"detail": "File not found"}
    assert http.get(f"/v1/files/{missing}/download-link").status_code == 404
    response = complete(http, missing)
    assert response.status_code == 404 and response.json() == {"detail": "Upload session not found"}
    session = start(http, PDF)  # reserved, not yet complete: not a file yet
    assert http.get(f"/v1/files/{session['fileId']}").status_code == 404


@pytest.mark.parametrize(
    ("fields", "loc", "kind"),
    [
        ({"size_bytes": -1}, ["body", "size_bytes"], "greater_than_equal"),
        ({"size_bytes": 2 * 1024**3}, ["body", "size_bytes"], "less_than_equal"),
        ({"filename": ""}, ["body", "filename"], "string_too_short"),
        ({"sha256": "abc"}, ["body", "sha256"], "string_pattern_mismatch"),
        ({"content_type": "pdf\r\nX-Evil: 1"}, ["body", "content_type"], "value_error"),
        ({"content_type": "text/plain\r\n;x"}, ["body", "content_type"], "value_error"),
    ],
)
def test_upload_validation(http: httpx.Client, fields: dict[str, Any], loc: list[str], kind: str) -> None:
    request = {"filename": "a.pdf", "size_bytes": 10, **fields}
    response = http.post("/v1/files/upload", json=request)
    assert response.status_code == 422, response.text
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [(loc, kind)]


def test_complete_checks_size_and_checksum(http: httpx.Client) -> None:
    session = start(http, PDF)
    file_id = session["fileId"]
    missing = complete(http, file_id)
    assert missing.status_code == 422 and missing.json()["detail"]["code"] == "upload_missing"
    assert put(session, PDF[:-10]).status_code == 200
    short = complete(http, file_id).json()["detail"]
    assert short == {
        "code": "size_mismatch",
        "message": f"the upload is {len(PDF) - 10} bytes; the session declared {len(PDF)}",
        "details": {"expected": len(PDF), "received": len(PDF) - 10},
    }
    assert put(session, PDF).status_code == 200  # a second PUT replaces the first
    wrong = complete(http, file_id, "0" * 64)
    assert wrong.status_code == 422
    assert wrong.json()["detail"]["code"] == "checksum_mismatch"
    assert wrong.json()["detail"]["details"] == {"expected": "0" * 64, "received": sha(PDF)}
    assert complete(http, file_id, sha(PDF).upper()).status_code == 200


def test_a_checksum_declared_at_upload_is_checked(http: httpx.Client) -> None:
    session = start(http, PDF, sha256="a" * 64)
    put(session, PDF)
    response = complete(http, session["fileId"])
    assert response.status_code == 422 and response.json()["detail"]["code"] == "checksum_mismatch"


def signed(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    query = {k: v for k, v in query.items() if v}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def test_a_bad_signature_is_403(http: httpx.Client) -> None:
    session = start(http, PDF)
    url = session["uploadUrl"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    later = str(int(query["expires"]) + 1_000_000)
    for bad in (signed(url, signature=flipped), signed(url, expires=later), signed(url, signature="")):
        response = put({**session, "uploadUrl": bad}, PDF)
        assert response.status_code == 403, bad
        assert response.json()["detail"]["code"] == "invalid_signature"
    other = start(http, PDF)
    crossed = url.replace(session["fileId"], other["fileId"])  # one file's signature on another
    assert put({**session, "uploadUrl": crossed}, PDF).status_code == 403
    mime = upload(http)
    link = http.get(f"/v1/files/{mime['url'].rsplit('/', 1)[1]}/download-link").json()
    with httpx.Client(trust_env=False) as anyone:
        assert anyone.get(signed(link["download_url"], signature="f" * 64)).status_code == 403
    run = http.post("/v1/partitions", json=body(signed(link["download_url"], signature="f" * 64))).json()
    assert run["status"] == "failed" and run["error"]["code"] == "remote_fetch_failed"
    assert "403" in run["error"]["message"]


def test_the_put_takes_the_signed_headers_and_no_key(emu: Emulator, http: httpx.Client) -> None:
    session = start(http, PDF)
    keyed = put(session, PDF, Authorization=f"Bearer {emu.api_key}")
    assert keyed.status_code == 400 and keyed.json()["detail"]["code"] == "credentials_not_allowed"
    retyped = put(session, PDF, **{"Content-Type": "text/plain"})
    assert retyped.status_code == 403
    assert "Content-Type must be 'application/pdf'" in retyped.json()["detail"]["message"]
    assert put(session, PDF).status_code == 200
    assert complete(http, session["fileId"]).status_code == 200
    late = put(session, PDF)
    assert late.status_code == 409 and late.json()["detail"]["code"] == "upload_completed"


KEY = "rt_test_files_one"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Path]]:
    """Two keys, a file database, uploads capped at 1 MiB."""
    db = tmp_path_factory.mktemp("files") / "emulator.sqlite3"
    emu = start_emulator("--api-key", KEY, "--api-key", OTHER_KEY, "--max-upload", "1MiB", db=str(db))
    yield emu, db
    emu.stop()


def test_another_keys_file_is_not_found(keyed: tuple[Emulator, Path]) -> None:
    emu, _ = keyed
    with client(emu, KEY) as mine, client(emu, OTHER_KEY) as theirs:
        mime = upload(mine)
        file_id = mime["url"].rsplit("/", 1)[1]
        session = start(mine, PDF)
        assert put(session, PDF).status_code == 200
        assert theirs.get(f"/v1/files/{file_id}").json() == {"detail": "File not found"}
        assert theirs.get(f"/v1/files/{file_id}/download-link").status_code == 404
        assert complete(theirs, session["fileId"]).json() == {"detail": "Upload session not found"}
        run = theirs.post("/v1/partitions", json=body(mime["url"])).json()
        assert run["status"] == "failed" and run["error"]["code"] == "file_not_found"
        # A signed link is a capability: whoever holds it may read the file.
        link = mine.get(f"/v1/files/{file_id}/download-link").json()["download_url"]
        assert theirs.post("/v1/partitions", json=body(link)).json()["output"] == EXPECTED_CHUNKS


def test_bytes_are_stored_on_disk_beside_the_database(keyed: tuple[Emulator, Path]) -> None:
    emu, db = keyed
    data = b"Invoice number: DISK-1\n" * 100
    with client(emu, KEY) as http:
        first = upload(http, data, filename="a.txt", content_type="text/plain")
        second = upload(http, data, filename="b.txt", content_type="text/plain")
    assert first["url"] != second["url"]  # identical bytes: two files...
    root = db.with_name(db.name + "-files")
    assert (root / "blobs" / sha(data)).read_bytes() == data  # ...and one blob
    assert list((root / "parts").iterdir()) == []


def test_max_upload_is_enforced_at_the_start_and_while_streaming(keyed: tuple[Emulator, Path]) -> None:
    emu, _ = keyed
    with client(emu, KEY) as http:
        over = http.post("/v1/files/upload", json={"filename": "a", "size_bytes": MIB + 1})
        assert over.status_code == 422
        (error,) = over.json()["detail"]
        assert (error["loc"], error["ctx"]) == (["body", "size_bytes"], {"le": MIB})
        session = start(http, b"x" * MIB, content_type="application/octet-stream")
    declared = put(session, b"x" * (MIB + 1))
    assert declared.status_code == 413 and declared.json()["detail"]["code"] == "upload_too_large"

    def pieces() -> Iterator[bytes]:  # no Content-Length: refused while the bytes arrive
        for _ in range(4):
            yield b"x" * (MIB // 2)

    streamed = put(session, pieces())  # type: ignore[arg-type]
    assert streamed.status_code == 413 and streamed.headers["connection"] == "close"


def test_an_upload_cut_off_mid_stream_can_be_sent_again(keyed: tuple[Emulator, Path]) -> None:
    emu, db = keyed
    data = bytes(range(256)) * 2048  # 512 KiB
    with client(emu, KEY) as http:
        session = start(http, data, content_type="application/octet-stream")
        emu.add_fault(path="^/_storage/uploads/", method="PUT", drop_after=100_000)
        with pytest.raises(httpx.TransportError):
            put(session, data)
        parts = db.with_name(db.name + "-files") / "parts"
        wait_until(lambda: not list(parts.iterdir()))  # the partial bytes are dropped
        assert complete(http, session["fileId"]).json()["detail"]["code"] == "upload_missing"
        assert put(session, data).status_code == 200
        assert complete(http, session["fileId"], sha(data)).status_code == 200


def test_sessions_and_links_expire(tmp_path: Path) -> None:
    db = str(tmp_path / "emulator.sqlite3")
    first = start_emulator(db=db)
    try:
        with client(first) as http:
            mime = upload(http)
    finally:
        first.stop()
    # Restarted on the same database, 9000 times faster: an upload session lasts
    # 0.1 s and a download link 0.4 s. Files outlive the process (signatures do not).
    emu = start_emulator(db=db, speed=9000)
    try:
        with client(emu) as http:
            session = start(http, PDF)  # nothing here has to happen within 0.1 s
            late = start(http, PDF)
            file_id = mime["url"].rsplit("/", 1)[1]
            link = http.get(f"/v1/files/{file_id}/download-link").json()
            assert link["expires_in"] == "0.4s"
            wait_until(lambda: datetime.now(UTC) > _expiry(link), timeout=10)
            gone = complete(http, session["fileId"])
            assert gone.status_code == 410 and gone.json()["detail"]["code"] == "upload_expired"
            assert complete(http, session["fileId"]).status_code == 404  # forgotten since
            expired = put(late, PDF)
            assert expired.status_code == 403
            assert expired.json()["detail"]["message"] == "the signed URL has expired"
            with httpx.Client(trust_env=False) as anyone:
                assert anyone.get(link["download_url"]).status_code == 403
            # The durable MIMEData still names the file, though the port has changed.
            run = http.post("/v1/partitions", json=body(mime["url"])).json()
            assert run["output"] == EXPECTED_CHUNKS
    finally:
        emu.stop()
def _expiry(link: dict[str, Any]) -> datetime:
    expires = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link["download_url"]).query))["expires"]
    return datetime.fromtimestamp(int(expires) / 1_000_000, UTC)


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def test_an_upload_streams_to_disk_in_bounded_memory(emu: Emulator, http: httpx.Client) -> None:
    if emu.proc is None:
        pytest.skip("needs the emulator's process")
    size = 256 * MIB
    piece = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256()
    for _ in range(size // len(piece)):
        digest.update(piece)
    before = _peak_rss_kib(emu.proc.pid)
    session = start(http, b"", size_bytes=size, content_type="application/octet-stream")
    stored = put(session, iter([piece] * (size // len(piece))))  # type: ignore[arg-type]
    assert stored.status_code == 200 and stored.json()["sha256"] == digest.hexdigest()
    assert complete(http, session["fileId"], digest.hexdigest()).status_code == 200
    grown_mib = (_peak_rss_kib(emu.proc.pid) - before) / 1024
    assert grown_mib < 32, f"the emulator's peak RSS grew by {grown_mib:.0f} MiB for a 256 MiB upload"


def test_a_reset_during_an_upload_ends_it_cleanly(emu: Emulator, http: httpx.Client) -> None:
    session = start(http, b"x" * (2 * MIB), content_type="application/octet-stream")

    def pieces() -> Iterator[bytes]:
        yield b"x" * MIB
        emu.reset()  # storage and sessions go while the PUT is under way
        yield b"x" * MIB

    response = put(session, pieces())  # type: ignore[arg-type]
    assert response.status_code == 404 and response.json() == {"detail": "Upload session not found"}


def test_bytes_removed_from_disk_are_a_clean_error(keyed: tuple[Emulator, Path]) -> None:
    emu, db = keyed
    blobs = db.with_name(db.name + "-files") / "blobs"
    data = b"Invoice number: GONE-1\n"
    with client(emu, KEY) as http:
        session = start(http, data, content_type="text/plain")
        assert put(session, data).status_code == 200
        (blobs / sha(data)).unlink()
        missing = complete(http, session["fileId"])
        assert missing.status_code == 422 and missing.json()["detail"]["code"] == "upload_missing"
        mime = upload(http, data, content_type="text/plain")
        link = http.get(f"/v1/files/{mime['url'].rsplit('/', 1)[1]}/download-link").json()
        (blobs / sha(data)).unlink()
        with httpx.Client(trust_env=False) as anyone:
            assert anyone.get(link["download_url"]).status_code == 404
        run = http.post("/v1/partitions", json=body(mime["url"])).json()
        assert run["status"] == "failed" and run["error"]["code"] == "file_not_found"


def test_an_emulator_without_uploads_makes_no_storage_directory(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite3"
    emu = start_emulator(db=str(db))
    try:
        with client(emu) as http:
            assert http.post("/v1/partitions", json=body()).json()["status"] == "completed"
            assert http.get("/v1/files/file_0123456789abcdef").status_code == 404
    finally:
        emu.stop()
    assert db.exists() and not db.with_name(db.name + "-files").exists()
