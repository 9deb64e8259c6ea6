"""The control API under /_emulator/ (only with --control; never in the schema).

No authentication: it exists for tests and rehearsals on a loopback emulator.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from retab_cli.emulator import runs
from retab_cli.emulator.middleware import owner_of
from retab_cli.emulator.responses import error_response, json_response
from retab_cli.emulator.state import EmulatorState

MAX_SEED = 1_000_000


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str | None = None
    path: str = ""
    times: int = Field(default=1, ge=1)
    status: int | None = Field(default=None, ge=100, le=599)
    body: Any = None
    headers: dict[str, str] | None = None
    delay: float | None = Field(default=None, ge=0)
    drop: bool = False
    drop_after: int | None = Field(default=None, ge=0)
    slow: float | None = Field(default=None, ge=0)
    truncate: bool = False

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"path is not a valid regular expression: {exc}") from None
        return value


class NextCreateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["failed", "cancelled", "stuck"]
    times: int = Field(default=1, ge=1)


class SeedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=MAX_SEED)
    api_key: str | None = None
    status: Literal["completed", "failed", "cancelled"] | None = None
    filename_prefix: str = "seed-"


def build_control_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(prefix="/_emulator", include_in_schema=False)

    @router.post("/reset")
    async def reset() -> Response:
        await run_in_threadpool(state.reset)
        return json_response({"ok": True})

    @router.post("/faults", status_code=201)
    async def add_fault(spec: FaultSpec) -> Response:
        fault = state.faults.add(**spec.model_dump())
        return json_response({"id": fault.id}, 201)

    @router.get("/faults")
    async def list_faults() -> Response:
        return json_response(state.faults.pending())

    @router.delete("/faults")
    async def clear_faults() -> Response:
        state.faults.clear()
        return json_response({"ok": True})

    @router.post("/next-create")
    async def next_create(spec: NextCreateSpec) -> Response:
        state.next_creates.add(spec.outcome, spec.times)
        return json_response({"ok": True})

    @router.post("/seed")
    async def seed(spec: SeedSpec) -> Response:
        key = spec.api_key or state.settings.primary_key
        if key not in state.settings.api_keys:
            return error_response(400, "unknown_api_key", "api_key is not one of the emulator's keys")
        # Seeding 50,000 rows takes a moment: keep the event loop serving meanwhile.
        batch = await run_in_threadpool(
            runs.seed_runs,
            owner_of(key),
            spec.count,
            spec.status,
            spec.filename_prefix,
            state.clock.now(),
        )
        inserted = await run_in_threadpool(state.store.insert, batch)
        return json_response({"inserted": inserted})

    @router.get("/requests")
    async def requests() -> Response:
        return json_response(state.log.entries())

    @router.delete("/requests")
    async def clear_requests() -> Response:
        state.log.clear()
        return json_response({"ok": True})

    return router
