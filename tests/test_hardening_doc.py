"""docs/hardening.md names a fix and tests for every issue 8 item, and the tests exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARDENING = ROOT / "docs" / "hardening.md"


def rows() -> dict[int, str]:
    """Item number → its table row."""
    found = re.findall(r"^\| (\d+) \|(.*)$", HARDENING.read_text(), flags=re.M)
    return {int(number): rest for number, rest in found}


def named_tests(text: str) -> list[str]:
    return re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def missing_tests(text: str) -> list[str]:
    missing = []
    for file, name in named_tests(text):
        path = ROOT / file
        if not path.is_file() or name not in functions_in(path):
            missing.append(f"{file}::{name}")
    return missing


def test_every_item_has_one_row_with_a_module_and_tests() -> None:
    table = rows()
    assert sorted(table) == list(range(1, 19))
    for number, row in table.items():
        assert "retab_cli/" in row or "completions/" in row, number
        assert named_tests(row), number


def test_every_named_test_exists() -> None:
    assert missing_tests(HARDENING.read_text()) == []


def test_the_check_finds_a_test_that_does_not_exist() -> None:
    text = ("`tests/test_hardening_doc.py::test_every_named_test_exists` "
            "`tests/test_hardening_doc.py::test_nothing_here` `tests/nope.py::test_x`")
    assert missing_tests(text) == ["tests/test_hardening_doc.py::test_nothing_here",
                                   "tests/nope.py::test_x"]
