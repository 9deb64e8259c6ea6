"""Exception types, exit codes, error types, messages and hints: the one error table.

Every failure the tool reports is a `RetabError`. It carries the exit code, the
machine-readable `type` of the JSON error object, and what the user should run next.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

OK = 0
ERROR = 1
USAGE = 2
RUN_FAILED = 3
AUTH = 4
RUN_CANCELLED = 5
NOT_FOUND = 6
INCOMPLETE = 7
STILL_RUNNING = 8
SIGINT = 130
SIGTERM = 143

# With several ids the most severe outcome wins (docs/design.md §3). Input refused by the
# server (2) ranks beside auth: both mean "fix your invocation", which outranks a
# flaky network. Interrupts override everything.
_SEVERITY = (SIGTERM, SIGINT, AUTH, USAGE, ERROR, NOT_FOUND, RUN_FAILED, RUN_CANCELLED,
             STILL_RUNNING, INCOMPLETE, OK)

EXIT_CODE_TABLE = (
    (OK, "success; watch, create --wait, get --exit-status: every run completed"),
    (ERROR, "the API or network failed after retries, a 409, or an unusable response"),
    (USAGE, "bad input: refused locally, or rejected by the server (400, 413, 422)"),
    (RUN_FAILED, "a run ended failed"),
    (AUTH, "authentication: no key configured, 401, 403"),
    (RUN_CANCELLED, "a run ended cancelled (not when you asked to cancel it)"),
    (NOT_FOUND, "not found: a 404 for an id you asked for"),
    (INCOMPLETE, "incomplete: a batch stopped early (a limit); running it again resumes"),
    (STILL_RUNNING, "still running: --timeout expired, or get --exit-status saw an active run"),
    (SIGINT, "interrupted by Ctrl-C (SIGINT); 143 for SIGTERM"),
)


def worst(codes: Iterable[int]) -> int:
    """The most severe of several outcomes (unknown codes rank as plain errors)."""
    rank = {code: i for i, code in enumerate(_SEVERITY)}
    best = OK
    for code in codes:
        if rank.get(code, rank[ERROR]) < rank.get(best, rank[ERROR]):
            best = code
    return best


class RetabError(Exception):
    """A failure to report: one line, an exit code, and a hint of what to run next."""

    type: ClassVar[str] = "server"
    exit_code: ClassVar[int] = ERROR

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        partition_id: str | None = None,
        file: str | None = None,
        hint: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.partition_id = partition_id
        self.file = file
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code  # type: ignore[misc]

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "type": self.type,
                "message": self.message,
                "status": self.status,
                "request_id": self.request_id,
                "partition_id": self.partition_id,
                "file": self.file,
                "exit_code": self.exit_code,
            }
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class UsageError(RetabError):
    type = "usage"
    exit_code = USAGE


class AuthError(RetabError):
    type = "auth"
    exit_code = AUTH


class NotFoundError(RetabError):
    type = "not_found"
    exit_code = NOT_FOUND


class RejectedError(RetabError):
    """The server refused the input (400, 413, 422)."""

    type = "rejected"
    exit_code = USAGE


class ConflictError(RetabError):
    type = "conflict"
    exit_code = ERROR


class RateLimitedError(RetabError):
    type = "rate_limited"
    exit_code = ERROR


class NetworkError(RetabError):
    type = "network"
    exit_code = ERROR


class ServerError(RetabError):
    type = "server"
    exit_code = ERROR


class BadResponseError(RetabError):
    type = "bad_response"
    exit_code = ERROR


# The run outcomes of the error-type table (docs/design.md §2), kept with the others so the
# vocabulary and its exit codes live in one place.
class RunFailedError(RetabError):
    type = "run_failed"
    exit_code = RUN_FAILED


class RunCancelledError(RetabError):
    type = "run_cancelled"
    exit_code = RUN_CANCELLED


class TimeoutExpiredError(RetabError):
    type = "timeout"
    exit_code = STILL_RUNNING


class InterruptError(RetabError):
    type = "interrupted"
    exit_code = SIGINT


class OutcomeUnknownError(NetworkError):
    """A mutating request whose outcome we cannot know (it may have taken effect)."""


def for_status(status: int) -> type[RetabError]:
    """The error class for an HTTP status the client does not retry (or gave up on)."""
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status in (400, 413, 422):
        return RejectedError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitedError
    return ServerError


def hint_for(error: RetabError) -> str | None:
    """What to run next, when the error does not already say."""
    if error.hint:
        return error.hint
    if isinstance(error, AuthError):
        if error.status is None:
            return "run 'retab auth login' or set RETAB_API_KEY"
        return "check the key with 'retab auth status'"
    if isinstance(error, NotFoundError) and error.partition_id:
        return "run 'retab partitions list' to see the partitions this key can access"
    if isinstance(error, NetworkError | ServerError | RateLimitedError):
        return "try again later; add --debug to see each request"
    if isinstance(error, BadResponseError):
        return "add --debug to see the response; check --base-url"
    return None


def exit_for_status(status: str) -> int:
    """A run's status as an exit code: the mapping watch and get --exit-status share."""
    return {"completed": OK, "failed": RUN_FAILED, "cancelled": RUN_CANCELLED}.get(
        status, STILL_RUNNING
    )
