"""A local emulator of Retab's Partitions API (`retab emulator`).

Importing this package must stay cheap: the server stack (FastAPI, uvicorn, pypdf)
is imported only by the modules that need it, which the command imports lazily.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_API_KEY = "rt_test_emulator"


def sample_pdf_path() -> Path:
    """The shipped sample: three invoices over seven pages (key `invoice number`)."""
    return Path(__file__).resolve().parent / "data" / "invoices.pdf"
