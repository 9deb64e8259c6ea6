"""Walking SOURCE...: order, hidden files, symlinks, globs, duplicates, errors, laziness."""

from __future__ import annotations

import io
import os
import types
from pathlib import Path

import pytest

from retab_cli import documents
from retab_cli.batch.hashing import LocalError
from retab_cli.batch.sources import DOCUMENT_EXTENSIONS, Source, WalkStats, selection, walk

from .conftest import make_tree

DOCS = {
    "b.txt": "b", "a.pdf": "%PDF-", "UPPER.PDF": "%PDF-", "notes.bin": "\x00",
    "sub/c.pdf": "%PDF-", "sub/deeper/d.md": "d", "sub/z.eml": "z",
    ".hidden.pdf": "%PDF-", ".git/x.pdf": "%PDF-", ".git/objects/y.txt": "y",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "docs", DOCS)
    (root / "link.pdf").symlink_to(root / "a.pdf")
    (root / "linkdir").symlink_to(root / "sub", target_is_directory=True)
    return root


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories the walk lists, in order."""
    listed: list[str] = []
    real_scandir = os.scandir

    def spy(path: str | os.PathLike[str]) -> object:
        listed.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    return listed


def relpaths(items: list[Source]) -> list[str]:
    return [item.relpath for item in items]


def test_walk_is_sorted_recursive_and_skips_hidden_symlinks_and_other_types(docs: Path) -> None:
    stats = WalkStats()
    items = list(walk([str(docs)], stats=stats))
    # Each directory sorted by name (code points: upper case first), depth first.
    assert relpaths(items) == ["UPPER.PDF", "a.pdf", "b.txt", "sub/c.pdf",
                               "sub/deeper/d.md", "sub/z.eml"]
    assert all(item.error is None for item in items)
    assert items[0].path == docs / "UPPER.PDF"
    assert stats == WalkStats(symlinks=2, hidden=2, not_included=1)


def test_an_include_replaces_the_default_and_may_open_hidden_directories(docs: Path) -> None:
    stats = WalkStats()
    items = list(walk([str(docs)], selection(include=[".git/**", "*.md"]), stats=stats))
    assert relpaths(items) == [".git/objects/y.txt", ".git/x.pdf", "sub/deeper/d.md"]
    # `.hidden.pdf` is hidden; the rest are not included.
    assert stats.hidden == 1 and stats.not_included == 6


def test_hidden_files_need_an_include_that_spells_the_dot(docs: Path) -> None:
    items = list(walk([str(docs)], selection(include=["*.pdf", "/.*.pdf"])))
    assert relpaths(items) == [".hidden.pdf", "a.pdf", "sub/c.pdf"]


def test_excludes_win_and_prune_directories(docs: Path, scanned: list[str]) -> None:
    stats = WalkStats()
    items = list(walk([str(docs)], selection(include=["*"], exclude=["sub", "*.bin", "b.*"]),
                      stats=stats))
    assert relpaths(items) == ["UPPER.PDF", "a.pdf"]
    assert stats.excluded == 3
    assert scanned == [str(docs)]  # sub/ was never listed


def test_a_file_named_directly_is_its_basename_and_needs_no_include(docs: Path) -> None:
    items = list(walk([str(docs / "notes.bin"), str(docs / ".hidden.pdf"),
                       str(docs / "link.pdf"), str(docs / "sub" / "c.pdf")]))
    # Named files are taken whatever their name; a named symlink is followed.
    assert relpaths(items) == ["notes.bin", ".hidden.pdf", "link.pdf", "c.pdf"]
    assert items[2].path == docs / "link.pdf"


def test_a_named_file_still_obeys_excludes_and_given_includes(docs: Path) -> None:
    stats = WalkStats()
    items = list(walk([str(docs / "a.pdf"), str(docs / "b.txt")], selection(exclude=["*.txt"]),
                      stats=stats))
    assert relpaths(items) == ["a.pdf"] and stats.excluded == 1
    items = list(walk([str(docs / "a.pdf"), str(docs / "b.txt")], selection(include=["*.txt"]),
                      stats=stats))
    assert relpaths(items) == ["b.txt"] and stats.not_included == 1


def test_the_same_file_is_taken_once_across_sources(docs: Path) -> None:
    stats = WalkStats()
    items = list(walk([str(docs), str(docs / "sub"), str(docs / "a.pdf"), f"{docs}/./"],
                      stats=stats))
    assert relpaths(items) == ["UPPER.PDF", "a.pdf", "b.txt", "sub/c.pdf",
                               "sub/deeper/d.md", "sub/z.eml"]
    assert stats.duplicates == 3 + 1 + 6


def test_another_file_at_a_taken_relative_path_is_skipped_with_a_warning(tmp_path: Path) -> None:
    make_tree(tmp_path, {"one/x.pdf": "1", "two/x.pdf": "2", "two/y.pdf": "y"})
    warnings: list[str] = []
    stats = WalkStats()
    items = list(walk([str(tmp_path / "one"), str(tmp_path / "two")], stats=stats,
                      warn=warnings.append))
    assert [(i.relpath, i.path) for i in items] == [("x.pdf", tmp_path / "one" / "x.pdf"),
                                                    ("y.pdf", tmp_path / "two" / "y.pdf")]
    assert stats.collisions == 1
    assert warnings == [f"warning: skipping {tmp_path}/two/x.pdf: its relative path x.pdf is "
                        "already taken by another SOURCE's document"]


def test_dash_reads_sources_from_the_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, {"work/docs/a.pdf": "a", "work/more/m.txt": "m", "elsewhere/e.pdf": "e"})
    monkeypatch.chdir(tmp_path / "work")
    stream = io.StringIO(f"docs/a.pdf\n\n./docs/../docs/a.pdf\r\n{tmp_path}/elsewhere/e.pdf\n"
                         "../elsewhere/e.pdf\nmore\n")
    stats = WalkStats()
    items = list(walk(["-"], stdin=stream, stats=stats))
    # Relative paths inside the current directory stay as given (normalised); others
    # are basenames; a directory is walked; the same file again is a duplicate.
    assert relpaths(items) == ["docs/a.pdf", "e.pdf", "m.txt"]
    assert stats.duplicates == 2


def test_unreadable_entries_are_items_with_an_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "docs", {"a.pdf": "a", "locked/b.pdf": "b", "z.pdf": "z"})
    os.mkfifo(root / "pipe.pdf")
    real_scandir = os.scandir

    def refuse(path: str | os.PathLike[str]) -> object:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    items = list(walk([str(root), str(tmp_path / "missing.pdf")]))
    assert [(i.relpath, i.error) for i in items] == [
        ("a.pdf", None),
        ("locked", LocalError("unreadable", "cannot read directory locked: Permission denied")),
        ("pipe.pdf", LocalError("not_regular", "pipe.pdf is not a regular file")),
        ("z.pdf", None),
        ("missing.pdf", LocalError("not_found", "missing.pdf: no such file or directory"))]


def test_an_unreadable_source_directory_is_an_item(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "top").mkdir()

    def refuse(path: str | os.PathLike[str]) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)
    assert list(walk([str(tmp_path / "top")])) == [
        Source("top", tmp_path / "top",
               LocalError("unreadable", "cannot read directory top: Permission denied"))]


def test_undecodable_names_become_escapes(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as fh:
        fh.write(b"x")
    [item] = walk([str(tmp_path)])
    assert item.relpath == "caf\\xe9.txt"
    assert item.path.read_bytes() == b"x"  # the real name is kept for reading


def test_the_walk_is_lazy(tmp_path: Path, scanned: list[str]) -> None:
    make_tree(tmp_path, {f"d{i:03d}/f{j}.txt": "x" for i in range(100) for j in range(3)})
    items = walk([str(tmp_path)])
    assert isinstance(items, types.GeneratorType)
    assert next(items).relpath == "d000/f0.txt"
    assert len(scanned) == 2  # the top and the first directory, not all 101
    assert sum(1 for _ in items) == 299


def test_default_extensions_are_the_ones_create_accepts() -> None:
    # documents.py keeps them private; this mirror must follow when they change.
    assert set(documents._STRICT) | set(documents._TEXT) == DOCUMENT_EXTENSIONS
