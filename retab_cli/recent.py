"""Recently seen partition ids, for shell completion (docs/design.md §12).

One small file per API and profile under $XDG_CACHE_HOME/retab/recent/, so a staging
profile never offers production ids. Only ids that pass the id rule are stored or
offered: a server may name a run anything, and completion types what it offers into a
shell. A 404 or a delete forgets an id. Every failure is ignored: completion is a
convenience, and a command must never fail because of its cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from retab_cli.errors import UsageError
from retab_cli.parsing import validate_id

if TYPE_CHECKING:
    from retab_cli.client import Client
    from retab_cli.settings import Settings

KEEP = 200
# Seconds for the request itself: a completion that hangs is worse than none. A slow link
# can ask for more with RETAB_COMPLETION_TIMEOUT.
NETWORK_BUDGET = 0.4
_LIMIT = KEEP * 130  # bytes: KEEP ids of at most 128 characters, one per line


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "retab"


def cache_path(settings: Settings) -> Path:
    """The file of this profile's ids on this API (the same API however its URL is spelt)."""
    from retab_cli.urls import api_identity

    scope = f"{settings.profile}\n{api_identity(settings.base_url)}"
    return cache_dir() / "recent" / hashlib.sha256(scope.encode()).hexdigest()[:32]


def valid_ids(ids: Iterable[object]) -> list[str]:
    """The ids that pass the id rule, de-duplicated in order; anything else is dropped."""
    kept: dict[str, None] = {}
    for value in ids:
        if not isinstance(value, str):
            continue
        try:
            kept.setdefault(validate_id(value), None)
        except UsageError:
            continue
    return list(kept)


def recent(settings: Settings) -> list[str]:
    try:
        with cache_path(settings).open("rb") as fh:
            data = fh.read(_LIMIT)
    except OSError:
        return []
    return valid_ids(data.decode("ascii", errors="replace").split())[:KEEP]


def remember(ids: Iterable[object], settings: Settings) -> None:
    """Put these ids first."""
    new = valid_ids(ids)
    if new:
        _write(settings, valid_ids([*new, *recent(settings)])[:KEEP])


def forget(ids: Iterable[str], settings: Settings) -> None:
    """Stop offering these ids (a 404 said they are not there, or they were deleted)."""
    gone = set(ids)
    known = recent(settings)
    if gone.intersection(known):
        _write(settings, [i for i in known if i not in gone])


def _write(settings: Settings, ids: list[str]) -> None:
    path = cache_path(settings)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ids-", dir=path.parent)  # one per writer
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write("".join(f"{i}\n" for i in ids))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


# ---- completion ------------------------------------------------------------------------------


def complete_ids(settings: Settings, incomplete: str) -> list[str]:
    """Ids for shell completion: the cache first; the newest runs from the API on a miss."""
    cached = [i for i in recent(settings) if i.startswith(incomplete)]
    if cached:
        return cached
    return [i for i in fetch_recent(settings) if i.startswith(incomplete)]


def fetch_recent(settings: Settings) -> list[str]:
    """The newest ids from the API, remembered. The budget bounds the request only:
    the client is imported and built before the clock starts (that takes 200-300 ms on a
    slow machine, which would otherwise leave nothing for the request)."""
    import asyncio

    budget = network_budget()
    try:
        from retab_cli.connect import open_client

        # No budget and one attempt: the request must fit in the time allowed.
        client = open_client(settings, rate=0, max_attempts=1, request_timeout=budget)
        return asyncio.run(_list_ids(client, settings, budget))
    except Exception:  # completion must never fail loudly
        return []


def network_budget() -> float:
    try:
        value = float(os.environ.get("RETAB_COMPLETION_TIMEOUT", ""))
    except ValueError:
        return NETWORK_BUDGET
    return value if 0 < value <= 60 else NETWORK_BUDGET


async def _list_ids(client: Client, settings: Settings, budget: float) -> list[str]:
    import asyncio

    async with client:
        page = await asyncio.wait_for(client.list({"limit": 100}), budget)
    items = page.data.get("data") if isinstance(page.data, dict) else None
    ids = valid_ids(item.get("id") for item in items or [] if isinstance(item, dict))
    remember(ids, settings)
    return ids
