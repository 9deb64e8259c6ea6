"""Trees of documents built in tmp_path for the batch engines."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from retab_cli.batch.params import Params

PARAMS = Params(key="invoice number", instructions="split the invoices", model="retab-small")


def make_tree(root: Path, files: Mapping[str, bytes | str]) -> Path:
    """Write each relative path with its content (str as UTF-8); returns root."""
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@pytest.fixture
def params() -> Params:
    return PARAMS
