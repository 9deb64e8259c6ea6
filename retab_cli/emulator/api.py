"""The five /v1/partitions endpoints.

Handlers answer with pre-serialised `Response`s (the `response_model`s only shape
`/openapi.json`): runs are stored as JSON, so re-validating them through pydantic on
every read would only cost time.

Where the spec and CONTRACT.md are silent, the emulator answers:
- a malformed `document.url` (bad data URL or base64, another scheme): 422 with
  FastAPI's shape at `["body", "document", "url"]`; a request body over 32 MiB:
  413 `document_too_large` (middleware.LimitBody); an http(s) URL off loopback: 201
  and a failed run (`remote_fetch_unsupported`), as are the emulator's own URLs
  (`self_fetch_refused`), except its stored files (files.py), read from disk;
- `before` and `after` together, or a cursor id this key never had: 400
  `invalid_cursor`; an unparseable `from_date`/`to_date`, or a `to_date` of
  9999-12-31 (its next day, the exclusive bound, does not exist): 400 `invalid_date`;
- `Idempotency-Key` applies to create only (cancel and delete are idempotent anyway);
  only a 201 is remembered, for 24 hours per API key; a concurrent retry with the
  same key waits for the first attempt and replays it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from retab_cli.emulator import documents, files, runs
from retab_cli.emulator.lifecycle import SYNC_WAIT_CAP_S, day_start_us, schedule
from retab_cli.emulator.middleware import OWNER_KEY
from retab_cli.emulator.responses import error_response, json_response, value_error
from retab_cli.emulator.schemas import CreatePartitionRequest, Partition, PartitionList, Status
from retab_cli.emulator.state import EmulatorState
from retab_cli.emulator.store import ListQuery, Replay, UnknownCursor

NOT_FOUND = b'{"detail": "Partition not found"}'
IDEMPOTENCY_TTL_US = 24 * 3600 * 1_000_000
INCLUDE_OUTPUT_HELP = (
    "When false, returns a cheap status-only projection (no output), served from cache "
    "for in-flight background runs."
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only, unlike \d


def not_found() -> Response:
    return Response(NOT_FOUND, 404, media_type="application/json")


def build_router(state: EmulatorState) -> APIRouter:
    # The dependency only declares the published security scheme in /openapi.json;
    # authentication itself happens in middleware, before any route runs.
    router = APIRouter(
        prefix="/v1/partitions",
        tags=["Partitions"],
        dependencies=[Depends(HTTPBearer(auto_error=False))],
    )
    store = state.store

    @router.post(
        "",
        status_code=201,
        response_model=Partition,
        operation_id="create_partitions",
        summary="Create Partitions",
    )
    async def create_partitions(body: CreatePartitionRequest, request: Request) -> Response:
        """Create a partition.

        Groups the pages of a `document` into chunks by a partition `key`, guided by
        `instructions` and the chosen `model`. Set `n_consensus` above `1` to run multiple
        votes and consolidate them, and `allow_overlap` to let a page belong to more than one
        chunk. Returns the stored `Partition` with its `output` chunks, and responds with `201`.
        """
        owner: str = request.scope[OWNER_KEY]
        own_port = files.own_port(request)
        idempotency_key = request.headers.get("idempotency-key")
        if not idempotency_key:
            return await _create(state, owner, body, own_port)
        fingerprint = hashlib.sha256(
            json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()
        # Hold the key while creating, so a retry racing the first attempt waits for
        # it and replays its answer instead of creating a second run.
        async with state.idempotency.hold((owner, idempotency_key)):
            now = state.clock.now()
            earlier = store.replay(owner, idempotency_key, now - IDEMPOTENCY_TTL_US)
            if earlier is not None:
                if earlier.fingerprint != fingerprint:
                    return error_response(
                        409,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request body",
                        {"idempotency_key": idempotency_key},
                    )
                return Response(earlier.body, earlier.status, media_type="application/json")
            response = await _create(state, owner, body, own_port)
            if response.status_code == 201:
                replay = Replay(fingerprint, response.status_code, bytes(response.body))
                store.remember(owner, idempotency_key, replay, now, now - IDEMPOTENCY_TTL_US)
            return response

    @router.get(
        "",
        response_model=PartitionList,
        operation_id="list_partitions",
        summary="List Partitions",
    )
    async def list_partitions(
        request: Request,
        before: str | None = None,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        order: Literal["asc", "desc"] = "desc",
        filename: str | None = None,
        status: Status | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
    ) -> Response:
        """List partitions.

        Returns a paginated list of partitions for the authenticated environment, newest first
        by default. Filter by `filename` prefix (case-insensitive) and by a `created_at` window
        using `from_date`/`to_date` (`YYYY-MM-DD`). Page through results with `before`/`after`,
        `limit`, and `order`.
        """
        if before is not None and after is not None:
            return error_response(400, "invalid_cursor", "pass either before or after, not both")
        try:
            from_us = _day_us("from_date", from_date)
            to_us = _day_us("to_date", to_date, next_day=True)
        except BadDate as exc:
            return error_response(
                400, "invalid_date", str(exc), {"param": exc.name, "value": exc.value}
            )
        query = ListQuery(limit, order, before, after, filename, status, from_us, to_us)
        now = state.clock.now()
        try:
            page = store.list_page(request.scope[OWNER_KEY], query, now)
        except UnknownCursor as exc:
            return error_response(
                400,
                "invalid_cursor",
                f"no partition {exc.args[0]!r} to page from",
                {"param": "after" if after is not None else "before", "value": exc.args[0]},
            )
        return json_response(
            {
                "data": [runs.render(run, now) for run in page.runs],
                "list_metadata": {"before": page.before, "after": page.after},
            }
        )

    @router.get(
        "/{partition_id}",
        response_model=Partition,
        operation_id="get_partition",
        summary="Get Partition",
    )
    async def get_partition(
        partition_id: str,
        request: Request,
        include_output: Annotated[bool, Query(description=INCLUDE_OUTPUT_HELP)] = True,
    ) -> Response:
        """Retrieve a partition.

        Fetches a single partition by its `partition_id` within the authenticated environment
        and returns the full `Partition` including its `output` chunks. Responds with `404` if
        no partition with that id exists.
        """
        run = store.get(request.scope[OWNER_KEY], partition_id)
        if run is None:
            return not_found()
        return json_response(runs.render(run, state.clock.now(), include_output))

    @router.delete(
        "/{partition_id}",
        status_code=204,
        response_class=Response,
        operation_id="delete_partition",
        summary="Delete Partition",
    )
    async def delete_partition(partition_id: str, request: Request) -> Response:
        """Delete a partition.

        Permanently deletes the partition identified by `partition_id`. Returns
        `204` on success, or `404` if no partition with that id exists.
        """
        if not store.delete(request.scope[OWNER_KEY], partition_id, state.clock.now()):
            return not_found()
        return Response(status_code=204)

    @router.post(
        "/{partition_id}/cancel",
        response_model=Partition,
        operation_id="cancel_partition",
        summary="Cancel Partition",
    )
    async def cancel_partition(partition_id: str, request: Request) -> Response:
        now = state.clock.now()
        run = store.cancel(request.scope[OWNER_KEY], partition_id, now)
        if run is None:
            return not_found()
        return json_response(runs.render(run, now))

    return router


class BadDate(ValueError):
    def __init__(self, name: str, value: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.value = value


def _day_us(name: str, value: str | None, next_day: bool = False) -> int | None:
    """Start of the UTC day (or of the next one, for an inclusive upper bound)."""
    if value is None:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise BadDate(name, value, f"{name} must be a date as YYYY-MM-DD (UTC), not {value!r}") from None
    if next_day and day.date() == date.max:
        # Its next day, the exclusive bound, is past what dates can hold.
        raise BadDate(name, value, f"{name} must be before {date.max.isoformat()}")
    return day_start_us(day + timedelta(days=1) if next_day else day)


async def _load(
    state: EmulatorState, owner: str, source: documents.Document | documents.RemoteUrl, own_port: int | None
) -> documents.Document | documents.StoredDocument | documents.DocumentFailure:
    if isinstance(source, documents.Document):
        return source
    stored = files.stored_document(state, owner, source, own_port)
    if stored is not None:
        return stored
    try:
        return await state.fetcher.fetch(owner, source, own_port)
    except documents.DocumentFailure as failure:
        return failure


async def _create(
    state: EmulatorState, owner: str, body: CreatePartitionRequest, own_port: int | None
) -> Response:
    url = body.document.url
    try:
        source = documents.parse_document_url(url)
    except documents.DocumentUrlError as exc:
        raise value_error(("body", "document", "url"), str(exc), url) from None
    except documents.DocumentTooLarge as exc:
        return error_response(
            413,
            "document_too_large",
            f"{exc}; send a URL the service can fetch instead",
            {"size": exc.size, "limit": documents.MAX_DOCUMENT_BYTES},
        )
    request = runs.Request(
        owner=owner,
        filename=body.document.filename,
        key=body.key,
        instructions=body.instructions,
        model=body.model,
        n_consensus=body.n_consensus,
        allow_overlap=body.allow_overlap,
        background=body.background,
    )
    document = await _load(state, owner, source, own_port)
    analysis = await run_in_threadpool(
        runs.analyse, document, request.filename, request.key, request.allow_overlap
    )
    run_id = runs.new_partition_id()
    created = state.clock.now()
    outcome = state.next_creates.take()
    run = runs.build_run(
        request,
        analysis,
        run_id=run_id,
        created_us=created,
        speed=state.settings.speed,
        outcome=outcome,
        sync_cap_s=None if request.background else SYNC_WAIT_CAP_S,
    )
    state.store.insert([run])
    if request.background:
        return json_response(runs.render(run, created), 201)
    # A synchronous create waits out the run (a stuck one as long as it would have
    # taken), then answers with what the run has become: cancelled meanwhile, too.
    end = run.done_us
    if end is None:
        end = schedule(run_id, analysis.pages, state.settings.speed, created, SYNC_WAIT_CAP_S)[1]
    await asyncio.sleep(max(0.0, (end - state.clock.now()) / 1_000_000))
    current = state.store.get(owner, run_id) or run
    return json_response(runs.render(current, max(state.clock.now(), end)), 201)
