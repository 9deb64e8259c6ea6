"""URL rules shared by settings, the client and the emulator (no HTTP library needed)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable

from retab_cli.errors import UsageError


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1, parsed as addresses: `127.0.0.1.evil.com` is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ignore(_: str) -> None:
    return None


def normalize_base_url(url: str, *, allow_insecure: bool = False,
                       warn: Callable[[str], None] = _ignore) -> str:
    """Check a base URL against the rules of docs/design.md §5 and return it without a trailing /."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid base URL {url!r}: expected https://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        raise UsageError("invalid base URL: credentials in the URL are not allowed")
    if parts.query or parts.fragment:
        raise UsageError("invalid base URL: a query or fragment is not allowed")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"invalid base URL {url!r}: bad port") from None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        if not allow_insecure:
            raise UsageError(
                f"refusing plain http:// to {parts.hostname}: the API key would travel "
                "unencrypted",
                hint="use https://, or set RETAB_ALLOW_INSECURE_HTTP=1 if you must",
            )
        warn(f"warning: sending the API key over plain http to {parts.hostname}")
    path = _without_v1(parts.path)
    if path != parts.path.rstrip("/"):
        warn("warning: the base URL should not include /v1; using it without")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _without_v1(path: str) -> str:
    """The version belongs to each request path, not to the base URL."""
    path = path.rstrip("/")
    return path[: -len("/v1")] if path.endswith("/v1") else path


def api_identity(url: str) -> str:
    """A base URL reduced to what identifies the API: the case of scheme and host, a
    trailing '/' and '/v1' do not make another server."""
    scheme, sep, rest = url.strip().partition("://")
    host, _, path = rest.partition("/")
    path = _without_v1("/" + path)
    return f"{scheme.lower()}{sep}{host.lower()}{path}"
