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
    fetch_timeout_s: float = 10.0  # a whole loopback document fetch
    idle_timeout_s: float = 5.0  # a connection without a complete request head
    max_upload: int = 1024**3  # bytes of one uploaded file

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


def parse_duration(text: str, option: str) -> float:
    """Seconds from `50ms`, `1.5s`, `2`: the tool's own duration syntax."""
    from retab_cli.errors import UsageError
    from retab_cli.parsing import parse_duration as parse

    try:
        return parse(text, f"{option} duration")
    except UsageError as exc:
        raise ValueError(exc.message) from None


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str, option: str) -> int:
    """Bytes from `1GiB`, `500MiB`, `20MB`, `1048576`."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)", text.strip())
    unit = match[2].lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ValueError(f"{option} must be a size such as 500MiB, 2GiB or a number of bytes, not {text!r}")
    return int(float(match[1]) * _SIZE_UNITS[unit])


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
