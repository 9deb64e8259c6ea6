"""The one place a `Client` is built from the settings: checked base URL, key, budget, retries.

Callers differ only in what they pass: `auth login` a key that is not stored yet and
fewer attempts, shell completion no budget and a short deadline. Nothing here imports
httpx until a client is really built, so the `--help` path stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from retab_cli.settings import Settings

if TYPE_CHECKING:
    from retab_cli.client import Client

Log = Callable[[str], None]


def _ignore(_: str) -> None:
    return None


def checked_base_url(settings: Settings, *, warn: Log = _ignore) -> str:
    """The configured base URL, checked: https, or http on loopback only (unless
    RETAB_ALLOW_INSECURE_HTTP=1)."""
    from retab_cli.urls import normalize_base_url

    return normalize_base_url(
        settings.base_url,
        allow_insecure=os.environ.get("RETAB_ALLOW_INSECURE_HTTP") == "1",
        warn=warn,
    )


def open_client(
    settings: Settings,
    *,
    notice: Log = _ignore,
    base_url: str | None = None,
    key: str | None = None,
    rate: float | None = None,
    max_attempts: int | None = None,
    request_timeout: float | None = None,
) -> Client:
    """A client for these settings; each argument left out takes the settings' value or
    the client's default. `notice` gets retry notices, and --debug lines when asked for."""
    from retab_cli.budget import Budget
    from retab_cli.client import MAX_ATTEMPTS, REQUEST_TIMEOUT, Client

    url = base_url or checked_base_url(settings, warn=notice)
    return Client(
        url,
        key or settings.require_key(),
        budget=Budget(settings.max_rps if rate is None else rate),
        notice=notice,
        debug=notice if settings.debug else None,
        request_timeout=request_timeout or REQUEST_TIMEOUT,
        max_attempts=max_attempts or MAX_ATTEMPTS,
    )
