"""The upload engine against stand-ins for the files API and for signed-URL storage."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from retab_cli.budget import Budget
from retab_cli.client import Client
from retab_cli.documents import Document, from_path
from retab_cli.errors import (
    BadResponseError,
    NetworkError,
    NotFoundError,
    RejectedError,
    RetabError,
    ServerError,
    UsageError,
)
from retab_cli.uploads import check_upload_url, document_from_file_id, parse_session, upload

from upload_support import Fault, FilesApi, Storage, count_sha256

KEY = "rt_live_upload_secret_0123456789"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
T = TypeVar("T")


@pytest.fixture
def storage() -> Iterator[Storage]:
    store = Storage.start()
    yield store
    store.stop()


@pytest.fixture
def api(storage: Storage) -> Iterator[FilesApi]:
    files = FilesApi.start(storage, KEY)
    yield files
    files.stop()


class Recorder:
    """The injected sleep, notice and progress: what the engine waited for and said."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.notices: list[str] = []
        self.progress: list[tuple[int, int]] = []
        self.now = 1_000_000.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def run(api: FilesApi, job: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Client(api.url, KEY, budget=Budget(0)) as client:
            return await job(client)

    return asyncio.run(main())


def send(api: FilesApi, doc: Document, rec: Recorder, **kw: Any) -> dict[str, str]:
    return run(api, lambda client: upload(
        client, doc, progress=lambda sent, total: rec.progress.append((sent, total)),
        notice=rec.notices.append, clock=rec.clock, sleep=rec.sleep, **kw))


def fails(api: FilesApi, doc: Document, rec: Recorder, kind: type[RetabError],
          **kw: Any) -> RetabError:
    with pytest.raises(kind) as caught:
        send(api, doc, rec, **kw)
    return caught.value


def make_doc(tmp_path: Path, size: int, name: str = "big.pdf") -> tuple[Document, bytes]:
    data = (PDF + bytes(range(256)) * (size // 256 + 1))[:size]
    path = tmp_path / name
    path.write_bytes(data)
    return from_path(str(path), filename=None, mime_type=None, warn=lambda _: None), data


def sha(data: bytes) -> str:
    return hashlib.new("sha256", data).hexdigest()


# ---- the three steps ---------------------------------------------------------------------------


def test_upload_starts_puts_and_completes(tmp_path: Path, api: FilesApi, storage: Storage,
                                          rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    doc, data = make_doc(tmp_path, 300_000)
    opened: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    result = send(api, doc, rec)
    assert opened == [doc.path]  # one read: the PUT's, which computed the checksum too
    file_id = next(iter(api.sessions))
    assert result == {"filename": "big.pdf", "url": f"retab://files/{file_id}"}
    assert api.paths() == ["POST /v1/files/upload", f"POST /v1/files/upload/{file_id}/complete"]
    assert api.calls[0].body == {"filename": "big.pdf", "content_type": "application/pdf",
                                 "size_bytes": 300_000}
    assert api.calls[1].body == {"sha256": sha(data)}
    assert all(c.headers["Authorization"] == f"Bearer {KEY}" for c in api.calls)
    [put] = storage.puts
    assert (put.method, put.outcome, put.data) == ("PUT", "stored", data)
    assert put.path == f"/bucket/{file_id}?sig={storage.tokens[file_id]}"
    assert rec.progress[0] == (0, 300_000)
    assert rec.progress[-1] == (300_000, 300_000)
    assert [s for s, _ in rec.progress] == sorted(s for s, _ in rec.progress)
    assert (rec.sleeps, rec.notices) == ([], [])


def test_the_put_carries_exactly_the_upload_headers_and_never_the_key(
        tmp_path: Path, api: FilesApi, storage: Storage, rec: Recorder) -> None:
    api.session_overrides = {"uploadHeaders": {"Content-Type": "application/pdf",
                                               "x-amz-meta-origin": "retab",
                                               "Authorization": "Signature storage-only"}}
    doc, _ = make_doc(tmp_path, 5000)
    send(api, doc, rec)
    [put] = storage.puts
    host = storage.url.removeprefix("http://")
    assert sorted(put.headers) == sorted([
        ("Host", host), ("Content-Length", "5000"), ("Content-Type", "application/pdf"),
        ("x-amz-meta-origin", "retab"), ("Authorization", "Signature storage-only")])
    assert KEY not in repr(put.headers) + put.path


def test_a_known_checksum_is_sent_when_the_session_starts(tmp_path: Path, api: FilesApi,
                                                          rec: Recorder) -> None:
    doc, data = make_doc(tmp_path, 4000)
    doc.sha256()
    send(api, doc, rec)
    assert api.calls[0].body["sha256"] == sha(data)


def test_upload_method_is_followed(tmp_path: Path, api: FilesApi, storage: Storage,
                                   rec: Recorder) -> None:
    api.session_overrides = {"uploadMethod": "post"}
    doc, data = make_doc(tmp_path, 1000)
    send(api, doc, rec)
    assert [(p.method, p.data) for p in storage.puts] == [("POST", data)]


def test_stdin_bytes_are_uploaded_from_memory(api: FilesApi, storage: Storage,
                                              rec: Recorder) -> None:
    data = PDF * 300
    doc = Document(label="-", filename="scan.pdf", mime_type="application/pdf",
                   size=len(data), data=data)
    send(api, doc, rec)
    assert storage.puts[0].data == data


# ---- the PUT's failures ------------------------------------------------------------------------


def test_a_connection_dropped_mid_stream_is_retried_from_byte_0(
        tmp_path: Path, api: FilesApi, storage: Storage, rec: Recorder,
        monkeypatch: pytest.MonkeyPatch) -> None:
    counting = count_sha256(monkeypatch)
    doc, data = make_doc(tmp_path, 3 * 1024 * 1024 + 17)
    storage.faults.append(Fault("drop", after=1024 * 1024 + 5))
    send(api, doc, rec)
    first, second = storage.puts
    assert (first.outcome, first.size) == ("dropped", 1024 * 1024 + 5)
    assert (second.outcome, second.size, second.sha256) == ("stored", len(data), sha(data))
    assert api.calls[-1].body == {"sha256": sha(data)}
    assert len(api.sessions) == 1  # the same URL
    assert len(rec.sleeps) == 1 and 0.25 <= rec.sleeps[0] <= 0.5
    assert rec.notices[0].startswith(f"retrying the upload of {doc.label} in ")
    assert "(attempt 2/5): the upload to 127.0.0.1:" in rec.notices[0]
    assert rec.progress.count((0, len(data))) == 2  # the bar restarts with the stream
    assert counting.fed == len(data)  # two passes, each byte hashed once


def test_a_503_is_retried_after_the_time_the_storage_asks(tmp_path: Path, api: FilesApi,
                                                          storage: Storage, rec: Recorder) -> None:
    doc, data = make_doc(tmp_path, 200_000)
    storage.faults += [Fault("status", status=503, headers={"Retry-After": "2"}),
                       Fault("status", status=500)]
    send(api, doc, rec)
    assert [p.outcome for p in storage.puts] == ["status 503", "status 500", "stored"]
    assert storage.puts[-1].sha256 == sha(data)
    assert rec.sleeps[0] == 2.0 and 0.5 <= rec.sleeps[1] <= 1.0
    assert "the storage server answered HTTP 503 Service Unavailable" in rec.notices[0]


def test_transport_failures_give_up_after_five_attempts(tmp_path: Path, api: FilesApi,
                                                        storage: Storage, rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 100_000)
    storage.faults += [Fault("drop", after=10) for _ in range(5)]
    error = fails(api, doc, rec, NetworkError)
    assert error.message.startswith("the upload to 127.0.0.1:")
    assert error.message.endswith("(gave up after 5 attempts)")
    assert (error.file, error.exit_code) == (doc.label, 1)
    assert len(storage.puts) == 5 and len(rec.sleeps) == 4
    assert api.paths() == ["POST /v1/files/upload"]  # never completed


def test_a_retry_past_the_url_expiry_starts_a_new_session(tmp_path: Path, api: FilesApi,
                                                          storage: Storage, rec: Recorder) -> None:
    api.expires_at = "1970-01-12T13:46:40.200Z"  # 0.2 s after the fake clock's now, under any backoff
    doc, data = make_doc(tmp_path, 50_000)
    storage.faults.append(Fault("status", status=502))
    send(api, doc, rec)
    assert rec.sleeps == []  # no waiting on a URL about to expire
    assert [p.outcome for p in storage.puts] == ["status 502", "stored"]
    assert len(api.sessions) == 2
    assert rec.notices == [f"upload of {doc.label}: the upload URL expired (the storage server "
                           "answered HTTP 502 Bad Gateway); starting a new upload session (2/3)"]
    assert storage.puts[1].sha256 == sha(data)


def test_410_on_the_put_starts_a_new_session(tmp_path: Path, api: FilesApi, storage: Storage,
                                             rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 60_000)
    storage.faults.append(Fault("status", status=410))
    result = send(api, doc, rec)
    first, second = api.sessions
    assert api.paths() == ["POST /v1/files/upload", "POST /v1/files/upload",
                           f"POST /v1/files/upload/{second}/complete"]
    assert result["url"] == f"retab://files/{second}"
    assert [p.path.split("?")[0] for p in storage.puts] == [f"/bucket/{first}", f"/bucket/{second}"]
    assert rec.notices == [f"upload of {doc.label}: the upload URL has expired (HTTP 410); "
                           "starting a new upload session (2/3)"]


def test_410_at_complete_uploads_again_in_a_new_session(tmp_path: Path, api: FilesApi,
                                                        storage: Storage, rec: Recorder) -> None:
    doc, data = make_doc(tmp_path, 60_000)
    api.complete_statuses.append(410)
    send(api, doc, rec)
    assert [c.path.rsplit("/", 1)[-1] for c in api.calls] == ["upload", "complete", "upload",
                                                               "complete"]
    assert [p.sha256 for p in storage.puts] == [sha(data)] * 2
    assert "expired before it was completed (HTTP 410)" in rec.notices[0]


def test_sessions_are_bounded(tmp_path: Path, api: FilesApi, storage: Storage,
                              rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 1000)
    storage.faults += [Fault("status", status=410) for _ in range(3)]
    error = fails(api, doc, rec, ServerError)
    assert error.message == (f"the upload of {doc.label} failed: the upload URL has expired "
                             "(HTTP 410) (3 upload sessions tried)")
    assert (error.exit_code, len(api.sessions), len(storage.puts)) == (1, 3, 3)


def test_a_403_on_the_first_put_is_an_error_not_retried(tmp_path: Path, api: FilesApi,
                                                        storage: Storage, rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 1000)
    storage.faults.append(Fault("early", status=403))
    error = fails(api, doc, rec, ServerError)
    assert error.message == ("the storage server answered HTTP 403 Forbidden: the upload was "
                             "refused")
    assert (error.status, error.exit_code, error.file) == (403, 1, doc.label)
    assert (len(storage.puts), rec.sleeps, api.paths()) == (1, [], ["POST /v1/files/upload"])


def test_a_403_after_a_retry_means_the_url_expired(tmp_path: Path, api: FilesApi,
                                                   storage: Storage, rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 1000)
    storage.faults += [Fault("status", status=503), Fault("early", status=403)]
    send(api, doc, rec)
    assert [p.outcome for p in storage.puts] == ["status 503", "early", "stored"]
    assert len(api.sessions) == 2


def test_a_redirect_on_the_put_is_not_followed(tmp_path: Path, api: FilesApi,
                                               storage: Storage, rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 1000)
    elsewhere = Storage.start()
    try:
        target = f"{elsewhere.url}/steal"
        storage.faults.append(Fault("redirect", location=target))
        error = fails(api, doc, rec, ServerError)
        assert elsewhere.puts == []
    finally:
        elsewhere.stop()
    assert error.message == (f"the storage server answered HTTP 307 Temporary Redirect, a "
                             f"redirect to {target} (not followed)")
    assert (len(storage.puts), rec.sleeps) == (1, [])


def test_a_413_from_storage_is_a_rejection(tmp_path: Path, api: FilesApi, storage: Storage,
                                           rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 1000)
    storage.faults.append(Fault("status", status=413))
    error = fails(api, doc, rec, RejectedError)
    assert (error.status, error.exit_code) == (413, 2)


def test_a_checksum_mismatch_at_complete_is_reported_with_the_file(
        tmp_path: Path, api: FilesApi, storage: Storage, rec: Recorder) -> None:
    doc, _ = make_doc(tmp_path, 20_000, name="contract.pdf")
    storage.faults.append(Fault("corrupt"))
    error = fails(api, doc, rec, RejectedError)
    assert error.message == (
        f"the upload of {doc.label} was refused at completion: the server's copy does not "
        "match the file's size or sha256 (Uploaded object does not match: size or sha256)")
    assert error.hint == "did the file change while it was being sent? run the command again"
    assert (error.status, error.exit_code, error.file) == (422, 2, doc.label)
    assert len(api.sessions) == 1 and len(storage.puts) == 1


def test_a_file_changed_while_uploading_stops_without_retrying(
        tmp_path: Path, api: FilesApi, storage: Storage, rec: Recorder) -> None:
    doc, data = make_doc(tmp_path, 10_000)
    assert doc.path is not None
    doc.path.write_bytes(data + b"grown")
    error = fails(api, doc, rec, UsageError)
    assert error.message == (f"{doc.label} changed while it was being read (it had 10000 "
                             "bytes when checked)")
    assert (rec.sleeps, api.paths()) == ([], ["POST /v1/files/upload"])


# ---- what is refused before anything is sent to the URL ---------------------------------------


@pytest.mark.parametrize("url", ["http://storage.example.com/b/f?sig=1",
                                 "http://127.0.0.1.evil.com/b/f", "http://[::2]/b"])
def test_plain_http_to_a_non_loopback_host_is_refused(tmp_path: Path, api: FilesApi,
                                                      storage: Storage, rec: Recorder,
                                                      url: str) -> None:
    api.session_overrides = {"uploadUrl": url}
    doc, _ = make_doc(tmp_path, 1000)
    error = fails(api, doc, rec, BadResponseError)
    host = url.split("/")[2].strip("[]")
    assert error.message == (f"refusing to upload over plain http to {host}: the upload URL "
                             "must be https (http is for loopback hosts only)")
    assert (storage.puts, api.paths()) == ([], ["POST /v1/files/upload"])


def test_loopback_http_and_https_are_allowed() -> None:
    for url in ("https://storage.example.com/b?s=1", "http://127.0.0.1:9/b", "http://[::1]/b",
                "http://localhost:8/b"):
        assert check_upload_url(url) == url
    assert check_upload_url("http://10.0.0.5/b", allow_insecure_http=True) == "http://10.0.0.5/b"


def _session(**over: Any) -> dict[str, Any]:
    base = {"fileId": "file_1", "uploadUrl": "https://s.example.com/u?sig=1",
            "uploadMethod": "PUT", "uploadHeaders": {"Content-Type": "application/pdf"},
            "expiresAt": "2030-01-01T00:00:00Z"}
    base.update(over)
    return base


@pytest.mark.parametrize(("session", "message"), [
    ([], "an upload session must be a JSON object"),
    (_session(fileId="../x"), "the upload session has no valid 'fileId'"),
    (_session(fileId=None), "the upload session has no valid 'fileId'"),
    (_session(uploadUrl=7), "the upload session has no 'uploadUrl'"),
    (_session(uploadUrl="ftp://s.example.com/u"), "the upload URL is not an http(s) URL"),
    (_session(uploadUrl="https://u:p@s.example.com/u"), "the upload URL carries credentials"),
    (_session(uploadUrl="https://s.example.com:99999/u"), "the upload URL is not a valid URL"),
    (_session(uploadMethod="DELETE"), "the upload session's 'uploadMethod' is not PUT or POST"),
    (_session(uploadHeaders=["a"]), "the upload session's 'uploadHeaders' is not an object"),
    (_session(uploadHeaders={"X-A": "1\r\nX-B: 2"}),
     "the upload session's 'uploadHeaders' holds an invalid header"),
    (_session(uploadHeaders={"Bad Name": "1"}),
     "the upload session's 'uploadHeaders' holds an invalid header"),
    (_session(uploadHeaders={"X-A": "caf\u00e9"}),
     "the upload session's 'uploadHeaders' holds an invalid header"),
    (_session(uploadHeaders={"X-A": 5}),
     "the upload session's 'uploadHeaders' holds an invalid header"),
    (_session(uploadHeaders={"Authorization": f"Bearer {KEY}"}),
     "the upload session asks to send the API key to the upload URL; refusing"),
    (_session(uploadHeaders={"Content-Length": "99"}),
     "the upload session expects 99 bytes; the file has 1000"),
])
def test_unusable_sessions_are_refused(session: Any, message: str) -> None:
    def mask(text: str) -> str:
        return text.replace(KEY, "rt_...6789")

    with pytest.raises(BadResponseError) as caught:
        parse_session(session, size=1000, mask=mask)
    assert caught.value.message == f"unusable response: {message}"
    assert caught.value.exit_code == 1


def test_session_defaults_and_times() -> None:
    parsed = parse_session(_session(uploadMethod=None, uploadHeaders=None,
                                    expiresAt="2030-01-01T00:00:00"), size=1000)
    assert (parsed.method, parsed.headers, parsed.expires_at) == ("PUT", {}, 1893456000.0)
    assert parse_session(_session(expiresAt="soon"), size=1).expires_at is None
    assert parse_session(_session(uploadHeaders={"content-length": "1000", "X-A": "b"}),
                         size=1000).headers == {"X-A": "b"}
    assert parse_session(_session(expiresAt="2030-01-01T01:00:00+01:00"),
                         size=1).expires_at == 1893456000.0


@pytest.mark.parametrize("answer", [{"filename": "x"}, {"filename": "", "url": "u"}, ["x"], "s"])
def test_an_unusable_mime_data_at_complete(tmp_path: Path, api: FilesApi, rec: Recorder,
                                           answer: Any) -> None:
    doc, _ = make_doc(tmp_path, 1000)
    api.complete_answer = answer
    error = fails(api, doc, rec, BadResponseError)
    assert error.message == "unusable response: a MIMEData needs 'filename' and 'url' strings"
    assert (error.file, error.exit_code) == (doc.label, 1)


# ---- bounded memory ----------------------------------------------------------------------------


def test_a_64_mib_file_streams_in_bounded_memory(tmp_path: Path, api: FilesApi,
                                                 storage: Storage, rec: Recorder) -> None:
    size = 64 * 1024 * 1024
    path = tmp_path / "sparse.pdf"
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
    with path.open("r+b") as fh:
        fh.write(PDF)
    doc = from_path(str(path), filename=None, mime_type=None, warn=lambda _: None)
    tracemalloc.start()
    try:
        send(api, doc, rec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = hashlib.new("sha256", PDF + bytes(size - len(PDF))).hexdigest()
    assert (storage.puts[0].size, storage.puts[0].sha256) == (size, expected)
    # ~4 chunks of 256 KiB (file read, HTTP framing copy, socket buffer; the stand-in
    # servers run in this process too): it does not grow with the file.
    assert peak < 3 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


# ---- --file-id ---------------------------------------------------------------------------------


def test_file_id_uses_the_links_mime_data(api: FilesApi) -> None:
    api.links["file_abc"] = {"download_url": "https://dl.example.com/x", "expires_in": "1h",
                             "filename": "a.pdf",
                             "mime_data": {"filename": "a.pdf", "url": "retab://files/file_abc"}}
    assert run(api, lambda c: document_from_file_id(c, "file_abc")) == {
        "filename": "a.pdf", "url": "retab://files/file_abc"}
    assert api.paths() == ["GET /v1/files/file_abc/download-link"]


def test_file_id_without_mime_data_uses_the_download_url(api: FilesApi) -> None:
    api.links["file_abc"] = {"download_url": "https://dl.example.com/x?s=1", "expires_in": "1h",
                             "filename": "a.pdf", "mime_data": None}
    assert run(api, lambda c: document_from_file_id(c, "file_abc")) == {
        "filename": "a.pdf", "url": "https://dl.example.com/x?s=1"}


def test_file_id_not_found(api: FilesApi) -> None:
    with pytest.raises(NotFoundError) as caught:
        run(api, lambda c: document_from_file_id(c, "file_nope"))
    assert caught.value.message == "file file_nope: File not found"
    assert caught.value.hint == "files belong to the API key that uploaded them"
    assert caught.value.exit_code == 6


@pytest.mark.parametrize("bad", ["../etc", "file id", "", "f" * 129, "file\u0660"])
def test_an_invalid_file_id_is_refused_locally(api: FilesApi, bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        run(api, lambda c: document_from_file_id(c, bad))
    assert caught.value.message.startswith("invalid file id ")
    assert caught.value.exit_code == 2
    assert api.calls == []


@pytest.mark.parametrize("link", [
    {"expires_in": "1h", "filename": "a.pdf"},
    {"download_url": "https://x", "expires_in": "1h"},
    {"download_url": "https://x", "filename": "a", "mime_data": {"filename": "a"}},
])
def test_an_unusable_file_link(api: FilesApi, link: dict[str, Any]) -> None:
    api.links["file_abc"] = link
    with pytest.raises(BadResponseError) as caught:
        run(api, lambda c: document_from_file_id(c, "file_abc"))
    assert caught.value.message.startswith("unusable response: ")


def test_a_url_document_is_not_uploaded(api: FilesApi, rec: Recorder) -> None:
    doc = Document(label="https://x.example.com/a.pdf", filename="a.pdf",
                   mime_type="application/pdf", size=None, url="https://x.example.com/a.pdf")
    with pytest.raises(ValueError, match="only files and stdin are uploaded"):
        send(api, doc, rec)
    assert api.calls == []
