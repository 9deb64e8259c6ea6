"""Helpers for the emulator's own tests: clients, documents, request bodies."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from retab_cli.emulator.pdfgen import make_pdf

from emulator_support import Emulator

INVOICE_PAGES = [
    "ACME Supplies\nINVOICE\nInvoice number: INV-001\nBill to: Northwind",
    "(continued)\nWidget 11   3   37.50",
    "ACME Supplies\nINVOICE\nInvoice number: INV-002\nBill to: Contoso",
    "(continued)\nWidget 21   1   12.50",
    "(continued)\nTotal due within 30 days",
    "ACME Supplies\nINVOICE\nInvoice number: INV-003\nBill to: Fabrikam",
    "(continued)\nWidget 31   2   25.00",
]
EXPECTED_CHUNKS = [
    {"key": "INV-001", "pages": [1, 2]},
    {"key": "INV-002", "pages": [3, 4, 5]},
    {"key": "INV-003", "pages": [6, 7]},
]


def client(emu: Emulator, api_key: str | None = None) -> httpx.Client:
    key = api_key or emu.api_key
    return httpx.Client(
        base_url=emu.url, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False
    )


def data_url(data: bytes, mime: str = "application/pdf") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def pdf_url(pages: list[str] | None = None) -> str:
    return data_url(make_pdf(INVOICE_PAGES if pages is None else pages))


def body(url: str | None = None, *, filename: str = "invoices.pdf", **fields: Any) -> dict[str, Any]:
    return {
        "document": {"filename": filename, "url": url or pdf_url()},
        "key": "invoice number",
        "instructions": "One chunk per invoice.",
        **fields,
    }


def create(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    """A background create (fast); returns the Partition."""
    fields.setdefault("background", True)
    response = http.post("/v1/partitions", json=body(**fields))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]
