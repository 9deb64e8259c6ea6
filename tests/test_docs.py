"""The documentation agrees with itself, with the tree and with the tool.

Links resolve, design citations name real sections, the exit-code table is the same in
docs/exit-codes.md, the README and `retab --help`, the spec copies match the facts the
emulator is tested against, and the README's emulator output and the GitHub Actions
example are what the tool really does.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator.openapi_facts import FACTS_FILE, facts
from test_readme import base_env, shell

from retab_cli.errors import worst

from cli_support import SAMPLE_PDF
from emulator_support import Emulator

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# Directories that are not the project's own text: tools' caches, virtualenvs, builds.
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".ruff_cache",
                ".pytest_cache", "build", "dist", "node_modules"}


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def without_code(text: str) -> str:
    """Markdown with fenced blocks and inline code removed: links there are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(text: str) -> list[str]:
    targets = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", without_code(text))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_fences(path.read_text()), flags=re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown file that name no file, or no heading in it."""
    return [link for link in relative_links(path.read_text()) if not resolves(path, link)]


def resolves(page: Path, link: str) -> bool:
    target, _, fragment = link.partition("#")
    resolved = (page.parent / target).resolve() if target else page
    if not resolved.is_file():
        return False
    return not fragment or resolved.suffix != ".md" or fragment in anchors(resolved)


# ---- links ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_docs_are_linked_from_the_readme_and_the_index() -> None:
    readme = relative_links(README.read_text())
    assert "docs/README.md" in readme
    index = {link.partition("#")[0] for link in relative_links((DOCS / "README.md").read_text())}
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*")
             if p.is_file() and p.name != "README.md"}
    # docs/architecture.md is written with the module restructuring; link it once it lands.
    assert pages - {"architecture.md"} <= index


def test_the_link_check_finds_a_broken_link_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Real heading\n")
    page = tmp_path / "page.md"
    page.write_text("[a](other.md) [b](missing.md) [c](other.md#real-heading) "
                    "[d](other.md#nope) [e](https://example.com/x) `[f](nope.md)`\n")
    assert broken_links(page) == ["missing.md", "other.md#nope"]


def test_slugs_follow_github() -> None:
    assert slug("3. Exit codes (documented in the README and `retab --help`)") == \
        "3-exit-codes-documented-in-the-readme-and-retab---help"
    assert slug("11. Big documents: Retab's file upload (`/v1/files/...`)") == \
        "11-big-documents-retabs-file-upload-v1files"


# ---- design citations ---------------------------------------------------------------------

# `docs/design.md §4`, `design.md §2, §8`, a range with a dash, and `DESIGN §3` (the older
# spelling, the same sections).
CITATION = re.compile(r"(?:design\.md|DESIGN)((?:(?:\s*,\s*|\s+and\s+|\s*[–-]\s*|\s+)§\d+)+)")


def design_sections() -> set[int]:
    return {int(n) for n in re.findall(r"^## (\d+)\. ", (DOCS / "design.md").read_text(), flags=re.M)}


def tree_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
                   and not (Path(folder) / d / "pyvenv.cfg").exists()]
        for name in files:
            yield Path(folder) / name


def citations() -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for path in tree_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for match in CITATION.finditer(text):
            where = str(path.relative_to(ROOT))
            found.extend((where, int(n)) for n in re.findall(r"§(\d+)", match.group(1)))
    return found


def test_the_design_keeps_sections_1_to_12() -> None:
    assert design_sections() == set(range(1, 13))


def test_every_design_citation_names_a_section() -> None:
    found = citations()
    assert len(found) >= 20  # the code cites the design throughout; an empty scan is a bug
    sections = design_sections()
    assert [(where, n) for where, n in found if n not in sections] == []


def test_no_file_cites_the_design_by_its_old_name() -> None:
    """`DESIGN §N` named a design file outside the repository: cite docs/design.md."""
    old = "DESIGN" + " §"
    found = []
    for path in tree_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                  if old in line and path.name != "test_docs.py"]
    assert found == []


def test_the_citation_pattern_reads_every_form() -> None:
    cited = "see docs/design.md §2, §8 and design.md §10–§12, DESIGN §" + "99"
    assert [re.findall(r"§(\d+)", m.group(1)) for m in CITATION.finditer(cited)] == \
        [["2", "8"], ["10", "12"], ["99"]]


# ---- the exit-code table ----------------------------------------------------------------


def _plain(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def markdown_exit_codes(text: str) -> list[tuple[int, str]]:
    """The first `| code | meaning |` table in the text."""
    start = text.index("| code | meaning |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        code, meaning = (cell.strip() for cell in line.strip().strip("|").split("|", 1))
        rows.append((int(code), _plain(meaning)))
    return rows


def section(text: str, heading: str) -> str:
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


@functools.cache
def root_help() -> str:
    result = subprocess.run([sys.executable, "-m", "retab_cli", "--help"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def help_exit_codes(text: str) -> list[tuple[int, str]]:
    block = text.split("Exit codes:\n", 1)[1].split("\n\n", 1)[0]
    rows = [re.fullmatch(r"\s+(\d+)  (.+)", line) for line in block.splitlines()]
    assert all(rows), block
    return [(int(m.group(1)), _plain(m.group(2))) for m in rows if m]


def severity(text: str) -> list[int]:
    match = re.search(r"most severe outcome wins:\s+((?:\d+,\s+)+\d+)\.", text)
    assert match, "no severity order"
    return [int(n) for n in match.group(1).split(",")]


def test_the_exit_code_tables_are_the_same_everywhere() -> None:
    documented = markdown_exit_codes((DOCS / "exit-codes.md").read_text())
    readme = markdown_exit_codes(section(README.read_text(), "## Exit codes"))
    shown = help_exit_codes(root_help())
    assert [code for code, _ in documented] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 130]
    assert readme == documented
    assert shown == documented


def test_the_severity_order_is_the_code_s_everywhere() -> None:
    documented = markdown_exit_codes((DOCS / "exit-codes.md").read_text())
    ranked = [code for code, _ in documented if code != 130]
    # worst() decides; sort by it: a before b when a wins over b.
    def before(a: int, b: int) -> int:
        return 0 if a == b else (-1 if worst([a, b]) == a else 1)

    order = sorted(ranked, key=functools.cmp_to_key(before))
    assert order == [4, 2, 1, 6, 3, 5, 8, 7, 0]
    assert severity((DOCS / "exit-codes.md").read_text()) == order
    assert severity(section(README.read_text(), "## Exit codes")) == order
    assert severity(root_help()) == order
    assert worst([143, 130, 4]) == 143 and worst([130, 4]) == 130  # interrupts first


# ---- the published spec's copies ----------------------------------------------------------


def test_the_partitions_spec_copy_is_the_one_the_emulator_is_checked_against() -> None:
    spec = json.loads((DOCS / "api" / "partitions.openapi.json").read_text())
    assert facts(spec) == json.loads(FACTS_FILE.read_text())


def test_the_files_spec_copy_has_the_endpoints_the_design_names() -> None:
    spec = json.loads((DOCS / "api" / "files-usage.openapi.json").read_text())
    design = section((DOCS / "design.md").read_text(),
                     "## 11. Big documents: Retab's file upload (`/v1/files/...`)")
    def shape(path: str) -> str:  # `{id}` in the design is `{file_id}` in the spec
        return re.sub(r"\{[^}]*\}", "{}", path)

    named = {shape(p) for p in re.findall(r"`(/v1/files/[^`\s]*)`", design)}
    assert len(named) == 4
    assert named <= {shape(p) for p in spec["paths"]}


# ---- the README's emulator block ----------------------------------------------------------


def readme_emulator_block() -> list[str]:
    text = README.read_text()
    block = re.search(r"```text\n(\$ retab emulator [^\n]*\n.*?)```", text, flags=re.S)
    assert block, "no `$ retab emulator` example in the README"
    return block.group(1).splitlines()


def test_the_readme_shows_what_the_emulator_prints(tmp_path: Path) -> None:
    command, *shown = readme_emulator_block()
    env = {**base_env(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    args = shlex.split(command.removeprefix("$ "))
    proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        printed = [proc.stdout.readline().rstrip("\n") for _ in shown]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    url = printed[0].removeprefix("listening on ")
    shown_url = shown[0].removeprefix("listening on ")
    # The port is a free one picked at start: the README's is an example of one.
    assert [line.replace(shown_url, url) for line in shown] == printed, stderr
    assert "free port" in README.read_text()


# ---- the GitHub Actions example -----------------------------------------------------------

WORKFLOW = ROOT / "examples" / "github-actions.yml"


def run_blocks(text: str) -> list[str]:
    """The `run:` scripts of a workflow (one-line and `|` blocks), without YAML."""
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"(\s*)(?:- )?run: (.*)$", line)
        if not match:
            continue
        if match.group(2).strip() != "|":
            blocks.append(match.group(2))
            continue
        indent = len(match.group(1))
        body = []
        for inner in lines[i + 1:]:
            if inner.strip() and len(inner) - len(inner.lstrip()) <= indent:
                break
            body.append(inner.strip())
        blocks.append("\n".join(body).strip())
    return blocks


def test_the_workflow_installs_retab_from_the_repository() -> None:
    installs = [cmd for block in run_blocks(WORKFLOW.read_text())
                for cmd in re.findall(r"pip install ([^\n]+)", block)]
    assert installs, "the workflow installs nothing"
    for target in installs:
        assert target.strip() == "." or target.strip('"').startswith(("git+", "./")), target


def test_the_workflow_partitions_and_summarises(emu: Emulator, tmp_path: Path) -> None:
    script = next(b for b in run_blocks(WORKFLOW.read_text()) if "partitions watch" in b)
    (tmp_path / "invoices").mkdir()
    for name in ("a.pdf", "b.pdf"):
        shutil.copy(SAMPLE_PDF, tmp_path / "invoices" / name)
    summary = tmp_path / "summary.md"
    env = {**base_env(tmp_path), "RETAB_API_BASE_URL": emu.url, "RETAB_API_KEY": emu.api_key,
           "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = shell(script, tmp_path, env)
    assert result.returncode == 0, result.stderr
    ids = (tmp_path / "ids.txt").read_text().split()
    assert len(ids) == 2
    final = {}
    for line in (tmp_path / "runs.jsonl").read_text().splitlines():
        run = json.loads(line)
        final[run["id"]] = run["status"]
    assert final == dict.fromkeys(ids, "completed")
    table = summary.read_text()
    assert all(run_id in table for run_id in ids)
    assert "::error" not in result.stderr


# ---- docs/hardening.md names real tests ----------------------------------------------------

HARDENING = ROOT / "docs" / "hardening.md"
NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def named_tests(text: str) -> list[tuple[str, str]]:
    return NAMED_TEST.findall(text)


def test_every_test_the_hardening_table_names_exists() -> None:
    named = named_tests(HARDENING.read_text())
    assert len(named) >= 18
    missing = [f"{path}::{name}" for path, name in named
               if not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.M)]
    assert missing == []


def test_every_item_of_issue_8_has_a_row_with_a_test() -> None:
    rows = {int(m.group(1)): m.group(2) for m in
            re.finditer(r"^\| (\d+) \|(.*)$", HARDENING.read_text(), re.M)}
    assert sorted(rows) == list(range(1, 19))
    assert [n for n, row in rows.items() if not named_tests(row)] == []


def test_the_name_check_catches_a_test_that_does_not_exist() -> None:
    text = "`tests/test_docs.py::test_no_such_test` and `tests/test_docs.py::test_slugs_follow_github`"
    named = named_tests(text)
    assert named == [("tests/test_docs.py", "test_no_such_test"),
                     ("tests/test_docs.py", "test_slugs_follow_github")]
    source = (ROOT / "tests/test_docs.py").read_text()
    assert [n for _, n in named if not re.search(rf"^def {n}\(", source, re.M)] == [
        "test_no_such_test"]
