"""The control API: reset, seed, request log; and its absence without --control."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest

from .helpers import body, client, create, data_url
from emulator_support import Emulator, logged_data_url, start_emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with client(emu) as c:
        yield c


def test_reset_clears_runs_keys_faults_and_log(emu: Emulator, http: httpx.Client) -> None:
    create(http)
    http.post("/v1/partitions", json=body(background=True), headers={"Idempotency-Key": "k"})
    emu.add_fault(path="nothing-matches", status=500)
    emu.next_create("failed")
    assert emu.control("POST", "reset") == {"ok": True}
    assert emu.control("GET", "faults") == [] and emu.requests() == []
    assert http.get("/v1/partitions").json()["data"] == []
    again = http.post(
        "/v1/partitions", json=body(background=True, model="retab-micro"), headers={"Idempotency-Key": "k"}
    )
    assert again.status_code == 201
    assert http.post("/v1/partitions", json=body()).json()["status"] == "completed"


def test_seed_inserts_terminal_runs(emu: Emulator, http: httpx.Client) -> None:
    assert emu.seed(500) == 500
    runs = []
    after = None
    while True:
        page = http.get("/v1/partitions", params={"limit": 100, **({"after": after} if after else {})}).json()
        runs += page["data"]
        after = page["list_metadata"]["after"]
        if not after:
            break
    assert len(runs) == 500 and len({r["created_at"] for r in runs}) == 500
    statuses = {r["status"] for r in runs}
    assert statuses == {"completed", "failed", "cancelled"}
    assert all(r["filename"].startswith("seed-") for r in (run["file"] for run in runs))
    assert emu.seed(3, status="completed", filename_prefix="x-") == 3
    listed = http.get("/v1/partitions", params={"filename": "x-"}).json()["data"]
    assert [r["status"] for r in listed] == ["completed"] * 3


def test_seed_refuses_an_unknown_key(emu: Emulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        emu.seed(1, api_key="rt_test_someone_else")
    assert caught.value.code == 400


def test_request_log(emu: Emulator, http: httpx.Client) -> None:
    emu.clear_requests()
    http.post("/v1/partitions", json=body(background=True), headers={"Idempotency-Key": "abc"})
    http.get("/v1/partitions", params=[("status", "queued"), ("limit", "5"), ("limit", "7")])
    httpx.get(f"{emu.url}/v1/partitions", headers={"Api-Key": "rt_wrong_key_1234"}, trust_env=False)
    emu.add_fault(path="/v1/", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/partitions/prtn_x")
    http.get("/openapi.json")  # not /v1: not logged
    log = emu.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/v1/partitions", 201),
        ("GET", "/v1/partitions", 200),
        ("GET", "/v1/partitions", 401),
        ("GET", "/v1/partitions/prtn_x", None),
    ]
    create_entry = log[0]
    assert create_entry["body"]["key"] == "invoice number"
    assert create_entry["headers"]["idempotency-key"] == "abc"
    assert create_entry["headers"]["authorization"] == "Bearer ****" + emu.api_key[-4:]
    assert create_entry["request_id"].startswith("req_")
    assert log[1]["query"] == {"status": "queued", "limit": "7"} and log[1]["body"] is None
    assert log[2]["headers"]["api-key"] == "****1234"
    emu.clear_requests()
    assert emu.requests() == []


def test_the_log_keeps_no_document_bytes(emu: Emulator, http: httpx.Client) -> None:
    emu.clear_requests()
    data = b"AAA" * 100_000
    http.post("/v1/partitions", json=body(data_url(data, "text/plain"), background=True, key="k" * 5000))
    (entry,) = emu.requests()
    assert entry["body"]["document"]["url"] == logged_data_url(data, "text/plain")
    assert logged_data_url(data, "text/plain").startswith("data:text/plain;base64,<300000 bytes; sha256 ")
    assert entry["body"]["key"] == "k" * 1024 + "...(+3976 chars)"
    assert entry["body_bytes"] > 400_000
    assert "QUFB" not in json.dumps(emu.requests())


def test_without_control_the_control_api_is_absent() -> None:
    emu = start_emulator(control=False)
    try:
        for method, path in [("POST", "reset"), ("GET", "requests"), ("POST", "faults")]:
            request = urllib.request.Request(
                f"{emu.url}/_emulator/{path}", data=b"{}" if method == "POST" else None, method=method
            )
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            assert caught.value.code == 404
            assert caught.value.headers["x-request-id"].startswith("req_")
        with client(emu) as http:
            assert http.get("/v1/partitions").status_code == 200
    finally:
        emu.stop()


def test_control_api_is_not_in_the_schema(emu: Emulator) -> None:
    with urllib.request.urlopen(f"{emu.url}/openapi.json", timeout=10) as response:
        schema = json.load(response)
    assert not [p for p in schema["paths"] if not p.startswith(("/v1/partitions", "/v1/files/"))]
    assert schema["paths"]  # and the storage URLs (/_storage/) stay out too
