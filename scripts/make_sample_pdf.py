"""Regenerate retab_cli/emulator/data/invoices.pdf: three invoices over seven pages.

INV-001 covers pages 1-2, INV-002 pages 3-5, INV-003 pages 6-7. Each invoice names
its number ("Invoice number: INV-00X") on its first page only; continuation pages
carry line items and no number, as real multi-page invoices do.

    python scripts/make_sample_pdf.py
"""

from __future__ import annotations

from pathlib import Path

from retab_cli.emulator import sample_pdf_path
from retab_cli.emulator.pdfgen import make_pdf

INVOICES = [
    ("INV-001", "Northwind Traders", "2024-03-04", 2),
    ("INV-002", "Contoso Ltd", "2024-03-11", 3),
    ("INV-003", "Fabrikam Inc", "2024-03-18", 2),
]


def invoice_pages(number: str, customer: str, date: str, page_count: int) -> list[str]:
    first = "\n".join(
        [
            "ACME Supplies Ltd - 1 Harbour Road, Portsmouth",
            "",
            "INVOICE",
            f"Invoice number: {number}",
            f"Date: {date}",
            f"Bill to: {customer}",
            "",
            "Description                         Qty    Amount",
            *(f"Widget type {i:02d}                      {i:3d}    {i * 12.5:8.2f}" for i in range(1, 9)),
        ]
    )
    pages = [first]
    for page in range(2, page_count + 1):
        lines = [f"(continued) page {page} of {page_count}", ""]
        lines += [
            f"Widget type {i:02d}                      {i:3d}    {i * 12.5:8.2f}"
            for i in range(page * 10, page * 10 + 8)
        ]
        if page == page_count:
            lines += ["", "Total due within 30 days. Thank you for your business."]
        pages.append("\n".join(lines))
    return pages


def sample_pages() -> list[str]:
    return [page for invoice in INVOICES for page in invoice_pages(*invoice)]


def main() -> None:
    target: Path = sample_pdf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(make_pdf(sample_pages()))


if __name__ == "__main__":
    main()
