"""`--include` / `--exclude` patterns, matched against posix relative paths.

Semantics (gitignore-like, with the shell's rule for dot files):
- `*` matches any run of characters within one path segment, `?` one character, and
  `[...]` a character class; none of them crosses a `/`.
- `**` as a whole segment matches any number of segments, zero included: `a/**/b`
  matches `a/b` and `a/x/y/b`; a trailing `/**` matches everything below.
- A pattern without a `/` matches a name at any depth: it is read as `**/PATTERN`, so
  `*.pdf` takes `x.pdf` and `deep/down/x.pdf` (but not `.git/x.pdf`, below). A
  leading `/` anchors it at the SOURCE instead: `/x.pdf` is only the top-level one.
- Wildcards never match a leading `.` of a segment; only a pattern that spells the dot
  (`.cache/**`, `**/.*`) matches hidden entries.
- Matching is case-sensitive, as posix paths are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from retab_cli.errors import UsageError

_SEGMENT_START = "(?!\\.)"   # a wildcard may not take a segment's leading dot


@dataclass(frozen=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]
    spells_dot: bool      # some segment starts with a literal `.`

    def matches(self, relpath: str) -> bool:
        return self.regex.fullmatch(relpath) is not None


def compile_glob(pattern: str, option: str = "--include") -> Glob:
    text = pattern.strip("/")
    if not text or "\x00" in text:
        raise UsageError(f"invalid {option} {pattern!r}: expected a pattern such as '*.pdf'")
    anchored = "/" in text or pattern.startswith("/")
    segments = text.split("/") if anchored else ["**", text]
    parts = [_segment(seg, option, pattern) for seg in segments]
    regex = _join(segments, parts)
    return Glob(pattern, re.compile(regex, re.DOTALL), any(seg.startswith(".") for seg in segments))


def compile_globs(patterns: Sequence[str], option: str) -> tuple[Glob, ...]:
    return tuple(compile_glob(p, option) for p in patterns)


def _join(segments: list[str], parts: list[str]) -> str:
    regex = ""
    for i, (seg, part) in enumerate(zip(segments, parts, strict=True)):
        last = i == len(segments) - 1
        if seg == "**":
            # Any number of whole segments (none of them hidden), with their slashes.
            regex += "(?:(?!\\.)[^/]*(?:/|$))*" if last else "(?:(?!\\.)[^/]*/)*"
        else:
            regex += part + ("" if last else "/")
    return regex


def _segment(seg: str, option: str, pattern: str) -> str:
    if seg == "**":
        return ""
    if "**" in seg:
        raise UsageError(f"invalid {option} {pattern!r}: '**' must be a whole path segment")
    out = _SEGMENT_START if seg[:1] in "*?[" else ""
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            cls, i = _char_class(seg, i, option, pattern)
            out += cls
            continue
        else:
            out += re.escape(ch)
        i += 1
    return out


def _char_class(seg: str, start: int, option: str, pattern: str) -> tuple[str, int]:
    end = seg.find("]", start + 2 if seg[start + 1:start + 2] in ("!", "^", "]") else start + 1)
    if end < 0:
        raise UsageError(f"invalid {option} {pattern!r}: unclosed '['")
    body = seg[start + 1:end]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("^", "\\^")
    return ("[^/" if negate else "[") + body + "]", end + 1
