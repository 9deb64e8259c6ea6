"""SOURCE... to documents: files and directories walked in a stable order, lazily.

Rules (docs/design.md §10, and the choices made where it is silent):
- Directories are walked depth first, each one's entries sorted by name (code point
  order, files and subdirectories interleaved); only the directories on the current
  path are held in memory, so 100,000 files cost what sorting one directory costs.
- Symlinks met while walking are skipped (not followed); a SOURCE named on the command
  line or on stdin is followed, like `find -H`, because the user named it.
- Hidden entries (a name starting with `.`) are skipped unless an `--include` matches
  them; a hidden directory is entered only when some `--include` spells a dot.
- A walked file is taken when an `--include` matches its relative path (the default:
  the document extensions `create` accepts, in any case) and no `--exclude` does; an
  excluded directory is not entered. A file named directly is taken unless an
  `--exclude` (or a given `--include`) says otherwise: its type is checked when hashed.
- Relative path: relative to the SOURCE directory; a file named directly: its
  basename; a path read from `-` (stdin, one per line): as given, normalised, when it
  is relative and inside the current directory, else its basename. Undecodable bytes in
  names appear as `\\xNN` (the path read stays the real one).
- The same file reached twice (`docs docs/a`) is taken once; another file at a relative
  path already taken is skipped with a warning (its journal row would be the other's).
- A file or directory that cannot be read is an item with `error` set (a LocalError
  for the journal), never raised.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from retab_cli.batch.globs import Glob, compile_globs
from retab_cli.batch.hashing import LocalError

# The extensions `create` accepts (documents._STRICT and documents._TEXT), mirrored here
# because those names are private; tests/batch checks that the two stay the same.
DOCUMENT_EXTENSIONS = frozenset({
    ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".tif", ".tiff", ".docx", ".xlsx",
    ".pptx", ".txt", ".csv", ".md", ".html", ".htm", ".json", ".xml", ".eml",
})


@dataclass(frozen=True)
class Source:
    relpath: str            # posix, relative to its SOURCE; the journal's key
    path: Path              # where to read it
    error: LocalError | None = None  # why it cannot be read, or None


@dataclass
class WalkStats:
    """What the walk left out, for the summary."""

    symlinks: int = 0
    hidden: int = 0
    excluded: int = 0
    not_included: int = 0
    duplicates: int = 0
    collisions: int = 0


@dataclass(frozen=True)
class Selection:
    include: tuple[Glob, ...] = ()
    exclude: tuple[Glob, ...] = ()

    def skips_dir(self, relpath: str) -> str | None:
        """Why a directory met while walking is not entered, or None to enter it."""
        if _hidden(relpath.rsplit("/", 1)[-1]) and not any(g.spells_dot for g in self.include):
            return "hidden"
        if any(g.matches(relpath) for g in self.exclude):
            return "excluded"
        return None

    def skips_file(self, relpath: str, *, named: bool) -> str | None:
        """Why a file is not taken (a WalkStats field name), or None to take it."""
        if any(g.matches(relpath) for g in self.exclude):
            return "excluded"
        if self.include and any(g.matches(relpath) for g in self.include):
            return None  # wildcards never match a leading dot: this one spelled it
        if not named and _hidden_path(relpath):
            return "hidden"
        if self.include:
            return "not_included"
        if named or os.path.splitext(relpath)[1].lower() in DOCUMENT_EXTENSIONS:
            return None
        return "not_included"


def selection(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Selection:
    return Selection(compile_globs(include, "--include"), compile_globs(exclude, "--exclude"))


def walk(sources: Iterable[str], choose: Selection = Selection(), *,
         stdin: TextIO | None = None, stats: WalkStats | None = None,
         warn: Callable[[str], None] = lambda _: None) -> Iterator[Source]:
    """Every document under SOURCE... once, in order; `-` reads more SOURCEs from stdin."""
    tally = stats if stats is not None else WalkStats()
    seen = _Seen()
    for root, relpath in _roots(sources, stdin):
        for item in _walk_root(root, relpath, choose, tally):
            if seen.first(item, tally, warn):
                yield item


def _roots(sources: Iterable[str], stdin: TextIO | None) -> Iterator[tuple[str, str]]:
    """(path, its relative path if it is a file) for each SOURCE, stdin's lines in place."""
    for source in sources:
        if source != "-":
            yield source, _clean(os.path.basename(os.path.normpath(source)))
            continue
        if stdin is None:
            continue
        for line in stdin:
            path = line.rstrip("\r\n")
            if path.strip():
                yield path, _stdin_relpath(path)


def _stdin_relpath(path: str) -> str:
    norm = os.path.normpath(path)
    if os.path.isabs(norm) or norm == ".." or norm.startswith("../"):
        norm = os.path.basename(norm)
    return _clean(norm)


def _walk_root(root: str, name: str, choose: Selection, tally: WalkStats) -> Iterator[Source]:
    try:
        info = os.stat(root)
    except OSError as exc:
        yield Source(name, Path(root), _unreadable(name, exc, "cannot read"))
        return
    if stat.S_ISDIR(info.st_mode):
        yield from _walk_dir(Path(root), choose, tally)
        return
    why = choose.skips_file(name, named=True)
    if why:
        _count(tally, why)
        return
    yield Source(name, Path(root), None if stat.S_ISREG(info.st_mode) else _not_regular(name))


def _walk_dir(top: Path, choose: Selection, tally: WalkStats) -> Iterator[Source]:
    listing = _scan(top)
    if isinstance(listing, OSError):
        name = _clean(top.name or str(top))
        yield Source(name, top, _unreadable(name, listing, "cannot read directory"))
        return
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(listing))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        relpath = prefix + _clean(entry.name)
        if entry.is_symlink():
            tally.symlinks += 1
        elif entry.is_dir(follow_symlinks=False):
            inner = _enter(entry, relpath, choose, tally)
            if isinstance(inner, Source):
                yield inner
            elif inner is not None:
                stack.append((relpath + "/", iter(inner)))
        else:
            yield from _file(entry, relpath, choose, tally)


def _enter(entry: os.DirEntry[str], relpath: str, choose: Selection,
           tally: WalkStats) -> list[os.DirEntry[str]] | Source | None:
    why = choose.skips_dir(relpath)
    if why:
        _count(tally, why)
        return None
    listing = _scan(Path(entry.path))
    if isinstance(listing, OSError):
        return Source(relpath, Path(entry.path),
                      _unreadable(relpath, listing, "cannot read directory"))
    return listing


def _file(entry: os.DirEntry[str], relpath: str, choose: Selection,
          tally: WalkStats) -> Iterator[Source]:
    why = choose.skips_file(relpath, named=False)
    if why:
        _count(tally, why)
        return
    regular = entry.is_file(follow_symlinks=False)
    yield Source(relpath, Path(entry.path), None if regular else _not_regular(relpath))


def _scan(directory: Path) -> list[os.DirEntry[str]] | OSError:
    """The directory's entries sorted by name, or why they cannot be read."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        return exc


class _Seen:
    """64-bit hashes of the files and relative paths taken: small, even for 100,000."""

    def __init__(self) -> None:
        self.files: set[int] = set()
        self.relpaths: set[int] = set()

    def first(self, item: Source, tally: WalkStats, warn: Callable[[str], None]) -> bool:
        real = _short_hash(os.path.realpath(item.path))
        if real in self.files:
            tally.duplicates += 1
            return False
        rel = _short_hash(item.relpath)
        if rel in self.relpaths:
            tally.collisions += 1
            warn(f"warning: skipping {_clean(str(item.path))}: its relative path "
                 f"{item.relpath} is already taken by another SOURCE's document")
            return False
        self.files.add(real)
        self.relpaths.add(rel)
        return True


def _short_hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _count(tally: WalkStats, why: str) -> None:
    setattr(tally, why, getattr(tally, why) + 1)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _hidden_path(relpath: str) -> bool:
    return any(_hidden(part) for part in relpath.split("/"))


def _clean(name: str) -> str:
    """The name as valid UTF-8 text: undecodable bytes shown as `\\xNN`."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _unreadable(relpath: str, exc: OSError, what: str) -> LocalError:
    if isinstance(exc, FileNotFoundError):
        return LocalError("not_found", f"{relpath}: no such file or directory")
    return LocalError("unreadable", f"{what} {relpath}: {exc.strerror or exc}")


def _not_regular(relpath: str) -> LocalError:
    return LocalError("not_regular", f"{relpath} is not a regular file")
