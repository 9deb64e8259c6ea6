"""Pydantic models named and shaped as in Retab's published spec.

FastAPI builds `/openapi.json` from these, so field names, defaults and required
sets follow `partitions.openapi.json`. Rules the spec does not express as schema
(known model tiers, the n_consensus range) are validators, which raise the same
error types a schema constraint would, without changing the published schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from retab_cli.emulator.partitioner import TIER_MULTIPLIERS

Status = Literal["pending", "queued", "in_progress", "completed", "failed", "cancelled"]

MAX_CONSENSUS = 8


def _encodable(value: str) -> str:
    # JSON can spell a lone surrogate (`"\\ud800"`); UTF-8, SQLite and every reader
    # downstream cannot, so it is refused here rather than failing later with a 500.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "string_unicode", "Input should be a valid string, unable to parse raw data as a unicode string"
        ) from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class MIMEData(BaseModel):
    """A file represented by its `filename` and a base64 data `url`."""

    model_config = ConfigDict(extra="forbid")

    filename: Text = Field(
        description="The filename of the file", examples=["file.pdf", "image.png", "data.txt"]
    )
    url: Text = Field(
        description="The URL of the file in base64 format",
        examples=["data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAADIA..."],
    )


class CreatePartitionRequest(BaseModel):
    """Public create-partition request body."""

    document: MIMEData = Field(description="The document to partition")
    key: Text = Field(description="The key to partition the document by")
    instructions: Text = Field(description="Instructions describing how the document should be partitioned")
    model: Text = Field(default="retab-small", description="The model to use for partitioning")
    n_consensus: int = Field(
        default=1,
        description=(
            "Number of partitioning runs to use for consensus voting. "
            "Uses deterministic single-pass when set to 1."
        ),
    )
    allow_overlap: bool = Field(
        default=True,
        description="If true, allow a page to appear in more than one partition chunk",
    )
    bust_cache: bool = Field(
        default=False, description="If true, skip the LLM cache and force a fresh completion"
    )
    background: bool = Field(
        default=False,
        description=(
            "If true, run asynchronously: returns immediately with status 'queued' and an "
            "empty output. Poll GET /v1/<primitive>/{id} until status is terminal. "
            "Mutually exclusive with stream."
        ),
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in TIER_MULTIPLIERS:
            expected = ", ".join(repr(tier) for tier in TIER_MULTIPLIERS)
            raise PydanticCustomError(
                "literal_error", "Input should be one of {expected}", {"expected": expected}
            )
        return value

    @field_validator("n_consensus")
    @classmethod
    def _consensus_range(cls, value: int) -> int:
        if value < 1:
            raise PydanticCustomError(
                "greater_than_equal", "Input should be greater than or equal to {ge}", {"ge": 1}
            )
        if value > MAX_CONSENSUS:
            raise PydanticCustomError(
                "less_than_equal",
                "Input should be less than or equal to {le}",
                {"le": MAX_CONSENSUS},
            )
        return value


class FileRef(BaseModel):
    """Public/shared file reference used across SDK and customer-facing APIs."""

    id: str = Field(description="ID of the file")
    filename: str = Field(description="Filename of the file")
    mime_type: str = Field(description="MIME type of the file")


class PartitionChunk(BaseModel):
    key: str = Field(description="The partition key value for this chunk")
    pages: list[int] = Field(default=[], description="The pages assigned to this partition chunk (1-indexed)")


class PartitionChunkLikelihood(BaseModel):
    key: float | None = Field(default=None, description="Confidence that this partition key value is correct")
    pages: list[float] = Field(
        default=[],
        description="Confidence for each page in the corresponding partition chunk.pages array",
    )


class PartitionConsensus(BaseModel):
    choices: list[list[PartitionChunk]] = Field(
        default=[],
        description="Alternative partition vote outputs used to build the consolidated result.",
    )
    likelihoods: list[PartitionChunkLikelihood] = Field(
        default=[], description="Consensus likelihoods aligned with the partition output."
    )


class PrimitiveError(BaseModel):
    code: str = Field(description="Machine-readable error code.")
    message: str = Field(description="Human-readable error message.")
    details: dict[str, Any] | None = Field(default=None, description="Optional structured error context.")


class RetabUsage(BaseModel):
    """Usage information for document processing."""

    credits: float = Field(description="Credits consumed for processing")


class Partition(BaseModel):
    """A partition result: a document segmented into chunks along the requested `key`."""

    id: str = Field(description="Unique identifier of the partition")
    file: FileRef = Field(description="Information about the partitioned file")
    model: str = Field(description="Model used for the partition operation")
    key: str = Field(description="Partition key used for the run")
    instructions: str | None = Field(
        default=None, description="Free-form instructions supplied with the partition request"
    )
    n_consensus: int = Field(default=1, description="Number of consensus votes used")
    allow_overlap: bool = Field(
        default=True,
        description="Whether pages were allowed to appear in more than one partition chunk",
    )
    output: list[PartitionChunk] = Field(
        default=[],
        description=(
            "The list of partition chunks with their assigned pages. Empty [] until status == 'completed'."
        ),
    )
    status: Status = Field(
        default="pending",
        description=(
            "Lifecycle status. The synchronous path returns 'completed'. Background runs "
            "progress pending -> queued -> in_progress -> completed | failed | cancelled."
        ),
    )
    error: PrimitiveError | None = Field(
        default=None,
        description=(
            "Error details when a background run fails; null otherwise. Always present so "
            "consumers can read it without an existence check."
        ),
    )
    consensus: PartitionConsensus | None = Field(
        default=None, description="Consensus metadata for multi-vote partition runs"
    )
    usage: RetabUsage | None = Field(
        default=None, description="Usage information for the partition operation"
    )
    created_at: datetime | None = None


class ListMetadata(BaseModel):
    """Boundary resource IDs for page navigation."""

    before: str | None
    after: str | None


class PartitionList(BaseModel):
    """A page of `Partition` resources. `data` holds the items and `list_metadata` carries
    the `before`/`after` cursors; pass `after` to fetch the next page."""

    data: list[Partition]
    list_metadata: ListMetadata


# Files (files-usage.openapi.json): uploads for documents too big to inline.

SHA256_PATTERN = r"^[a-fA-F0-9]{64}$"


class UploadFileRequest(BaseModel):
    """Body to start a file upload: the `filename`, expected `size_bytes`, and optional content type
    and checksum."""

    filename: Text = Field(min_length=1, description="Filename to store")
    content_type: Text | None = Field(default=None, description="MIME type the client will upload")
    size_bytes: int = Field(ge=0, description="Expected upload size in bytes")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN, description="Optional SHA-256 checksum")


class CreateFileUploadResponse(BaseModel):
    """Instructions for uploading file content to a reserved file record.

    Returned when starting a file upload. Carries the new `file_id`, a
    short-lived signed `upload_url` with the HTTP method and headers to use,
    a durable reference to the file, and the URL's `expires_at` time."""

    # camelCase, as Retab publishes this one response.
    fileId: str = Field(description="Underlying file ID")
    uploadUrl: str = Field(description="Short-lived signed upload URL")
    uploadMethod: str = Field(default="PUT", description="HTTP method for upload")
    uploadHeaders: dict[str, str] = Field(default={}, description="Headers required by the signed upload URL")
    mimeData: MIMEData | None = Field(default=None, description="Durable Retab MIMEData reference")
    expiresAt: datetime = Field(description="Upload URL expiration")


class CompleteFileUploadRequest(BaseModel):
    """Body to finalize a file upload, optionally carrying the uploaded content's `sha256` checksum
    for verification."""

    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN, description="Optional SHA-256 checksum")


class File(BaseModel):
    """An uploaded file: its `id`, `filename`, MIME type, page count, and timestamps."""

    object: Literal["file"] = "file"
    id: str = Field(description="The unique identifier of the file")
    filename: str = Field(description="The name of the file")
    mime_type: str | None = Field(default=None, description="The MIME type of the file")
    created_at: datetime | None = Field(default=None, description="When the file was created")
    updated_at: datetime | None = Field(default=None, description="When the file was last updated")
    page_count: int | None = Field(default=None, description="Number of pages in the file")


class FileLink(BaseModel):
    """A short-lived signed link to download a file, with its `filename` and expiry."""

    download_url: str = Field(description="The signed URL to download the file")
    expires_in: str = Field(description="The expiration time of the signed URL")
    filename: str = Field(description="The name of the file")
    mime_data: MIMEData | None = Field(
        default=None, description="Durable Retab MIMEData reference for API reuse"
    )
