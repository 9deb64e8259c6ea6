"""Hostile input (issue 8, items 16-18): never a 500, never a big echo, never a self-fetch."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from .helpers import body, client
from emulator_support import Emulator


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
