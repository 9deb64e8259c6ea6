"""A small cache of recently seen partition ids, for shell completion (no network)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

KEEP = 200


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "retab" / "recent_ids"


def remember(ids: Iterable[str]) -> None:
    """Put ids first in the cache; failures are ignored (completion is a convenience)."""
    new = [i for i in ids if i]
    if not new:
        return
    path = cache_path()
    try:
        merged = list(dict.fromkeys([*new, *recent()]))[:KEEP]
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(merged) + "\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        pass


def recent() -> list[str]:
    try:
        return cache_path().read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return []


def complete_ids(incomplete: str) -> list[str]:
    return [i for i in recent() if i.startswith(incomplete)]
