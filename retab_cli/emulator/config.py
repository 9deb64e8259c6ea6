"""The emulator's settings and the parsers for its option values (stdlib only)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from retab_cli.emulator import DEFAULT_API_KEY

KEYS_ENV = "RETAB_EMULATOR_API_KEYS"


@dataclass(frozen=True)
class RateLimit:
    requests: int
    period_s: float


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 0
    db: str = ":memory:"
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    speed: float = 1.0
    rate_limit: RateLimit | None = None
    error_rate: float = 0.0
    error_status: int = 503
    seed: int | None = None
    latency_s: float = 0.0
    control: bool = False

    @property
    def primary_key(self) -> str:
        return self.api_keys[0]

    @property
    def uses_default_key(self) -> bool:
        return self.api_keys == (DEFAULT_API_KEY,)


def resolve_keys(options: list[str] | None) -> tuple[str, ...]:
    """`--api-key` values, else `RETAB_EMULATOR_API_KEYS`, else the development key."""
    keys = [k.strip() for k in options or [] if k.strip()]
    if not keys:
        keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    for key in keys:
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise ValueError("an API key contains whitespace or control characters")
    return tuple(dict.fromkeys(keys)) or (DEFAULT_API_KEY,)


def parse_rate_limit(text: str) -> RateLimit:
    """`N/S`: N requests per S seconds (`5/1`, `300/60`)."""
    match = re.fullmatch(r"(\d+)/(\d+(?:\.\d+)?)", text.strip())
    if not match or int(match[1]) < 1 or float(match[2]) <= 0:
        raise ValueError(f"rate limit must look like N/S, e.g. 5/1 or 300/60, not {text!r}")
    return RateLimit(requests=int(match[1]), period_s=float(match[2]))


def parse_duration(text: str) -> float:
    """Seconds from `50ms`, `1.5s`, `2`: the tool's own duration syntax."""
    from retab_cli.errors import UsageError
    from retab_cli.parsing import parse_duration as parse

    try:
        return parse(text, "--latency duration")
    except UsageError as exc:
        raise ValueError(exc.message) from None


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
