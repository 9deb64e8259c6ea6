"""scripts/mutate.py: which mutants it finds, what each one changes, and a whole run on a
toy package (survivors reported as file:line, the tree itself never touched)."""

from __future__ import annotations

import ast
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutate.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


mutate = load()

SOURCE = textwrap.dedent('''\
    """Module docstring."""
    from __future__ import annotations

    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        LIMIT_TYPE = int

    LIMIT = 3


    def check(x: int, flag: bool = True) -> int:
        """Docstring."""
        if x < LIMIT and not flag:
            return min(x, 2) + 1
        total = x * 2
        print("text")
        raise AssertionError("never")  # pragma: no cover


    class P:
        def f(self) -> None: ...
        field: int
''')


def descriptions(source: str) -> list[tuple[int, str]]:
    return [(m.line, m.description) for m in mutate.find_mutants(source)]


def test_the_mutants_found() -> None:
    found = sorted(descriptions(SOURCE))
    assert found == sorted([
        (9, "3 -> 4"), (9, "3 -> 2"),
        (12, "True -> False"),
        (14, "condition x < LIMIT and (not flag) negated"), (14, "and -> or"), (14, "< -> <="),
        (14, "not flag -> flag"),
        (15, "return min(x, 2) + 1 -> return None"), (15, "+ -> -"), (15, "min(...) -> max(...)"),
        (15, "2 -> 3"), (15, "2 -> 1"), (15, "1 -> 2"), (15, "1 -> 0"),
        (16, "statement removed: total = x * 2"), (16, "* -> /"), (16, "2 -> 3"), (16, "2 -> 1"),
        (17, "statement removed: print('text')"), (17, "'text' -> 'XXtextXX'"),
    ])


def test_docstrings_annotations_type_checking_and_no_cover_lines_are_left_alone() -> None:
    lines = {line for line, _ in descriptions(SOURCE)}
    assert not lines & {1, 2, 4, 6, 7, 13, 18, 21, 22, 23}


@pytest.mark.parametrize(("description", "expected"), [
    ("< -> <=", "if x <= LIMIT and (not flag):"),
    ("and -> or", "if x < LIMIT or not flag:"),
    ("not flag -> flag", "if x < LIMIT and flag:"),
    ("condition x < LIMIT and (not flag) negated", "if not (x < LIMIT and (not flag)):"),
    ("return min(x, 2) + 1 -> return None", "return None"),
    ("min(...) -> max(...)", "return max(x, 2) + 1"),
    ("statement removed: total = x * 2", "pass"),
    ("'text' -> 'XXtextXX'", "print('XXtextXX')"),
    ("True -> False", "def check(x: int, flag: bool=False) -> int:"),
])
def test_each_mutant_changes_one_thing(description: str, expected: str) -> None:
    mutant = next(m for m in mutate.find_mutants(SOURCE) if m.description == description)
    mutated = mutate.mutate_source(SOURCE, mutant)
    original = ast.unparse(ast.parse(SOURCE)).splitlines()
    changed = [line.strip() for line in mutated.splitlines() if line not in original]
    assert changed == [expected]
    compile(mutated, "mutated.py", "exec")


def test_a_whole_run_reports_the_survivor_and_leaves_the_tree_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "retab_cli"
    package.mkdir()
    (package / "__init__.py").write_text("")
    toy = "def sign(x: int) -> int:\n    return 1 if x > 0 else -1\n"
    (package / "toy.py").write_text(toy)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_toy.py").write_text(
        "from retab_cli.toy import sign\n\n\ndef test_sign() -> None:\n"
        "    assert sign(5) == 1 and sign(-5) == -1\n")  # 0 and 1 are never tried
    code = mutate.main(["retab_cli/toy.py", "--root", str(tmp_path), "--tests", "tests/test_toy.py",
                        "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("retab_cli/toy.py: 6/9 mutants killed (66.7%), 0 by timeout; ")
    assert lines[1:] == ["retab_cli/toy.py:2: > -> >=", "retab_cli/toy.py:2: 0 -> 1",
                         "retab_cli/toy.py:2: 0 -> -1"]
    assert (package / "toy.py").read_text() == toy


def test_a_run_refuses_tests_that_fail_unmutated(tmp_path: Path) -> None:
    package = tmp_path / "retab_cli"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "toy.py").write_text("X = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_toy.py").write_text("def test_fails() -> None:\n    assert False\n")
    with pytest.raises(SystemExit) as info:
        mutate.main(["retab_cli/toy.py", "--root", str(tmp_path), "--tests", "tests/test_toy.py",
                     "--workers", "1"])
    assert str(info.value) == "mutate: the tests fail before any mutation: tests/test_toy.py"
