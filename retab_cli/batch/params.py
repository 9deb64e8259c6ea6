"""The create parameters a batch sends with every document, and their canonical hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Params:
    """Everything in a create body except the document (and `background`, always on).

    `model=None` means the field is omitted and the API's default tier applies.
    """

    key: str
    instructions: str = ""
    model: str | None = None
    n_consensus: int = 1
    allow_overlap: bool = True
    bust_cache: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def canonical(self) -> str:
        """Sorted keys, no spaces, ASCII: the same parameters give the same text."""
        return canonical_json(self.as_dict())

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`name: X there, Y here` for each parameter that differs, in name order."""
    names = sorted(set(old) | set(new))
    return [f"{name}: {json.dumps(old.get(name))} there, {json.dumps(new.get(name))} here"
            for name in names if old.get(name) != new.get(name)]
