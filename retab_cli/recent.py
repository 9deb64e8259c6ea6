"""A small cache of recently seen partition ids, for shell completion (no network)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retab_cli.settings import Settings

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


NETWORK_BUDGET = 0.4  # seconds: a completion that hangs is worse than none


def complete_ids(incomplete: str) -> list[str]:
    """Ids for shell completion: the cache first; the newest runs from the API on a miss."""
    cached = [i for i in recent() if i.startswith(incomplete)]
    if cached:
        return cached
    return [i for i in _fetch_recent() if i.startswith(incomplete)]


def _fetch_recent() -> list[str]:
    import asyncio

    try:
        # Imports and settings first: the budget covers the network call only, not the
        # ~200 ms of loading httpx on a slow machine (docs/design.md §12).
        from retab_cli import client as _client  # noqa: F401
        from retab_cli.settings import GlobalOptions, resolve

        return asyncio.run(_list_ids(resolve(GlobalOptions())))
    except Exception:  # completion must never fail loudly
        return []


async def _list_ids(settings: Settings) -> list[str]:
    import asyncio

    from retab_cli.connect import open_client

    # No budget and one attempt: the whole call must fit in NETWORK_BUDGET.
    async with open_client(settings, rate=0, max_attempts=1,
                           request_timeout=NETWORK_BUDGET) as client:
        async with asyncio.timeout(NETWORK_BUDGET):
            page = await client.list({"limit": 100})
    ids = [str(item["id"]) for item in page.data["data"] if isinstance(item, dict) and "id" in item]
    remember(ids)
    return ids
