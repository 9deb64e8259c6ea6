"""The cost estimate and the `--dry-run` plan: pages x n_consensus x tier, in credits.

Pricing (CONTRACT.md): credits per page = n_consensus x the tier's multiplier (micro
0.2, small 1.0, large 3.0), 1 credit = $0.01. No model given means the API's default,
`retab-small`. A tier this table does not know is priced as the dearest known one
(`retab-large`, 3.0) and flagged, so `--max-credits` never stops late on a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from retab_cli.batch.hashing import LocalError, hash_document
from retab_cli.batch.journal import RETRYABLE, UNSENT, Journal
from retab_cli.batch.params import Params
from retab_cli.batch.shard import WHOLE, Shard
from retab_cli.batch.sources import Source
from retab_cli.text import format_number

TIER_MULTIPLIERS = {"retab-micro": 0.2, "retab-small": 1.0, "retab-large": 3.0}
DEFAULT_MODEL = "retab-small"
UNKNOWN_TIER_MULTIPLIER = max(TIER_MULTIPLIERS.values())
DOLLARS_PER_CREDIT = 0.01


def multiplier(model: str | None) -> float:
    return TIER_MULTIPLIERS.get(model or DEFAULT_MODEL, UNKNOWN_TIER_MULTIPLIER)


def known_tier(model: str | None) -> bool:
    return (model or DEFAULT_MODEL) in TIER_MULTIPLIERS


def credits(pages: int, n_consensus: int, model: str | None) -> float:
    # Rounded so 7 x 0.2 reads 1.4, not 1.4000000000000001 (as the service rounds).
    return round(pages * n_consensus * multiplier(model), 6)


def dollars(amount: float) -> float:
    return round(amount * DOLLARS_PER_CREDIT, 6)


# How a document counts in the plan (what the batch would do with it).
SEND, DUPLICATE, DONE, IN_FLIGHT, LOCAL_ERROR = "send", "duplicate", "done", "in_flight", \
    "local_error"


def outcome(run_status: str | None, *, retry_failed: bool) -> str:
    """What a batch does with bytes whose journaled run has this status (None: no run)."""
    if run_status is None or run_status == UNSENT:
        return SEND
    if run_status == "completed":
        return DONE
    if run_status in RETRYABLE:
        return SEND if retry_failed else DONE
    return IN_FLIGHT  # sending, pending, queued, in_progress, or a status not known yet


@dataclass
class Plan:
    """What a batch would do: counts per outcome and the cost of what it would send.

    `pages`, `credits` and `dollars` cover the documents to send only: duplicates share
    their twin's run, done and in-flight documents are already paid for.
    """

    model: str | None
    n_consensus: int
    documents: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        (SEND, DUPLICATE, DONE, IN_FLIGHT, LOCAL_ERROR), 0))
    pages: int = 0
    # 64-bit prefixes of the sha256 of documents to send: bytes seen again are duplicates.
    _sending: set[int] = field(default_factory=set, repr=False)

    def add(self, kind: str, pages: int = 0) -> None:
        self.documents += 1
        self.counts[kind] += 1
        if kind == SEND:
            self.pages += pages

    def add_document(self, sha256: str, pages: int, run_status: str | None, *,
                     retry_failed: bool = False) -> str:
        """Count one readable document; returns how it was counted."""
        kind = outcome(run_status, retry_failed=retry_failed)
        if kind == SEND:
            prefix = int(sha256[:16], 16)
            if prefix in self._sending:
                kind = DUPLICATE
            self._sending.add(prefix)
        self.add(kind, pages)
        return kind

    @property
    def credits(self) -> float:
        return credits(self.pages, self.n_consensus, self.model)

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "duplicates": self.counts[DUPLICATE],
            "done": self.counts[DONE],
            "in_flight": self.counts[IN_FLIGHT],
            "local_errors": self.counts[LOCAL_ERROR],
            "to_send": self.counts[SEND],
            "pages": self.pages,
            "credits": self.credits,
            "dollars": dollars(self.credits),
            "model": self.model or DEFAULT_MODEL,
            "tier_known": known_tier(self.model),
        }

    def lines(self) -> list[str]:
        """The plan as plain lines for stderr."""
        plan = self.as_dict()
        lines = [f"documents: {plan['documents']}",
                 f"duplicates (identical bytes and parameters): {plan['duplicates']}",
                 f"already done: {plan['done']}",
                 f"in flight (created, to be watched): {plan['in_flight']}",
                 f"unreadable or refused locally: {plan['local_errors']}",
                 f"to send: {plan['to_send']}",
                 f"pages: {plan['pages']}",
                 f"estimated credits: {format_number(plan['credits'])} "
                 f"(${plan['dollars']:.2f})"]
        if not plan["tier_known"]:
            lines.append(f"note: model {plan['model']!r} is not a known tier; priced as "
                         f"retab-large ({format_number(UNKNOWN_TIER_MULTIPLIER)} credits a page)")
        return lines


def build_plan(items: Iterable[Source], params: Params, journal: Journal | None, *,
               shard: Shard = WHOLE, retry_failed: bool = False) -> Plan:
    """The `--dry-run` plan: read and count every document of this shard, look each one's
    bytes up in the journal (None: no journal yet), send nothing, write nothing."""
    if journal is not None:
        journal.check_match(params, shard)
    plan = Plan(model=params.model, n_consensus=params.n_consensus)
    for item in items:
        if not shard.takes(item.relpath):
            continue
        digest = item.error or hash_document(item.path, item.relpath)
        if isinstance(digest, LocalError):
            plan.add(LOCAL_ERROR)
            continue
        status = journal.latest_run_status(digest.sha256) if journal else None
        plan.add_document(digest.sha256, digest.pages, status, retry_failed=retry_failed)
    return plan
