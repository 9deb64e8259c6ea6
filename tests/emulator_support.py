"""Start and drive a `retab emulator` subprocess from any test suite.

    emu = start_emulator()            # control API on, speed 20, in-memory db
    emu.url, emu.api_key              # point the client here
    emu.add_fault(path="/v1/partitions$", method="POST", status=503, times=2)
    emu.add_fault(path="^/_storage/uploads/", method="PUT", drop_after=1_000_000)  # an upload cut off
    emu.next_create("failed")
    emu.seed(250)
    emu.requests()                    # what the client sent, oldest first (uploads: the
                                      # PUT to /_storage/uploads/<id>, headers, body_bytes)
    logged_data_url(data, "application/pdf")  # how the log shows a data URL of these bytes
    emu.stop()

The control calls use urllib, not httpx, so they never share state (or mocks such as
respx) with the client under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_KEY = "rt_test_emulator"


@dataclass
class Emulator:
    url: str
    api_key: str
    proc: subprocess.Popen[str] | None  # None for an emulator started elsewhere

    def control(self, method: str, path: str, json: object = None) -> object:
        """Call /_emulator/<path> and return the parsed JSON answer."""
        return _call(method, f"{self.url}/_emulator/{path.lstrip('/')}", json)

    def reset(self) -> None:
        self.control("POST", "reset")

    def add_fault(self, **fault: object) -> None:
        self.control("POST", "faults", fault)

    def next_create(self, outcome: str, times: int = 1) -> None:
        self.control("POST", "next-create", {"outcome": outcome, "times": times})

    def requests(self) -> list[dict[str, Any]]:
        entries = self.control("GET", "requests")
        assert isinstance(entries, list)
        return entries

    def clear_requests(self) -> None:
        self.control("DELETE", "requests")

    def seed(self, count: int, **kw: object) -> int:
        answer = self.control("POST", "seed", {"count": count, **kw})
        assert isinstance(answer, dict)
        return int(answer["inserted"])

    def stop(self) -> None:
        """SIGTERM, wait, kill on timeout."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _call(method: str, url: str, body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    # No proxy: the emulator is on loopback, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def start_emulator(
    *args: str,
    env: dict[str, str] | None = None,
    db: str = ":memory:",
    control: bool = True,
    speed: float = 20.0,
    timeout: float = 15.0,
) -> Emulator:
    """Start `python -m retab_cli.emulator` on a free port; return once it listens."""
    command = [
        sys.executable,
        "-m",
        "retab_cli.emulator",
        "--port",
        "0",
        "--db",
        db,
        "--speed",
        str(speed),
        *(["--control"] if control else []),
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=None,  # let the emulator's errors reach the test output
        text=True,
        env={**os.environ, **(env or {})},
    )
    first_line = _read_line(proc, timeout)
    if not first_line.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the emulator did not start: {first_line!r}")
    url = first_line.removeprefix("listening on ").strip()
    # Keep draining stdout so the emulator never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
    return Emulator(url=url, api_key=_first_key(args, env), proc=proc)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not result:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the emulator printed nothing within {timeout} s")
    return result[0]


def _first_key(args: tuple[str, ...], env: dict[str, str] | None) -> str:
    for index, arg in enumerate(args):
        if arg == "--api-key" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--api-key="):
            return arg.split("=", 1)[1]
    configured = (env or {}).get("RETAB_EMULATOR_API_KEYS", os.environ.get("RETAB_EMULATOR_API_KEYS", ""))
    keys = [k.strip() for k in configured.split(",") if k.strip()]
    return keys[0] if keys else DEFAULT_KEY


def external_emulator() -> Emulator | None:
    """The emulator named by RETAB_TEST_EMULATOR_URL (CI may start one), if any."""
    url = os.environ.get("RETAB_TEST_EMULATOR_URL")
    if not url:
        return None
    return Emulator(
        url=url.rstrip("/"), api_key=os.environ.get("RETAB_TEST_EMULATOR_KEY", DEFAULT_KEY), proc=None
    )


def logged_data_url(data: bytes, mime: str) -> str:
    """A data URL as the request log shows it: the log keeps no document bytes, only
    their size and sha256 (for `data:<mime>;base64,...`)."""
    return f"data:{mime};base64,<{len(data)} bytes; sha256 {hashlib.sha256(data).hexdigest()}>"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
