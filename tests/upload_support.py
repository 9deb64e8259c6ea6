"""Stand-ins for Retab's files endpoints and for the storage behind its signed URLs.

    storage = Storage.start()                 # signed PUT URLs; records every PUT
    api = FilesApi.start(storage, key=KEY)    # POST /v1/files/upload, .../complete, links
    storage.faults.append(Fault("drop", after=1000))
    ...
    api.stop(); storage.stop()

Both are stdlib HTTP servers on 127.0.0.1 in threads, so a test can see exactly what
reached each one: the API's log holds method, path, headers and JSON body; the storage
log holds the PUT's headers as sent and the size and sha256 of the bytes received
(the bytes themselves only for small bodies). Used by tests/test_uploads.py and, until
the emulator serves the files API, by bench/bench_upload.py.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEEP_BYTES = 1024 * 1024  # bodies up to this size are kept whole for assertions
READ = 64 * 1024


@dataclass
class Fault:
    """What the storage server does to the next PUT instead of storing it.

    kind: "drop" (read `after` bytes, then reset the connection), "status" (read the
    body, answer `status` with `headers`), "early" (answer `status` before reading),
    "redirect" (307 to `location`), "corrupt" (store the bytes with one flipped).
    """

    kind: str
    status: int = 503
    after: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    location: str = ""


@dataclass
class Put:
    method: str
    path: str
    headers: list[tuple[str, str]]
    size: int = 0
    sha256: str = ""
    data: bytes | None = None
    outcome: str = "stored"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Any


def _serve(owner: Any, handler: type[BaseHTTPRequestHandler]) -> _Server:
    server = _Server(("127.0.0.1", 0), handler)
    server.owner = owner
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    return server


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Served:
    server: _Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class CountingSha:
    """A stand-in for hashlib.sha256 that counts the bytes fed to it, in all instances."""

    fed = 0

    def __init__(self) -> None:
        self._real = hashlib.new("sha256")

    def update(self, data: bytes | memoryview) -> None:
        type(self).fed += len(data)
        self._real.update(data)

    def hexdigest(self) -> str:
        return self._real.hexdigest()


def count_sha256(monkeypatch: Any) -> type[CountingSha]:
    """Make hashlib.sha256 count (this module and the tests' checks use hashlib.new)."""
    CountingSha.fed = 0
    monkeypatch.setattr(hashlib, "sha256", CountingSha)
    return CountingSha


# ---- storage -----------------------------------------------------------------------------------


class Storage(_Served):
    def __init__(self) -> None:
        self.puts: list[Put] = []
        self.faults: list[Fault] = []
        self.tokens: dict[str, str] = {}        # file id -> signature the URL must carry
        self.files: dict[str, tuple[int, str]] = {}  # file id -> (size, sha256) stored
        self.lock = threading.Lock()

    @classmethod
    def start(cls) -> Storage:
        storage = cls()
        storage.server = _serve(storage, _StorageHandler)
        return storage

    def signed_url(self, file_id: str) -> str:
        token = secrets.token_hex(8)
        self.tokens[file_id] = token
        return f"{self.url}/bucket/{file_id}?sig={token}"


class _StorageHandler(_Quiet):
    def do_PUT(self) -> None:
        self._store()

    def do_POST(self) -> None:
        self._store()

    def _store(self) -> None:
        storage: Storage = self.server.owner  # type: ignore[attr-defined]
        parts = urllib.parse.urlsplit(self.path)
        record = Put(self.command, self.path, list(self.headers.items()))
        with storage.lock:
            storage.puts.append(record)
            fault = storage.faults.pop(0) if storage.faults else None
        file_id = parts.path.rsplit("/", 1)[-1]
        signature = urllib.parse.parse_qs(parts.query).get("sig", [""])[0]
        if storage.tokens.get(file_id) != signature:
            record.outcome = "bad signature"
            return self._answer_first(403, {"error": "bad signature"})
        if fault is not None and fault.kind in ("early", "redirect"):
            record.outcome = fault.kind
            headers = {"Location": fault.location} if fault.kind == "redirect" else fault.headers
            return self._answer_first(307 if fault.kind == "redirect" else fault.status, None,
                                      headers)
        length = int(self.headers.get("Content-Length", "0"))
        limit = fault.after if fault is not None and fault.kind == "drop" else length
        size, digest, kept = self._receive(min(limit, length), keep=length <= KEEP_BYTES,
                                           corrupt=fault is not None and fault.kind == "corrupt")
        record.size, record.sha256, record.data = size, digest, kept
        if fault is not None and fault.kind == "drop":
            record.outcome = "dropped"
            return self._reset()
        if fault is not None and fault.kind == "status":
            record.outcome = f"status {fault.status}"
            return self.reply(fault.status, None, fault.headers)
        storage.files[file_id] = (size, digest)
        self.reply(200)

    def _receive(self, length: int, *, keep: bool, corrupt: bool) -> tuple[int, str, bytes | None]:
        digest = hashlib.new("sha256")  # not .sha256: tests count calls to that one
        kept = bytearray() if keep else None
        size = 0
        while size < length:
            chunk = self.rfile.read(min(READ, length - size))
            if not chunk:
                break
            if corrupt and size == 0:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            digest.update(chunk)
            if kept is not None:
                kept += chunk
            size += len(chunk)
        return size, digest.hexdigest(), bytes(kept) if kept is not None else None

    def _answer_first(self, status: int, payload: Any = None,
                      headers: dict[str, str] | None = None) -> None:
        """Answer before reading the body, then drain it: closing with unread bytes would
        reset the connection and could destroy the answer before the client reads it."""
        self.close_connection = True
        self.reply(status, payload, headers)
        self.wfile.flush()
        self._receive(int(self.headers.get("Content-Length", "0")), keep=False, corrupt=False)

    def _reset(self) -> None:
        """Drop the connection mid-body with a TCP reset, as a dying proxy does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


# ---- the files API -----------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FilesApi(_Served):
    """The four files endpoints, per the published spec, backed by a `Storage`."""

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.calls: list[Call] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.complete_statuses: list[int] = []   # scripted answers to the next completes
        self.session_overrides: dict[str, Any] = {}  # merged into every upload session
        self.links: dict[str, dict[str, Any]] = {}   # file id -> FileLink answered
        self.complete_answer: Any = None             # a 200 body instead of the MIMEData
        self.expires_at = "2999-01-01T00:00:00Z"

    @classmethod
    def start(cls, storage: Storage, key: str) -> FilesApi:
        api = cls(storage, key)
        api.server = _serve(api, _ApiHandler)
        return api

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]


class _ApiHandler(_Quiet):
    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        api: FilesApi = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length)) if length else None
        api.calls.append(Call(self.command, self.path, dict(self.headers.items()), body))
        if self.headers.get("Authorization") != f"Bearer {api.key}":
            return self.reply(401, {"detail": "bad key"})
        parts = self.path.strip("/").split("/")
        if self.command == "POST" and parts == ["v1", "files", "upload"]:
            return self._start(api, body)
        if self.command == "POST" and parts[:3] == ["v1", "files", "upload"] and len(parts) == 5:
            return self._complete(api, parts[3], body)
        if self.command == "GET" and len(parts) == 4 and parts[3] == "download-link":
            link = api.links.get(parts[2])
            return self.reply(200, link) if link else self.reply(404, {"detail": "File not found"})
        self.reply(404, {"detail": "Not Found"})

    def _start(self, api: FilesApi, body: Any) -> None:
        file_id = f"file_{secrets.token_hex(6)}"
        api.sessions[file_id] = body
        session = {
            "fileId": file_id, "uploadUrl": api.storage.signed_url(file_id),
            "uploadMethod": "PUT",
            "uploadHeaders": {"Content-Type": body["content_type"], "x-goog-meta-id": file_id},
            "mimeData": {"filename": body["filename"], "url": f"retab://files/{file_id}"},
            "expiresAt": api.expires_at,
        }
        session.update(api.session_overrides)
        self.reply(200, session)

    def _complete(self, api: FilesApi, file_id: str, body: Any) -> None:
        if api.complete_statuses:
            status = api.complete_statuses.pop(0)
            return self.reply(status, {"detail": f"scripted {status}"})
        expected = api.sessions.get(file_id)
        if expected is None:
            return self.reply(404, {"detail": "Upload session not found"})
        stored = api.storage.files.get(file_id)
        if stored is None or stored != (expected["size_bytes"], body["sha256"]):
            return self.reply(422, {"detail": "Uploaded object does not match: size or sha256"})
        if api.complete_answer is not None:
            return self.reply(200, api.complete_answer)
        self.reply(200, {"filename": expected["filename"], "url": f"retab://files/{file_id}"})
