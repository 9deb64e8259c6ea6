"""Hostile input (issue 8, items 16-18): never a 500, never a big echo, never a self-fetch."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from retab_cli.emulator.fetch import FETCHES_PER_KEY

from .helpers import body, client, data_url
from emulator_support import Emulator, start_emulator, wait_until


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with client(emu) as c:
        yield c


def post_raw(http: httpx.Client, text: str) -> httpx.Response:
    return http.post("/v1/partitions", content=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("literal", "echoed"), [("1e400", "Infinity"), ("NaN", "NaN"), ("-1e999", "-Infinity")]
)
def test_non_finite_n_consensus_is_a_422(http: httpx.Client, literal: str, echoed: str) -> None:
    text = json.dumps(body(background=True))[:-1] + f', "n_consensus": {literal}}}'
    response = post_raw(http, text)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "n_consensus"] and error["type"] == "finite_number"
    assert error["input"] == echoed


def test_a_lone_surrogate_is_a_422_not_a_500(http: httpx.Client) -> None:
    # json.dumps writes the escape "\ud800", which Python's json reads back as a lone surrogate.
    response = post_raw(http, json.dumps(body(background=True, filename="\ud800.pdf")))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "document", "filename"] and error["type"] == "string_unicode"
    assert error["input"] == "\\ud800.pdf"
    missing = post_raw(http, json.dumps({"document": {"filename": "\udfff", "url": 5}}))
    assert missing.status_code == 422, missing.text


def test_validation_errors_do_not_echo_big_inputs(http: httpx.Client) -> None:
    big = "data:text/plain;base64," + "QUFB" * 250_000  # 1 MB
    payload = {"document": {"filename": "a.txt", "url": big}}
    response = http.post("/v1/partitions", json=payload)
    assert response.status_code == 422
    assert len(response.content) < 2_000
    errors = {tuple(e["loc"]): e for e in response.json()["detail"]}
    assert set(errors) == {("body", "key"), ("body", "instructions")}
    assert errors[("body", "key")]["input"] == f"<object of {len(json.dumps(payload))} bytes, not echoed>"
    small = http.post("/v1/partitions", json=body(model="gpt-4"))
    assert small.json()["detail"][0]["input"] == "gpt-4"


def test_a_bad_long_url_is_echoed_as_a_prefix(http: httpx.Client) -> None:
    url = "ftp://" + "x" * 5_000
    response = http.post("/v1/partitions", json=body(url))
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "document", "url"]
    assert error["input"] == url[:100] + "...(+4906 chars)"


def test_to_date_at_the_end_of_the_calendar_is_a_400(http: httpx.Client) -> None:
    response = http.get("/v1/partitions", params={"to_date": "9999-12-31"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == {
        "code": "invalid_date",
        "message": "to_date must be before 9999-12-31",
        "details": {"param": "to_date", "value": "9999-12-31"},
    }
    assert http.get("/v1/partitions", params={"to_date": "9999-12-30"}).json()["data"] == []
    assert http.get("/v1/partitions", params={"from_date": "9999-12-31"}).status_code == 200
    # Digits beyond ASCII are not digits here.
    assert http.get("/v1/partitions", params={"from_date": "٢٠٢٤-01-01"}).status_code == 400


MIB = 1024 * 1024


def raw_socket(emu: Emulator) -> socket.socket:
    host, port = emu.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response, read until the server closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, rest


def request_head(emu: Emulator, *headers: str) -> bytes:
    lines = ["POST /v1/partitions HTTP/1.1", "Host: x", f"Authorization: Bearer {emu.api_key}",
             "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_declared_body_over_32_mib_is_refused_before_it_is_sent(emu: Emulator) -> None:
    with raw_socket(emu) as sock:
        sock.sendall(request_head(emu, f"Content-Length: {32 * MIB + 1}") + b'{"document": ')
        status, headers, payload = read_response(sock)  # no more body is ever sent
    assert status == 413 and headers["connection"] == "close"
    detail = json.loads(payload)["detail"]
    assert detail["code"] == "document_too_large" and detail["details"] == {"limit": 32 * MIB}
    assert "/v1/files/upload" in detail["message"]
    (entry,) = [e for e in emu.requests() if e["status"] == 413]
    assert entry["body"] is None and entry["body_bytes"] == 0


def _send_chunked_until_refused(emu: Emulator) -> tuple[int, bytes, int] | None:
    """One try; None when the server's reset overtook its 413 (a TCP race: closing with
    unread bytes sends RST, which may discard the answer already queued for us)."""
    piece = b"x" * MIB
    with raw_socket(emu) as sock:
        sock.sendall(request_head(emu, "Transfer-Encoding: chunked"))
        sent = 0
        try:
            while sent <= 40 * MIB:  # the final chunk is never sent
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server has answered and closed
        try:
            status, _, payload = read_response(sock)
        except ConnectionResetError:
            return None
    return status, payload, sent


def test_a_chunked_body_is_refused_once_it_passes_32_mib(emu: Emulator) -> None:
    outcomes = [_send_chunked_until_refused(emu) for _ in range(3)]
    answered = [o for o in outcomes if o is not None]
    assert answered, "every try lost the answer to a reset"
    status, payload, sent = answered[0]
    assert status == 413 and json.loads(payload)["detail"]["code"] == "document_too_large"
    assert sent <= 40 * MIB


def test_a_body_under_the_cap_still_reaches_the_route(http: httpx.Client) -> None:
    text = b"Invoice number: A\f" * 1_000_000  # 18 MB of text, 24 MB as base64
    response = http.post("/v1/partitions", json=body(data_url(text, "text/plain"), background=True))
    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize("path", ["/_emulator/requests", "/v1/partitions", "/openapi.json"])
def test_the_emulator_never_fetches_itself(emu: Emulator, http: httpx.Client, path: str) -> None:
    port = emu.url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost", "127.0.0.2"):
        response = http.post("/v1/partitions", json=body(f"http://{host}:{port}{path}", filename="log.txt"))
        run = response.json()
        assert (response.status_code, run["status"]) == (201, "failed"), host
        assert run["error"]["code"] == "self_fetch_refused" and run["output"] == []


class SlowServer:
    """A document server on loopback that never finishes: it holds each connection
    open, sending nothing (`drip=False`) or a header then a byte every 50 ms."""

    def __init__(self, drip: bool) -> None:
        self.drip = drip
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/slow.txt"
        self.connections = 0
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.drip:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while self.open:
                    if self.drip:
                        conn.sendall(b"x")
                    time.sleep(0.05)
            except OSError:
                pass

    def close(self) -> None:
        self.open = False
        self.listener.close()


@pytest.fixture
def dripping() -> Iterator[SlowServer]:
    server = SlowServer(drip=True)
    yield server
    server.close()


@pytest.fixture
def silent() -> Iterator[SlowServer]:
    server = SlowServer(drip=False)
    yield server
    server.close()


def test_a_dripping_document_server_meets_the_whole_fetch_deadline(dripping: SlowServer) -> None:
    emu = start_emulator("--fetch-timeout", "1s")
    try:
        with client(emu) as http:
            started = time.monotonic()
            run = http.post("/v1/partitions", json=body(dripping.url, filename="slow.txt")).json()
            elapsed = time.monotonic() - started
    finally:
        emu.stop()
    assert run["status"] == "failed" and run["error"]["code"] == "remote_fetch_timeout"
    assert run["error"]["message"] == "fetching the document took longer than 1 s"
    assert elapsed < 8  # the byte every 50 ms never lets a per-read timeout fire


def test_one_keys_slow_fetches_do_not_hold_up_another_key(silent: SlowServer) -> None:
    emu = start_emulator("--api-key", "rt_test_a", "--api-key", "rt_test_b", "--fetch-timeout", "60s")
    stuck: list[threading.Thread] = []
    try:
        for _ in range(45):  # more than a default worker-thread pool (40)
            args = (emu, "rt_test_a", silent.url)
            thread = threading.Thread(target=_create_quietly, args=args, daemon=True)
            thread.start()
            stuck.append(thread)
        wait_until(lambda: silent.connections >= FETCHES_PER_KEY, timeout=15)
        with client(emu, "rt_test_b") as other:
            started = time.monotonic()
            response = other.post("/v1/partitions", json=body(), timeout=15)
            elapsed = time.monotonic() - started
        assert response.status_code == 201 and response.json()["status"] == "completed"
        assert elapsed < 5  # a synchronous create of 7 pages at speed 20 takes about 0.3 s
        assert silent.connections == FETCHES_PER_KEY  # key a's other creates wait their turn
    finally:
        emu.stop()


def _create_quietly(emu: Emulator, key: str, url: str) -> None:
    with contextlib.suppress(httpx.HTTPError), client(emu, key) as http:
        http.post("/v1/partitions", json=body(url, filename="slow.txt", background=True), timeout=90)


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes the connection (EOF) within `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass  # a response before the close is fine
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def _trickle_until_closed(sock: socket.socket, seconds: float) -> bool:
    """Send a header line every 0.1 s (never idle, never done) until the server closes."""
    for _ in range(int(seconds * 10)):
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return True
        time.sleep(0.1)
    return False


def test_idle_and_slowloris_connections_are_closed() -> None:
    emu = start_emulator("--idle-timeout", "0.5s")
    host, port = emu.url.removeprefix("http://").rsplit(":", 1)
    try:
        silent = socket.create_connection((host, int(port)))
        partial = socket.create_connection((host, int(port)))
        partial.sendall(b"GET /v1/partitions HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        trickle = socket.create_connection((host, int(port)))
        served = socket.create_connection((host, int(port)))
        served.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then idle
        assert _trickle_until_closed(trickle, seconds=3)
        for sock in (silent, partial, served):
            assert _closed_by_server(sock, within=3)
        # A connection that keeps asking is served as long as it asks.
        with client(emu) as http:
            for _ in range(3):
                assert http.get("/v1/partitions").status_code == 200
                time.sleep(0.2)
    finally:
        emu.stop()


def _document(url: str) -> bytes:
    return json.dumps({"document": {"filename": "a", "url": url}, "key": "k", "instructions": "i"}).encode()


HOSTILE = [
    ("GET", "/v1/partitions?filename=%ED%A0%80", None),  # a surrogate, UTF-8 encoded
    ("GET", "/v1/partitions/%ff", None),
    ("GET", "/v1/partitions?limit=1e400", None),
    ("GET", "/v1/partitions?from_date=0000-01-01", None),
    ("GET", "/v1/files/%ED%A0%80/download-link", None),
    ("POST", "/v1/files/upload", b'{"filename": "a", "size_bytes": 1e400}'),
    ("POST", "/v1/files/upload", b'{"filename": "\\ud800", "size_bytes": 1}'),
    ("POST", "/v1/files/upload", b"\xff\xfe"),
    ("POST", "/v1/partitions", _document("http://[zz/x")),
    ("POST", "/v1/partitions", _document("http://[::1]:99999/x")),
    ("POST", "/v1/partitions", _document("data:,x").replace(b'"key"', b'"model": "\\ud800", "key"')),
    ("PUT", "/_storage/uploads/file_x?expires=%ED%A0%80&signature=%ff", b"x"),
    ("GET", "/_storage/files/file_x?expires=%D9%A1&signature=x", None),  # an Arabic-Indic digit
]


@pytest.mark.parametrize(("method", "path", "payload"), HOSTILE)
def test_hostile_requests_never_get_a_500(
    emu: Emulator, method: str, path: str, payload: bytes | None
) -> None:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", f"Authorization: Bearer {emu.api_key}"]
    lines.append("Connection: close")
    if payload is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    with raw_socket(emu) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (payload or b""))
        status, _, answer = read_response(sock)
    assert status < 500, answer[:300]
    json.loads(answer)  # always JSON
