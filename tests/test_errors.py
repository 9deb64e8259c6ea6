"""The one error table: severities, HTTP statuses, run statuses, JSON shape, hints."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from retab_cli import errors
from retab_cli.errors import (
    EXIT_CODE_TABLE,
    AuthError,
    BadResponseError,
    ConflictError,
    InterruptError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    RetabError,
    RunCancelledError,
    RunFailedError,
    ServerError,
    TimeoutExpiredError,
    UsageError,
    exit_for_status,
    for_status,
    hint_for,
    worst,
)

SEVERITY = [4, 2, 1, 6, 3, 5, 8, 0]

# ---- worst() ------------------------------------------------------------------------


def test_worst_of_nothing_is_success() -> None:
    assert worst([]) == 0


@pytest.mark.parametrize(("higher", "lower"), list(itertools.combinations(SEVERITY, 2)))
def test_worst_follows_the_documented_order(higher: int, lower: int) -> None:
    assert worst([lower, higher]) == higher
    assert worst([higher, lower]) == higher
    assert worst([lower, lower, higher, lower]) == higher


@pytest.mark.parametrize("interrupt", [130, 143])
@pytest.mark.parametrize("other", SEVERITY)
def test_interrupts_override_everything(interrupt: int, other: int) -> None:
    assert worst([other, interrupt, other]) == interrupt


def test_sigterm_outranks_sigint() -> None:
    assert worst([130, 143]) == 143


def test_unknown_codes_rank_as_plain_errors() -> None:
    assert worst([0, 99]) == 99
    assert worst([99, 6]) == 99
    assert worst([99, 4]) == 4


def test_worst_consumes_a_generator() -> None:
    assert worst(code for code in (0, 8, 3, 5)) == 3


def test_the_first_of_equally_severe_codes_wins() -> None:
    assert worst([1, 42]) == 1
    assert worst([42, 1]) == 42


def test_the_base_error() -> None:
    error = RetabError("boom")
    assert (str(error), error.message, error.type, error.exit_code) == ("boom", "boom", "server", 1)
    assert error.to_json()["error"]["type"] == "server"
    assert repr(RejectedError("bad", status=422)) == "RejectedError('bad', status=422)"


def test_an_exit_code_given_overrides_the_class() -> None:
    assert InterruptError("stop", exit_code=143).exit_code == 143
    assert InterruptError("stop").exit_code == 130
    assert NetworkError("x").exit_code == 1


# What `retab --help` and the README print (docs/exit-codes.md): word for word.
PRINTED_EXIT_CODES = (
    (0, "success; watch, create --wait, get --exit-status: every run completed"),
    (1, "the API or network failed after retries, a 409, or an unusable response"),
    (2, "bad input: refused locally, or rejected by the server (400, 413, 422)"),
    (3, "a run ended failed"),
    (4, "authentication: no key configured, 401, 403"),
    (5, "a run ended cancelled (not when you asked to cancel it)"),
    (6, "not found: a 404 for an id you asked for"),
    (7, "incomplete: a batch stopped early (a limit); running it again resumes"),
    (8, "still running: --timeout expired, or get --exit-status saw an active run"),
    (130, "interrupted by Ctrl-C (SIGINT); 143 for SIGTERM"),
)


def test_the_exit_code_table_word_for_word() -> None:
    assert EXIT_CODE_TABLE == PRINTED_EXIT_CODES


# ---- for_status / exit codes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "type_", "code"),
    [
        (400, RejectedError, "rejected", 2),
        (401, AuthError, "auth", 4),
        (403, AuthError, "auth", 4),
        (404, NotFoundError, "not_found", 6),
        (409, ConflictError, "conflict", 1),
        (413, RejectedError, "rejected", 2),
        (422, RejectedError, "rejected", 2),
        (429, RateLimitedError, "rate_limited", 1),
        (500, ServerError, "server", 1),
        (502, ServerError, "server", 1),
        (503, ServerError, "server", 1),
        (504, ServerError, "server", 1),
        (408, ServerError, "server", 1),
        (418, ServerError, "server", 1),
    ],
)
def test_for_status(status: int, cls: type[RetabError], type_: str, code: int) -> None:
    found = for_status(status)
    assert found is cls
    error = found("boom", status=status)
    assert error.type == type_
    assert error.exit_code == code


@pytest.mark.parametrize(
    ("cls", "type_", "code"),
    [
        (UsageError, "usage", 2),
        (AuthError, "auth", 4),
        (NotFoundError, "not_found", 6),
        (RejectedError, "rejected", 2),
        (ConflictError, "conflict", 1),
        (RateLimitedError, "rate_limited", 1),
        (NetworkError, "network", 1),
        (OutcomeUnknownError, "network", 1),
        (ServerError, "server", 1),
        (BadResponseError, "bad_response", 1),
        (RunFailedError, "run_failed", 3),
        (RunCancelledError, "run_cancelled", 5),
        (TimeoutExpiredError, "timeout", 8),
        (InterruptError, "interrupted", 130),
    ],
)
def test_every_error_type_has_its_exit_code(cls: type[RetabError], type_: str, code: int) -> None:
    assert cls.type == type_
    assert cls("x").exit_code == code


def test_the_error_types_are_those_of_the_design() -> None:
    documented = {"usage", "auth", "not_found", "rejected", "conflict", "rate_limited", "network",
                  "server", "bad_response", "run_failed", "run_cancelled", "timeout",
                  "interrupted"}

    def subclasses(cls: type[RetabError]) -> set[type[RetabError]]:
        direct = set(cls.__subclasses__())
        return direct.union(*(subclasses(c) for c in direct))

    assert {cls.type for cls in subclasses(RetabError)} == documented


def test_exit_code_can_be_overridden_per_instance() -> None:
    error = InterruptError("stopped", exit_code=143)
    assert error.exit_code == 143
    assert InterruptError("stopped").exit_code == 130
    assert error.to_json()["error"]["exit_code"] == 143


@pytest.mark.parametrize(
    ("status", "code"),
    [("completed", 0), ("failed", 3), ("cancelled", 5), ("queued", 8), ("pending", 8),
     ("in_progress", 8), ("some_future_status", 8), ("", 8)],
)
def test_exit_for_status(status: str, code: int) -> None:
    assert exit_for_status(status) == code


# ---- to_json / repr ----------------------------------------------------------------------


def test_to_json_has_exactly_the_documented_keys() -> None:
    error = NotFoundError("Partition not found", status=404, request_id="req_1",
                          partition_id="prtn_1", file="a.pdf", hint="look elsewhere")
    assert error.to_json() == {
        "error": {
            "type": "not_found",
            "message": "Partition not found",
            "status": 404,
            "request_id": "req_1",
            "partition_id": "prtn_1",
            "file": "a.pdf",
            "exit_code": 6,
        }
    }


def test_to_json_defaults_are_null() -> None:
    assert UsageError("bad").to_json() == {"error": {
        "type": "usage", "message": "bad", "status": None, "request_id": None,
        "partition_id": None, "file": None, "exit_code": 2}}


def test_error_is_an_exception_with_its_message() -> None:
    error = ServerError("the server failed", status=502)
    assert str(error) == "the server failed"
    assert repr(error) == "ServerError('the server failed', status=502)"
    assert isinstance(OutcomeUnknownError("x"), NetworkError)


# ---- hint_for ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (UsageError("x", hint="do this"), "do this"),
        (ServerError("x", hint="given wins"), "given wins"),
        (AuthError("no API key configured"), "run 'retab auth login' or set RETAB_API_KEY"),
        (AuthError("bad key", status=401), "check the key with 'retab auth status'"),
        (AuthError("forbidden", status=403), "check the key with 'retab auth status'"),
        (NotFoundError("gone", status=404, partition_id="prtn_1"),
         "run 'retab partitions list' to see the partitions this key can access"),
        (NetworkError("down"), "try again later; add --debug to see each request"),
        (OutcomeUnknownError("unknown"), "try again later; add --debug to see each request"),
        (ServerError("500", status=500), "try again later; add --debug to see each request"),
        (RateLimitedError("429", status=429), "try again later; add --debug to see each request"),
        (BadResponseError("html"), "add --debug to see the response; check --base-url"),
    ],
)
def test_hint_for(error: RetabError, hint: str) -> None:
    assert hint_for(error) == hint


@pytest.mark.parametrize(
    "error",
    [UsageError("x"), NotFoundError("gone", status=404), RejectedError("no", status=422),
     ConflictError("409", status=409), RunFailedError("failed"), RunCancelledError("cancelled"),
     TimeoutExpiredError("slow"), InterruptError("stop")],
)
def test_no_hint_when_there_is_nothing_to_add(error: RetabError) -> None:
    assert hint_for(error) is None


# ---- EXIT_CODE_TABLE vs docs/design.md §3 ----------------------------------------------

# docs/design.md §3: code -> words its meaning must carry.
DESIGN_EXIT_CODES = {
    0: ["success", "completed"],
    1: ["409", "unusable response"],
    2: ["bad input", "400", "413", "422"],
    3: ["failed"],
    4: ["authentication", "401", "403"],
    5: ["cancelled"],
    6: ["not found", "404"],
    7: ["incomplete", "batch", "resumes"],
    8: ["still running", "--timeout"],
    130: ["SIGINT", "143", "SIGTERM"],
}


def test_exit_code_table_matches_the_design() -> None:
    codes = [code for code, _ in EXIT_CODE_TABLE]
    assert codes == sorted(DESIGN_EXIT_CODES)
    for code, text in EXIT_CODE_TABLE:
        for word in DESIGN_EXIT_CODES[code]:
            assert word in text, (code, word, text)


def test_exit_code_constants_match_the_table() -> None:
    assert (errors.OK, errors.ERROR, errors.USAGE, errors.RUN_FAILED, errors.AUTH,
            errors.RUN_CANCELLED, errors.NOT_FOUND, errors.INCOMPLETE, errors.STILL_RUNNING,
            errors.SIGINT, errors.SIGTERM) == (0, 1, 2, 3, 4, 5, 6, 7, 8, 130, 143)


def test_exit_code_table_matches_the_design_in_the_repository() -> None:
    design = Path(__file__).resolve().parents[1] / "docs" / "design.md"
    section = design.read_text().split("## 3. Exit codes", 1)[1].split("\n## ", 1)[0]
    documented: set[int] = set()
    for cell in re.findall(r"^\| ([0-9 /]+) \|", section, flags=re.M):
        documented.update(int(code) for code in cell.split("/"))
    assert documented == {code for code, _ in EXIT_CODE_TABLE} | {143}
