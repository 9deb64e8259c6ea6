"""The served /openapi.json against facts taken from Retab's published specs."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .openapi_facts import FACTS_FILE, FILES_FACTS_FILE, facts
from emulator_support import Emulator


def published() -> tuple[dict[str, Any], dict[str, Any]]:
    return json.loads(FACTS_FILE.read_text()), json.loads(FILES_FACTS_FILE.read_text())


def test_openapi_matches_the_published_specs(emu: Emulator) -> None:
    response = httpx.get(f"{emu.url}/openapi.json", trust_env=False)  # no key needed
    assert response.status_code == 200
    partitions, files = published()
    served = facts(response.json())
    assert served["operations"] == {**partitions["operations"], **files["operations"]}
    # The two specs share some schemas (MIMEData, the validation errors), identically.
    shared = set(partitions["schemas"]) & set(files["schemas"])
    assert shared == {"HTTPValidationError", "MIMEData", "ValidationError"}
    assert all(partitions["schemas"][name] == files["schemas"][name] for name in shared)
    assert served["schemas"] == {**partitions["schemas"], **files["schemas"]}


def test_facts_cover_what_clients_rely_on() -> None:
    expected, files = published()
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
    assert set(files["operations"]) == {
        "POST /v1/files/upload",
        "POST /v1/files/upload/{file_id}/complete",
        "GET /v1/files/{file_id}",
        "GET /v1/files/{file_id}/download-link",
    }
    upload = files["schemas"]["CreateFileUploadResponse"]
    assert upload["required"] == ["expiresAt", "fileId", "uploadUrl"]
    assert set(upload["properties"]) == {
        "fileId", "uploadUrl", "uploadMethod", "uploadHeaders", "mimeData", "expiresAt"
    }
    assert files["schemas"]["UploadFileRequest"]["required"] == ["filename", "size_bytes"]
    assert files["operations"]["POST /v1/files/upload"]["responses"] == ["200", "422"]
