"""Fault injection: scripted faults, next-create outcomes, rate limit, error rate, latency."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from .helpers import body, client, create
from emulator_support import Emulator, start_emulator, wait_until


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with client(emu) as c:
        yield c


def test_status_and_json_body_for_the_next_n_matches(emu: Emulator, http: httpx.Client) -> None:
    emu.add_fault(
        method="GET",
        path=r"^/v1/partitions$",
        status=503,
        body={"detail": "down"},
        headers={"Retry-After": "2"},
        times=2,
    )
    assert http.post("/v1/partitions", json=body(background=True)).status_code == 201  # POST: no match
    for _ in range(2):
        response = http.get("/v1/partitions")
        assert response.status_code == 503 and response.json() == {"detail": "down"}
        assert response.headers["retry-after"] == "2"
        assert response.headers["x-request-id"].startswith("req_")
    assert http.get("/v1/partitions").status_code == 200
    assert emu.control("GET", "faults") == []


def test_text_body_and_default_body(emu: Emulator, http: httpx.Client) -> None:
    emu.add_fault(path="/v1/", status=502, body="<html>Bad gateway</html>")
    response = http.get("/v1/partitions")
    assert response.status_code == 502 and response.text == "<html>Bad gateway</html>"
    assert response.headers["content-type"].startswith("text/html")
    emu.add_fault(path="/v1/", status=500)
    response = http.get("/v1/partitions")
    assert response.status_code == 500 and response.json()["detail"]["code"] == "emulated_fault"


def test_faults_bypass_auth_and_are_consumed_in_order(emu: Emulator) -> None:
    emu.add_fault(path="/v1/", status=429)
    emu.add_fault(path="/v1/", status=500)
    with httpx.Client(base_url=emu.url, trust_env=False) as anonymous:
        assert anonymous.get("/v1/partitions").status_code == 429
        assert anonymous.get("/v1/partitions").status_code == 500
        assert anonymous.get("/v1/partitions").status_code == 401


def test_list_and_clear_faults(emu: Emulator) -> None:
    emu.add_fault(path="x", status=500, times=3)
    listed = emu.control("GET", "faults")
    assert isinstance(listed, list) and listed[0]["times"] == 3 and listed[0]["id"].startswith("flt_")
    emu.control("DELETE", "faults")
    assert emu.control("GET", "faults") == []


def test_delay(emu: Emulator, http: httpx.Client) -> None:
    emu.add_fault(path="/v1/partitions", delay=0.4)
    started = time.monotonic()
    assert http.get("/v1/partitions").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_drop_closes_the_connection_without_a_response(emu: Emulator, http: httpx.Client) -> None:
    emu.add_fault(path="/v1/partitions", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/partitions")
    assert http.get("/v1/partitions").status_code == 200


def test_drop_at_the_socket_level(emu: Emulator) -> None:
    emu.add_fault(path="/v1/partitions", drop=True)
    host, port = emu.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /v1/partitions HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024) == b""


def test_slow_body_drips(emu: Emulator, http: httpx.Client) -> None:
    emu.seed(1)  # a terminal run: its listing cannot change between the two reads
    expected = http.get("/v1/partitions").content
    emu.add_fault(path="/v1/partitions", slow=0.5)
    started = time.monotonic()
    with http.stream("GET", "/v1/partitions") as response:
        chunks = list(response.iter_raw())
    assert time.monotonic() - started >= 0.45
    assert len(chunks) > 1
    # The run may move from queued to in_progress between the two reads: compare ids.
    ids = [run["id"] for run in json.loads(b"".join(chunks))["data"]]
    assert ids == [run["id"] for run in json.loads(expected)["data"]]


def test_truncated_body(emu: Emulator, http: httpx.Client) -> None:
    create(http)
    emu.add_fault(path="/v1/partitions", truncate=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/partitions")
    host, port = emu.url.removeprefix("http://").split(":")
    emu.add_fault(path="/v1/partitions", truncate=True)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"GET /v1/partitions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {emu.api_key}\r\n\r\n".encode()
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, partial = raw.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    assert b" 200 " in head.split(b"\r\n")[0] and 0 < len(partial) == length // 2


@pytest.mark.parametrize("background", [True, False])
def test_next_create_failed(emu: Emulator, http: httpx.Client, background: bool) -> None:
    emu.next_create("failed")
    run = http.post("/v1/partitions", json=body(background=background)).json()
    final = wait_until(lambda: _terminal(http, run["id"]))
    assert final["status"] == "failed" and final["error"]["code"] == "emulated_failure"
    assert final["output"] == [] and final["usage"] is None
    assert _terminal_now(http) == "completed"  # only the next create


def _terminal(http: httpx.Client, run_id: str) -> dict[str, object] | None:
    run: dict[str, object] = http.get(f"/v1/partitions/{run_id}").json()
    return run if run["status"] in ("completed", "failed", "cancelled") else None


def _terminal_now(http: httpx.Client) -> str:
    status: str = http.post("/v1/partitions", json=body()).json()["status"]
    return status


def test_next_create_cancelled_and_stuck(emu: Emulator, http: httpx.Client) -> None:
    emu.next_create("cancelled", times=2)
    first = create(http)
    seen = []

    def done() -> object:
        status = http.get(f"/v1/partitions/{first['id']}").json()["status"]
        seen.append(status)
        return status == "cancelled"

    wait_until(done)
    assert seen[0] in ("queued", "in_progress")  # cancelled when it would have completed
    assert http.post("/v1/partitions", json=body()).json()["status"] == "cancelled"
    emu.next_create("stuck")
    stuck = http.post("/v1/partitions", json=body()).json()
    assert stuck["status"] == "in_progress"
    time.sleep(0.5)
    assert http.get(f"/v1/partitions/{stuck['id']}").json()["status"] == "in_progress"
    assert http.post(f"/v1/partitions/{stuck['id']}/cancel").json()["status"] == "cancelled"


def test_rate_limit_answers_429_with_retry_after() -> None:
    emu = start_emulator("--rate-limit", "3/1")
    try:
        with client(emu) as http:
            statuses = [http.get("/v1/partitions") for _ in range(5)]
            assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
            limited = statuses[3]
            assert int(limited.headers["retry-after"]) >= 1
            assert limited.json()["detail"]["code"] == "rate_limited"
            time.sleep(0.4)
            assert http.get("/v1/partitions").status_code == 200  # a token came back
            emu.reset()
            assert all(http.get("/v1/partitions").status_code == 200 for _ in range(3))
    finally:
        emu.stop()


def test_error_rate_is_deterministic_with_a_seed() -> None:
    def sequence(emu: Emulator) -> list[int]:
        with client(emu) as http:
            return [http.get("/v1/partitions").status_code for _ in range(30)]

    first = start_emulator("--error-rate", "0.3", "--seed", "7", "--error-status", "502")
    second = start_emulator("--error-rate", "0.3", "--seed", "7", "--error-status", "502")
    try:
        statuses = sequence(first)
        assert set(statuses) == {200, 502} and statuses == sequence(second)
        first.reset()
        assert sequence(first) == statuses
    finally:
        first.stop()
        second.stop()


def test_latency_option() -> None:
    emu = start_emulator("--latency", "150ms")
    try:
        with client(emu) as http:
            started = time.monotonic()
            http.get("/v1/partitions")
            assert time.monotonic() - started >= 0.15
    finally:
        emu.stop()
