"""`--debug`: each attempt's whole exchange as lines for stderr, as Retab's Go CLI shows it.

A summary line (method, URL, status, time, request id), then `> ` lines for the request
(headers, body) and `< ` lines for the response (headers, body). Bodies are cut at
BODY_LIMIT characters, and the base64 of an inline document is left out with its size
(a 30 MiB document would flood the terminal and say nothing). Secret headers show a
masked value; the client masks its API key wherever else it appears, and the renderer
writes every line as one line (a server's line breaks escaped).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from retab_cli.client import mask_key  # loaded already: only the client calls this module

BODY_LIMIT = 2048  # characters of a body shown
# Header names that say they carry a credential: `Authorization`, `Api-Key`, cookies, and
# any `*-Token`, `*-Secret`, `*-Session`, `*-Signature`... a server or proxy may add.
# (Not Idempotency-Key: re-run commands print it, and it is what one looks for in a retry.)
SECRET_NAME = re.compile(r"auth|token|secret|passw|cookie|session|signature|credential|"
                         r"api[-_]?key|access[-_]?key|private[-_]?key")
# The payload of a data: URL, when long enough to be a document rather than a word.
_DATA_URL = re.compile(r"(data:[^,\"\s]{0,100},)([A-Za-z0-9+/=%._~-]{64,})")


@dataclass(frozen=True)
class Exchange:
    """One attempt's details: what was sent and what came back (nothing: no response)."""

    request_headers: Iterable[tuple[str, str]]
    request_body: bytes | None
    response_headers: Iterable[tuple[str, str]] = ()
    response_body: bytes | None = None


def exchange_lines(summary: str, exchange: Exchange,
                   mask: Callable[[str], str] = str) -> Iterator[str]:
    """The summary line (`debug: GET URL -> 200 (12 ms)`), then the details, indented.
    `mask` hides the key in a body before it is cut (a copy cut in two is no longer a
    copy a mask of the line would find)."""
    yield summary
    yield from _headers(">", exchange.request_headers)
    if exchange.request_body:
        yield f"debug:   > {show_body(exchange.request_body, mask)}"
    yield from _headers("<", exchange.response_headers)
    if exchange.response_body:
        yield f"debug:   < {show_body(exchange.response_body, mask)}"


def _headers(arrow: str, headers: Iterable[tuple[str, str]]) -> Iterator[str]:
    for name, value in headers:
        lowered = name.lower()
        shown = masked_header(value) if SECRET_NAME.search(lowered) else value
        yield f"debug:   {arrow} {lowered}: {shown}"


def masked_header(value: str) -> str:
    """A secret header's value: its scheme word kept (`Bearer`), the rest masked."""
    scheme, _, token = value.partition(" ")
    if not token:
        scheme, token = "", scheme
    shown = mask_key(token)  # as the key is shown everywhere else
    return f"{scheme} {shown}" if scheme else shown


def show_body(body: bytes, mask: Callable[[str], str] = str) -> str:
    """A body as text: the key masked, a document's base64 left out, then cut at
    BODY_LIMIT characters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(body)} bytes, not text)"
    text = mask(_DATA_URL.sub(lambda m: f"{m.group(1)}<{len(m.group(2))} characters left out>",
                              text))
    if len(text) > BODY_LIMIT:
        return f"{text[:BODY_LIMIT]}… ({len(body)} bytes in all)"
    return text
