"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp

from retab_cli.emulator.api import build_router
from retab_cli.emulator.config import Settings
from retab_cli.emulator.control import build_control_router
from retab_cli.emulator.files import build_files_router, build_storage_router
from retab_cli.emulator.middleware import (
    Authenticate,
    InjectedFaults,
    LimitBody,
    LimitRate,
    LogRequests,
    RequestId,
    ScriptedFaults,
)
from retab_cli.emulator.responses import validation_failed
from retab_cli.emulator.state import EmulatorState
from retab_cli.emulator.store import Store


def create_app(settings: Settings, store: Store | None = None) -> tuple[ASGIApp, EmulatorState]:
    """The ASGI app (FastAPI wrapped in the middleware) and its shared state."""
    state = EmulatorState(settings=settings, store=store or Store(settings.db))
    api = FastAPI(
        title="Retab partitions emulator",
        version="0.1.0",
        description="A local emulator of Retab's Partitions API (retab-cli).",
        separate_input_output_schemas=False,
    )
    api.add_exception_handler(RequestValidationError, validation_failed)
    api.include_router(build_router(state))
    api.include_router(build_files_router(state))
    api.include_router(build_storage_router(state))
    if settings.control:
        api.include_router(build_control_router(state))
    return wrap(api, state), state


def wrap(api: ASGIApp, state: EmulatorState) -> ASGIApp:
    """Add the middleware, innermost first; layers that have nothing to do are left out."""
    settings = state.settings
    app: ASGIApp = api
    if state.limiter is not None:
        app = LimitRate(app, state.limiter)
    app = Authenticate(app, settings.api_keys)
    if settings.latency_s or settings.error_rate:
        app = InjectedFaults(app, settings.latency_s, state.dice, settings.error_status)
    if settings.control:
        app = ScriptedFaults(app, state.faults)
    app = LimitBody(app)
    if settings.control:
        app = LogRequests(app, state.log)
    return RequestId(app)
