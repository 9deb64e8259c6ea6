"""--include / --exclude patterns: gitignore-like segments, dots only when spelled."""

from __future__ import annotations

import pytest

from retab_cli.batch.globs import compile_glob
from retab_cli.errors import UsageError


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("*.pdf", "x.pdf", True),
    ("*.pdf", "a/b/x.pdf", True),            # no slash: a name at any depth
    ("*.pdf", "a/b/x.PDF", False),           # case-sensitive
    ("*.pdf", "a/.x.pdf", False),            # a wildcard never takes a leading dot
    ("*.pdf", ".git/x.pdf", False),          # nor `**` a hidden directory
    ("docs/*.txt", "docs/a.txt", True),
    ("docs/*.txt", "docs/a/b.txt", False),   # `*` stays inside one segment
    ("docs/*.txt", "x/docs/a.txt", False),   # a slash anchors at the SOURCE
    ("a/**", "a/b/c", True),
    ("a/**", "a", False),
    ("a/**", "a/.h", False),
    ("a/**/b", "a/b", True),                 # `**` may be no segment at all
    ("a/**/b", "a/x/y/b", True),
    ("**/x", "x", True),
    ("**/x", ".d/x", False),
    (".d/**", ".d/x", True),                 # a spelled dot matches hidden entries
    ("**/.*", "d/.h", True),
    ("inv-??.pdf", "inv-07.pdf", True),
    ("inv-??.pdf", "inv-7.pdf", False),
    ("[!a]b.txt", "cb.txt", True),
    ("[!a]b.txt", "ab.txt", False),
    ("[]x].txt", "].txt", True),
    ("f(1)+.pdf", "f(1)+.pdf", True),        # regex characters are literal
    ("docs/", "a/docs", True),               # a trailing slash changes nothing
    ("/docs", "docs", True),                 # a leading slash anchors at the SOURCE
    ("/docs", "a/docs", False),
])
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert compile_glob(pattern).matches(path) is expected


def test_glob_knows_when_it_spells_a_dot() -> None:
    assert compile_glob("**/.cache/*.pdf").spells_dot
    assert not compile_glob("**/*.pdf").spells_dot


@pytest.mark.parametrize(("pattern", "message"), [
    ("", "invalid --exclude '': expected a pattern such as '*.pdf'"),
    ("a**b", "invalid --exclude 'a**b': '**' must be a whole path segment"),
    ("[abc", "invalid --exclude '[abc': unclosed '['"),
])
def test_bad_patterns_are_usage_errors(pattern: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        compile_glob(pattern, "--exclude")
    assert caught.value.message == message
    assert caught.value.exit_code == 2
