"""A hostile server's ids through the real process where stdout cannot encode them
(issue 8 #14): a non-UTF-8 locale or PYTHONIOENCODING must not turn a non-ASCII id into
a traceback; the recent-ids cache keeps only ids that pass the id rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import json_stub, run_isolated

PAGE: dict[str, Any] = {"data": [{"id": "$(touch PWNED)", "status": "completed"},
                                 {"id": "prtn_\u00e9t\u00e9\u201d", "status": "completed"},
                                 {"id": "prtn_fine", "status": "completed"}],
                        "list_metadata": {"before": None, "after": None}}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with json_stub(PAGE) as url:
        yield url


@pytest.mark.parametrize("encoding", [{"PYTHONIOENCODING": "ascii"},
                                      {"PYTHONIOENCODING": "latin-1"},
                                      {"PYTHONIOENCODING": "", "PYTHONUTF8": "0", "LC_ALL": "C",
                                       "LANG": "C"}])
@pytest.mark.parametrize("mode", ["ids", "csv", "table"])
def test_a_non_ascii_id_is_escaped_where_stdout_cannot_encode_it(
        tmp_path: Path, server: str, encoding: dict[str, str], mode: str) -> None:
    env = {"RETAB_API_BASE_URL": server, "RETAB_API_KEY": "rt_test_fine_key1234", **encoding}
    result = run_isolated(tmp_path, "partitions", "list", "-o", mode, env=env)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    # Latin-1 holds é (read back here as UTF-8, so U+FFFD), not the curly quote.
    shown = "prtn_\ufffdt\ufffd\\u201d" if encoding.get("PYTHONIOENCODING") == "latin-1" \
        else "prtn_\\xe9t\\xe9\\u201d"
    assert shown in result.stdout.splitlines()[-2 if mode != "ids" else 1]
    cached = list((tmp_path / "cache" / "retab" / "recent").iterdir())
    assert [p.read_text() for p in cached] == ["prtn_fine\n"]
