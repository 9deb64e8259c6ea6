"""The served /openapi.json against facts taken from Retab's published spec."""

from __future__ import annotations

import json

import httpx

from .openapi_facts import FACTS_FILE, facts
from emulator_support import Emulator


def test_openapi_matches_the_published_spec(emu: Emulator) -> None:
    response = httpx.get(f"{emu.url}/openapi.json", trust_env=False)  # no key needed
    assert response.status_code == 200
    expected = json.loads(FACTS_FILE.read_text())
    served = facts(response.json())
    assert served["operations"] == expected["operations"]
    assert served["schemas"] == expected["schemas"]


def test_facts_cover_what_clients_rely_on() -> None:
    expected = json.loads(FACTS_FILE.read_text())
    operations = expected["operations"]
    assert set(operations) == {
        "POST /v1/partitions",
        "GET /v1/partitions",
        "GET /v1/partitions/{partition_id}",
        "DELETE /v1/partitions/{partition_id}",
        "POST /v1/partitions/{partition_id}/cancel",
    }
    limit = operations["GET /v1/partitions"]["parameters"]["limit"]
    assert (limit["default"], limit["minimum"], limit["maximum"]) == (10, 1, 100)
    assert expected["schemas"]["MIMEData"]["additionalProperties"] is False
    assert expected["schemas"]["Partition"]["required"] == ["file", "id", "key", "model"]
