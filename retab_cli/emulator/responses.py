"""JSON answers: plain, structured errors, and 422s safe to send whatever the request held.

FastAPI's own handler echoes each error's `input` whole (a 200 MB body came back
in full) and fails with a 500 on values JSON cannot carry (`1e400` and `NaN` parse
to non-finite floats; a lone surrogate escape parses to a string UTF-8 cannot
encode). Here the echo is made JSON-safe and cut to a few hundred bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from retab_cli.emulator.middleware import structured

ECHO_CAP = 256  # bytes of JSON an echoed input may take
_STRING_KEEP = 100  # characters kept of a longer string


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(content).encode(), status, headers, media_type="application/json")


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    return json_response({"detail": structured(code, message, details)}, status)


def plain_error(status: int, message: str) -> Response:
    """`{"detail": "Partition not found"}`: the plain shape."""
    return json_response({"detail": message}, status)


async def validation_failed(request: Request, exc: Exception) -> Response:
    """The exception handler for RequestValidationError."""
    assert isinstance(exc, RequestValidationError)
    return json_response({"detail": [_safe_error(error) for error in exc.errors()]}, 422)


def value_error(loc: Sequence[str | int], message: str, value: Any) -> RequestValidationError:
    """A 422 for one field, shaped as pydantic's own `value_error`."""
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": tuple(loc),
                "msg": f"Value error, {message}",
                "input": value,
                "ctx": {"error": message},
            }
        ]
    )


def _safe_error(error: Any) -> dict[str, Any]:
    safe = {
        "type": str(error.get("type", "")),
        "loc": [part if isinstance(part, int) else _text(str(part)) for part in error.get("loc", ())],
        "msg": _text(str(error.get("msg", ""))),
        "input": echo(error.get("input")),
    }
    if "ctx" in error:
        safe["ctx"] = {str(k): _plain(v) for k, v in error["ctx"].items()}
    return safe


def echo(value: Any) -> Any:
    """`value` as JSON can carry it, or a short stand-in when it is big."""
    plain = _plain(value)
    size = len(json.dumps(plain))
    if size <= ECHO_CAP:
        return plain
    if isinstance(plain, str):
        return plain[:_STRING_KEEP] + f"...(+{len(plain) - _STRING_KEEP} chars)"
    kind = "object" if isinstance(plain, dict) else "array" if isinstance(plain, list) else "value"
    return f"<{kind} of {size} bytes, not echoed>"


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats and unencodable strings become readable strings."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        # json.dumps spells these Infinity and NaN, as the client probably did.
        return value if math.isfinite(value) else json.dumps(value)
    if isinstance(value, dict):
        return {_text(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _text(str(value))


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
