"""Run the tool in-process (Typer's CliRunner) or as a subprocess against an emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from retab_cli.app import app, hoist_globals

from emulator_support import Emulator

NO_SERVER = "http://127.0.0.1:1"  # nothing may be sent; if it were, it would be refused at once
SAMPLE_PDF = Path(__file__).resolve().parent.parent / "retab_cli" / "emulator" / "data" / "invoices.pdf"


class Warnings(list[str]):
    """Collects what a function under test warns about (its `warn` callback)."""

    def __call__(self, text: str) -> None:
        self.append(text)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def stderr_json(self) -> Any:
        """The JSON error object on stderr (the last line that parses)."""
        for line in reversed(self.stderr.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise AssertionError(f"no JSON object on stderr: {self.stderr!r}")


class Cli:
    """The tool pointed at one emulator, with its own config and cache directories."""

    def __init__(self, emu: Emulator, home: Path) -> None:
        self.emu = emu
        self.home = home
        self.env = {
            "RETAB_API_BASE_URL": emu.url,
            "RETAB_API_KEY": emu.api_key,
            "RETAB_CONFIG_DIR": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "RETAB_MAX_RPS": "0",
            "RETAB_PROFILE": "",
            "RETAB_OUTPUT": "",
            "RETAB_API_KEY_FILE": "",
            "NO_COLOR": "",
            "FORCE_COLOR": "",
            "GITHUB_ACTIONS": "",
            "RETAB_DEBUG": "",
        }

    def __call__(self, *args: str, input: str | bytes | None = None,
                 env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        merged = {**self.env, **(env or {})}
        result = runner.invoke(app, hoist_globals(list(args)), input=input, env=merged,
                               catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    def run(self, *args: str, input: str | bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> Result:
        """As a real process: `python -m retab_cli ...`."""
        merged = {**os.environ, **{k: v for k, v in self.env.items()}, **(env or {})}
        merged = {k: v for k, v in merged.items() if v != "" or k in ("NO_COLOR",)}
        proc = subprocess.run([sys.executable, "-m", "retab_cli", *args], input=input,
                              capture_output=True, text=isinstance(input, str) or input is None,
                              env=merged, timeout=timeout)
        out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode()
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
        return Result(proc.returncode, out, err)


def run_isolated(home: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes = b"",
                 preexec_fn: Callable[[], None] | None = None, timeout: float = 60) -> Result:
    """`python -m retab_cli ARGS` as a real process, with its own config and cache dirs under
    `home`, none of the caller's RETAB_* and NO_SERVER as the base URL (no emulator needed)."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("RETAB_") and k not in ("NO_COLOR", "FORCE_COLOR")}
    clean.update(RETAB_CONFIG_DIR=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
                 RETAB_API_BASE_URL=NO_SERVER, PYTHONIOENCODING="utf-8")
    clean.update(env or {})
    done = subprocess.run([sys.executable, "-m", "retab_cli", *args], env=clean, input=stdin,
                          capture_output=True, timeout=timeout, preexec_fn=preexec_fn)
    return Result(done.returncode, done.stdout.decode(errors="replace"),
                  done.stderr.decode(errors="replace"))


@contextmanager
def http_stub(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A loopback HTTP server answering with `handler` while the block runs; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def json_stub(answer: Any) -> Iterator[str]:
    """`http_stub` answering every GET with `answer` as JSON (a hostile server's page)."""
    body = json.dumps(answer).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            send_json(self, 200, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_stub(Answer) as url:
        yield url


def send_json(handler: BaseHTTPRequestHandler, status: int, body: bytes,
              headers: dict[str, str] | None = None) -> None:
    """Answer a stub request with a JSON body."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
