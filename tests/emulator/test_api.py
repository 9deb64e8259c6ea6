"""The five endpoints over HTTP: shapes, lifecycle, validation, failures, idempotency."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from retab_cli.emulator.pdfgen import make_pdf

from .helpers import EXPECTED_CHUNKS, INVOICE_PAGES, body, client, create, data_url
from emulator_support import Emulator, wait_until

ID = re.compile(r"prtn_[A-Za-z0-9_-]{21}")
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
FIELDS = [
    "id",
    "file",
    "model",
    "key",
    "instructions",
    "n_consensus",
    "allow_overlap",
    "output",
    "status",
    "error",
    "consensus",
    "usage",
    "created_at",
]


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with client(emu) as c:
        yield c


def test_synchronous_create_returns_the_completed_run(http: httpx.Client) -> None:
    pdf = make_pdf(INVOICE_PAGES)
    response = http.post("/v1/partitions", json=body(data_url(pdf)))
    assert response.status_code == 201
    assert response.headers["x-request-id"].startswith("req_")
    run = response.json()
    assert list(run) == FIELDS
    assert ID.fullmatch(run["id"]) and CREATED_AT.fullmatch(run["created_at"])
    assert run["file"] == {
        "id": "file_" + hashlib.blake2b(pdf, digest_size=8).hexdigest(),
        "filename": "invoices.pdf",
        "mime_type": "application/pdf",
    }
    assert run["status"] == "completed" and run["output"] == EXPECTED_CHUNKS
    assert run["usage"] == {"credits": 7.0} and run["error"] is None and run["consensus"] is None
    assert (run["model"], run["n_consensus"], run["allow_overlap"]) == ("retab-small", 1, True)
    assert http.get(f"/v1/partitions/{run['id']}").json() == run


def test_background_run_goes_queued_in_progress_completed(http: httpx.Client) -> None:
    started = time.monotonic()
    run = create(http)
    assert run["status"] == "queued" and run["output"] == [] and run["usage"] is None
    seen = [run["status"]]

    def finished() -> bool:
        status = http.get(f"/v1/partitions/{run['id']}", params={"include_output": "false"}).json()["status"]
        if status != seen[-1]:
            seen.append(status)
        return bool(status == "completed")

    wait_until(finished, timeout=5, interval=0.01)
    elapsed = time.monotonic() - started
    # At speed 20: (1 s + 2 s + 7 x 0.5 s) / 20 = 0.325 s, within +-20%.
    assert 0.25 < elapsed < 1.5
    assert seen == ["queued", "in_progress", "completed"]
    full = http.get(f"/v1/partitions/{run['id']}").json()
    assert full["output"] == EXPECTED_CHUNKS and full["usage"] == {"credits": 7.0}


def test_include_output_false_is_the_cheap_view(http: httpx.Client) -> None:
    run = http.post("/v1/partitions", json=body(n_consensus=3)).json()
    cheap = http.get(f"/v1/partitions/{run['id']}", params={"include_output": "false"}).json()
    assert cheap == {**run, "output": [], "consensus": None}


def test_consensus_and_credits_per_tier(http: httpx.Client) -> None:
    run = http.post("/v1/partitions", json=body(n_consensus=3, model="retab-large")).json()
    assert run["usage"] == {"credits": 63.0}
    consensus = run["consensus"]
    assert len(consensus["choices"]) == 3
    assert [len(x["pages"]) for x in consensus["likelihoods"]] == [len(c["pages"]) for c in run["output"]]
    micro = http.post("/v1/partitions", json=body(model="retab-micro")).json()
    assert micro["usage"] == {"credits": 1.4} and micro["consensus"] is None


def test_options_are_echoed(http: httpx.Client) -> None:
    run = create(http, allow_overlap=False, bust_cache=True, n_consensus=2, model="retab-micro")
    assert (run["allow_overlap"], run["n_consensus"], run["model"]) == (False, 2, "retab-micro")
    assert run["instructions"] == "One chunk per invoice."


def test_cancel_is_idempotent(http: httpx.Client) -> None:
    run = create(http)
    cancelled = http.post(f"/v1/partitions/{run['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["usage"] is None
    again = http.post(f"/v1/partitions/{run['id']}/cancel")
    assert again.status_code == 200 and again.json() == cancelled.json()
    time.sleep(0.5)
    assert http.get(f"/v1/partitions/{run['id']}").json()["status"] == "cancelled"


def test_cancel_of_a_completed_run_returns_it_unchanged(http: httpx.Client) -> None:
    run = http.post("/v1/partitions", json=body()).json()
    response = http.post(f"/v1/partitions/{run['id']}/cancel")
    assert response.status_code == 200 and response.json() == run


def test_delete_then_not_found(http: httpx.Client) -> None:
    run = create(http)
    response = http.delete(f"/v1/partitions/{run['id']}")
    assert response.status_code == 204 and response.content == b""
    assert response.headers["x-request-id"].startswith("req_")
    for call in (http.get, http.delete, lambda url: http.post(url + "/cancel")):
        missing = call(f"/v1/partitions/{run['id']}")
        assert missing.status_code == 404 and missing.json() == {"detail": "Partition not found"}


def test_unknown_ids_and_routes(http: httpx.Client) -> None:
    assert http.get("/v1/partitions/prtn_nope").json() == {"detail": "Partition not found"}
    unknown = http.get("/v1/elsewhere")
    assert unknown.status_code == 404 and unknown.headers["x-request-id"].startswith("req_")
    assert http.get("/nothing-here").status_code == 404


def validation_errors(response: httpx.Response) -> list[tuple[Any, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["x-request-id"].startswith("req_")
    return [(tuple(e["loc"]), e["type"]) for e in response.json()["detail"]]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {},
            {
                (("body", "document"), "missing"),
                (("body", "key"), "missing"),
                (("body", "instructions"), "missing"),
            },
        ),
        (body(model="gpt-4"), {(("body", "model"), "literal_error")}),
        (body(n_consensus=0), {(("body", "n_consensus"), "greater_than_equal")}),
        (body(n_consensus=9), {(("body", "n_consensus"), "less_than_equal")}),
        (body(n_consensus="many"), {(("body", "n_consensus"), "int_parsing")}),
        (
            {**body(), "document": {"filename": "a.pdf", "url": "data:,x", "mime": "x"}},
            {(("body", "document", "mime"), "extra_forbidden")},
        ),
        ({**body(), "document": {"filename": "a.pdf"}}, {(("body", "document", "url"), "missing")}),
        (body("data:application/pdf;base64,%%%"), {(("body", "document", "url"), "value_error")}),
        (body("ftp://example.com/a.pdf"), {(("body", "document", "url"), "value_error")}),
        (body("just text"), {(("body", "document", "url"), "value_error")}),
    ],
)
def test_create_validation(http: httpx.Client, payload: dict[str, Any], expected: set[Any]) -> None:
    assert set(validation_errors(http.post("/v1/partitions", json=payload))) == expected


def test_malformed_json_is_a_422(http: httpx.Client) -> None:
    response = http.post("/v1/partitions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert validation_errors(response)[0][1] == "json_invalid"


@pytest.mark.parametrize(
    ("params", "loc", "kind"),
    [
        ({"limit": 0}, ("query", "limit"), "greater_than_equal"),
        ({"limit": 101}, ("query", "limit"), "less_than_equal"),
        ({"limit": "x"}, ("query", "limit"), "int_parsing"),
        ({"order": "up"}, ("query", "order"), "literal_error"),
        ({"status": "done"}, ("query", "status"), "literal_error"),
    ],
)
def test_list_validation(http: httpx.Client, params: dict[str, Any], loc: tuple[str, str], kind: str) -> None:
    assert validation_errors(http.get("/v1/partitions", params=params)) == [(loc, kind)]


def test_get_validation(http: httpx.Client) -> None:
    response = http.get("/v1/partitions/prtn_x", params={"include_output": "maybe"})
    assert validation_errors(response) == [(("query", "include_output"), "bool_parsing")]


def test_inline_document_over_32_mib_is_413(http: httpx.Client) -> None:
    url = "data:application/pdf;base64," + "A" * (32 * 1024 * 1024 // 3 * 4 + 8)
    response = http.post("/v1/partitions", json=body(url))
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "document_too_large"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        (data_url(b"%PDF-1.7\nthis is not really a pdf"), "unreadable_document"),
        (data_url(b""), "empty_document"),
        (data_url(bytes(range(256)) * 8, "application/octet-stream"), "unreadable_document"),
        (data_url(b"PK\x03\x04", "application/zip"), "unsupported_document"),
        ("https://example.com/invoices.pdf", "remote_fetch_unsupported"),
    ],
)
def test_unreadable_documents_end_failed(http: httpx.Client, url: str, code: str) -> None:
    for background in (False, True):
        response = http.post("/v1/partitions", json=body(url, background=background))
        assert response.status_code == 201
        run = response.json()
        if background:
            assert run["status"] == "queued" and run["error"] is None
            run = wait_until(lambda rid=run["id"]: _terminal(http, rid))
        assert run["status"] == "failed" and run["output"] == [] and run["usage"] is None
        assert run["error"]["code"] == code and run["error"]["message"]


def _terminal(http: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = http.get(f"/v1/partitions/{run_id}").json()
    return run if run["status"] in ("completed", "failed", "cancelled") else None


def test_images_and_text_documents(http: httpx.Client) -> None:
    png = http.post(
        "/v1/partitions", json=body(data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * 32, ""), filename="a.png")
    ).json()
    assert png["status"] == "completed" and png["output"] == [] and png["usage"] == {"credits": 1.0}
    assert png["file"]["mime_type"] == "image/png"
    text = b"Invoice number: A\fmore\fInvoice number: B"
    run = http.post("/v1/partitions", json=body(data_url(text, "text/plain"), filename="a.txt")).json()
    assert run["output"] == [{"key": "A", "pages": [1, 2]}, {"key": "B", "pages": [3]}]


@pytest.fixture
def pdf_server() -> Iterator[str]:
    pdf = make_pdf(INVOICE_PAGES)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/invoices.pdf":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(pdf)))
            self.end_headers()
            self.wfile.write(pdf)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_loopback_urls_are_fetched(http: httpx.Client, pdf_server: str) -> None:
    run = http.post("/v1/partitions", json=body(f"{pdf_server}/invoices.pdf")).json()
    assert run["status"] == "completed" and run["output"] == EXPECTED_CHUNKS
    assert run["file"]["mime_type"] == "application/pdf"
    missing = http.post("/v1/partitions", json=body(f"{pdf_server}/missing.pdf")).json()
    assert missing["status"] == "failed" and missing["error"]["code"] == "remote_fetch_failed"


def test_idempotency_key_replays_and_refuses_a_different_body(http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "create-1"}
    first = http.post("/v1/partitions", json=body(background=True), headers=headers)
    replay = http.post("/v1/partitions", json=body(background=True), headers=headers)
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    other = http.post("/v1/partitions", json=body(background=True, model="retab-micro"), headers=headers)
    assert other.status_code == 409
    assert other.json()["detail"]["code"] == "idempotency_key_reused"
    listed = http.get("/v1/partitions").json()["data"]
    assert [run["id"] for run in listed] == [first.json()["id"]]


def test_concurrent_retries_with_one_key_create_one_run(http: httpx.Client, emu: Emulator) -> None:
    results: list[httpx.Response] = []

    def attempt() -> None:
        with client(emu) as c:
            results.append(c.post("/v1/partitions", json=body(), headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.content for r in results}) == 1 and results[0].status_code == 201
    assert len(http.get("/v1/partitions").json()["data"]) == 1


def test_created_at_parses_and_orders(http: httpx.Client) -> None:
    runs = [create(http) for _ in range(3)]
    stamps = [datetime.fromisoformat(r["created_at"]) for r in runs]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_api_key_header_works(emu: Emulator) -> None:
    with httpx.Client(base_url=emu.url, headers={"Api-Key": emu.api_key}, trust_env=False) as c:
        assert c.get("/v1/partitions").status_code == 200
