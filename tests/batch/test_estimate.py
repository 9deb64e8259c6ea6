"""The estimate and the --dry-run plan."""

from __future__ import annotations

import pytest

from retab_cli.batch import estimate
from retab_cli.batch.estimate import DONE, DUPLICATE, IN_FLIGHT, SEND, Plan, outcome


@pytest.mark.parametrize(("pages", "n", "model", "credits"), [
    (7, 1, "retab-micro", 1.4),
    (7, 2, "retab-micro", 2.8),
    (3, 1, "retab-small", 3.0),
    (3, 1, None, 3.0),              # no model: the API's default tier
    (2, 4, "retab-large", 24.0),
    (2, 1, "retab-huge", 6.0),      # unknown: priced as the dearest known tier
])
def test_credits(pages: int, n: int, model: str | None, credits: float) -> None:
    assert estimate.credits(pages, n, model) == credits


@pytest.mark.parametrize(("status", "retry", "expected"), [
    (None, False, SEND), ("unsent", False, SEND), ("sending", False, IN_FLIGHT),
    ("queued", False, IN_FLIGHT), ("in_progress", False, IN_FLIGHT),
    ("mystery", False, IN_FLIGHT), ("completed", True, DONE), ("failed", False, DONE),
    ("failed", True, SEND), ("cancelled", True, SEND),
])
def test_outcome(status: str | None, retry: bool, expected: str) -> None:
    assert outcome(status, retry_failed=retry) == expected


def test_the_plan_counts_each_outcome_and_prices_what_is_sent() -> None:
    plan = Plan(model="retab-micro", n_consensus=2)
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    assert plan.add_document(a, 7, None) == SEND
    assert plan.add_document(a, 7, None) == DUPLICATE
    assert plan.add_document(b, 3, "completed") == DONE
    assert plan.add_document(c, 2, "failed", retry_failed=True) == SEND
    assert plan.add_document(c, 2, "failed", retry_failed=True) == DUPLICATE
    plan.add(estimate.LOCAL_ERROR)
    plan.add_document("d" * 64, 5, "queued")
    assert plan.as_dict() == {
        "documents": 7, "duplicates": 2, "done": 1, "in_flight": 1, "local_errors": 1,
        "to_send": 2, "pages": 9, "credits": 3.6, "dollars": 0.036, "model": "retab-micro",
        "tier_known": True}
    assert plan.lines() == [
        "documents: 7", "duplicates (identical bytes and parameters): 2", "already done: 1",
        "in flight (created, to be watched): 1", "unreadable or refused locally: 1",
        "to send: 2", "pages: 9", "estimated credits: 3.6 ($0.04)"]


def test_an_unknown_tier_is_flagged_in_the_plan() -> None:
    plan = Plan(model="retab-xl", n_consensus=1)
    plan.add_document("a" * 64, 10, None)
    assert plan.as_dict()["credits"] == 30.0 and plan.as_dict()["tier_known"] is False
    assert plan.lines()[-2:] == [
        "estimated credits: 30 ($0.30)",
        "note: model 'retab-xl' is not a known tier; priced as retab-large (3 credits a page)"]
