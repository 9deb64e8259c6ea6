"""Pydantic models of the API objects, for the table views.

The JSON output never goes through these: it writes the decoded dict as received
(`Partition.raw`), so unknown fields pass through and `3` never becomes `3.0`.
Models are lenient: unknown fields are kept, unknown status values are plain strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from retab_cli.errors import BadResponseError
from retab_cli.parsing import parse_time as parse_time
from retab_cli.statuses import ACTIVE as ACTIVE
from retab_cli.statuses import KNOWN_STATUSES as KNOWN_STATUSES
from retab_cli.statuses import TERMINAL as TERMINAL


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FileRef(_Lenient):
    id: str = ""
    filename: str = ""
    mime_type: str = ""


class PartitionChunk(_Lenient):
    key: str
    pages: list[int] = Field(default_factory=list)


class PartitionChunkLikelihood(_Lenient):
    key: float | None = None
    pages: list[float] = Field(default_factory=list)


class PartitionConsensus(_Lenient):
    choices: list[list[PartitionChunk]] = Field(default_factory=list)
    likelihoods: list[PartitionChunkLikelihood] = Field(default_factory=list)


class PrimitiveError(_Lenient):
    code: str = ""
    message: str = ""
    details: dict[str, Any] | None = None


class RetabUsage(_Lenient):
    credits: float


class Partition(_Lenient):
    id: str
    file: FileRef = Field(default_factory=FileRef)
    model: str = ""
    key: str = ""
    instructions: str | None = None
    n_consensus: int = 1
    allow_overlap: bool = True
    output: list[PartitionChunk] = Field(default_factory=list)
    status: str = "pending"
    error: PrimitiveError | None = None
    consensus: PartitionConsensus | None = None
    usage: RetabUsage | None = None
    created_at: str | None = None

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Any) -> Partition:
        """Validate a decoded API object, keeping the dict itself beside the model."""
        if not isinstance(raw, dict):
            raise BadResponseError("unusable response: expected a partition object")
        try:
            model = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadResponseError(
                f"unusable response: partition field {where!r}: {first['msg']}"
            ) from None
        model._raw = raw
        return model

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def credits(self) -> float | None:
        return self.usage.credits if self.usage else None
