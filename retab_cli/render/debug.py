"""--debug: one request and its response in full, as lines for stderr (curl -v style).

```
debug:   > POST /v1/partitions
debug:   > api-key: sk_...abcd
debug:   > {"document": {"url": "data:application/pdf;base64,<… 51200 bytes of base64 elided>"}, …}
debug:   < HTTP/1.1 200 OK
debug:   < content-type: application/json
debug:   < {"id": "prtn_…", …}
```

They follow the summary line the client writes itself (`debug: POST URL -> 200 (12 ms)`).
What is shown is safe to paste into an issue: the API key is masked wherever it
appears (an echo from the server included), a header whose name says it holds a
credential is masked whatever its value, base64 payloads (inline documents) are elided
with their size, a body is cut at BODY_LIMIT, binary bodies are described, not shown;
the renderer writes each line through the sanitiser, so a server string cannot start
a line of its own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from retab_cli.client import Exchange

BODY_LIMIT = 2048  # characters of a body shown
# Header names that say they carry a credential (Idempotency-Key does not: it is shown
# in re-run commands anyway, and it is what one looks for when debugging a retry).
_SECRET_NAME = re.compile(
    r"auth|token|secret|passw|cookie|session|signature|credential|api[-_]?key|"
    r"access[-_]?key|private[-_]?key", re.IGNORECASE)
_SCHEME = re.compile(r"^(Bearer|Basic|Token|Digest) ", re.IGNORECASE)
# A data URL's payload, or any long run of base64 (a document in a body).
_DATA_URL = re.compile(r"(data:[\w.+/-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,)[A-Za-z0-9+/=\\]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{256,}={0,2}")
_TEXT_TYPES = ("json", "text/", "xml", "x-www-form-urlencoded", "problem")


def exchange_lines(exchange: Exchange) -> list[str]:
    """The lines (without the `debug:` prefix's line break) of one exchange."""
    mask = exchange.mask
    lines = [f"  > {exchange.method} {mask(exchange.target)}"]
    lines += _headers(">", exchange.request_headers, mask)
    lines += _body(">", exchange.request_body, exchange.request_headers, mask)
    if exchange.status is None:
        return [f"debug: {line}" for line in [*lines, "  < no response"]]
    lines.append(f"  < {exchange.http_version} {exchange.status} {mask(exchange.reason)}")
    lines += _headers("<", exchange.response_headers, mask)
    lines += _body("<", exchange.response_body, exchange.response_headers, mask)
    return [f"debug: {line}" for line in lines]


def _headers(arrow: str, headers: Iterable[tuple[str, str]],
             mask: Callable[[str], str]) -> list[str]:
    return [f"  {arrow} {mask(name)}: {_header_value(name, value, mask)}"
            for name, value in headers]


def _header_value(name: str, value: str, mask: Callable[[str], str]) -> str:
    shown = mask(value)
    if not _SECRET_NAME.search(name) or shown != value:
        return shown  # not a credential, or the key in it is masked already
    scheme = _SCHEME.match(value)
    return (scheme.group(0) if scheme else "") + "****"


def _body(arrow: str, body: bytes | None, headers: Iterable[tuple[str, str]],
          mask: Callable[[str], str]) -> list[str]:
    if not body:
        return []
    kind = next((v for k, v in headers if k.lower() == "content-type"), "")
    text = _as_text(body, kind)
    if text is None:
        return [f"  {arrow} <{len(body)} bytes of {mask(kind) or 'binary data'}, not shown>"]
    text = mask(_elide_base64(text))
    if len(text) > BODY_LIMIT:
        text = f"{text[:BODY_LIMIT]}… <cut: {len(body)} bytes in all>"
    return [f"  {arrow} {text}"]


def _as_text(body: bytes, kind: str) -> str | None:
    """The body as text when it is text (by its type, or by decoding as UTF-8 when the
    type says nothing); None for binary."""
    if kind and not any(mark in kind.lower() for mark in _TEXT_TYPES):
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _elide_base64(text: str) -> str:
    def data_url(match: re.Match[str]) -> str:
        size = len(match.group(0)) - len(match.group(1))
        return f"{match.group(1)}<… {size} bytes of base64 elided>"

    def run(match: re.Match[str]) -> str:
        found = match.group(0)
        # Encoded bytes mix cases and digits; a long word or a row of x's does not.
        if not (_has(found, str.isupper) and _has(found, str.islower)
                and _has(found, str.isdigit)):
            return found
        return f"<… {len(found)} bytes of base64 elided>"

    return _BASE64_RUN.sub(run, _DATA_URL.sub(data_url, text))


def _has(text: str, test: Callable[[str], bool]) -> bool:
    return any(test(char) for char in text)
