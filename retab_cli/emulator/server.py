"""Running the app on uvicorn: socket binding, the drop-capable protocol, signals,
and `exec` (serve in a thread while a command runs)."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn

from retab_cli.emulator import sample_pdf_path
from retab_cli.emulator.app import create_app
from retab_cli.emulator.config import Settings, url_host
from retab_cli.emulator.middleware import TRANSPORT_KEY
from retab_cli.emulator.output import err, out

GRACEFUL_SHUTDOWN_S = 3
START_TIMEOUT_S = 10.0


def protocol_class(idle_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, extended in two ways. It puts the connection's
    transport in each request's scope: ASGI cannot close a connection, and a
    dropped-connection fault needs to. And it closes a connection that has not sent a
    complete request head within `idle_timeout_s` of its opening or of its last
    response: uvicorn times out idle connections only after a response, so a client
    trickling headers (slowloris) would hold one for ever. httptools is faster when
    installed; h11 always is."""
    base: Any
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class GuardedProtocol(base):  # type: ignore[misc]
        app: Any
        _head_timer: asyncio.TimerHandle | None = None
        _head_for: Any = None  # the request cycle current when the timer was armed

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            app = self.app

            async def with_transport(scope: Any, receive: Any, send: Any) -> None:
                scope[TRANSPORT_KEY] = transport
                await app(scope, receive, send)

            self.app = with_transport
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._head_for:
                self._stop_head_timer()  # a request head arrived: its cycle is new

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # A pipelined request may already be running; otherwise wait for the next.
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            self._stop_head_timer()
            self._head_for = self.cycle
            self._head_timer = self.loop.call_later(idle_timeout_s, self._close_idle)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _close_idle(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedProtocol


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn re-raises a captured signal after shutting down, which would end
        # the process "killed by SIGTERM"; a clean stop should exit 0 instead.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """Bind here rather than in uvicorn, so `--port 0` reports the real port."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def base_url(settings: Settings, sock: socket.socket) -> str:
    return f"http://{url_host(settings.host)}:{sock.getsockname()[1]}"


def _server(app: Any, settings: Settings) -> _Server:
    config = uvicorn.Config(
        app,
        http=protocol_class(settings.idle_timeout_s),
        lifespan="off",
        log_level="warning",
        access_log=False,
        # uvicorn's own idle timer takes whole seconds; the protocol's own closes sooner.
        timeout_keep_alive=max(1, math.ceil(settings.idle_timeout_s)),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return _Server(config)


def serve(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM; exit 0."""
    app, state = create_app(settings)
    sock = bind(settings.host, settings.port)
    url = base_url(settings, sock)
    out(f"listening on {url}")
    out(f"export RETAB_API_BASE_URL={url}")
    if settings.uses_default_key:
        out(f"export RETAB_API_KEY={settings.primary_key}")
    try:
        _server(app, settings).run(sockets=[sock])
    finally:
        sock.close()
        state.close()
    return 0


class BackgroundServer:
    """The emulator on a free port in a daemon thread (for `exec` and benchmarks)."""

    def __init__(self, settings: Settings) -> None:
        app, self.state = create_app(settings)
        self.sock = bind(settings.host, settings.port)
        self.url = base_url(settings, self.sock)
        self._server = _server(app, settings)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=GRACEFUL_SHUTDOWN_S + 2)
        self.sock.close()
        self.state.close()


def run_command(settings: Settings, command: Sequence[str]) -> int:
    """Run COMMAND against a fresh emulator and return its exit code."""
    server = BackgroundServer(settings)
    server.start()
    env = {
        **os.environ,
        "RETAB_API_BASE_URL": server.url,
        "RETAB_API_KEY": settings.primary_key,
        "RETAB_SAMPLE_PDF": str(sample_pdf_path()),
    }
    try:
        return _run_child(command, env)
    finally:
        server.stop()


def _run_child(command: Sequence[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(list(command), env=env)
    except FileNotFoundError:
        err(f"error: command not found: {command[0]}")
        return 127
    except PermissionError:
        err(f"error: command not executable: {command[0]}")
        return 126
    # Ctrl-C reaches the child through the terminal's process group, so the parent
    # only ignores it; SIGTERM is sent to the parent alone and is passed on.
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, lambda sig, frame: child.send_signal(sig))
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return code if code >= 0 else 128 - code
