"""Helpers for the batch tests against the emulator: its runs, and batch invocations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cli_support import Cli
from emulator_support import Emulator

KEY = "invoice number"


def emulator_runs(emu: Emulator) -> list[dict[str, Any]]:
    """Every partition the emulator holds for the test key, listed through the API."""
    runs: list[dict[str, Any]] = []
    after: str | None = None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        query = {"limit": 100, "order": "asc", **({"after": after} if after else {})}
        request = urllib.request.Request(f"{emu.url}/v1/partitions?{urllib.parse.urlencode(query)}")
        request.add_header("Authorization", f"Bearer {emu.api_key}")
        with opener.open(request, timeout=60) as response:
            page = json.loads(response.read())
        runs.extend(page["data"])
        after = page["list_metadata"]["after"]
        if not after:
            return runs


def creates(emu: Emulator) -> list[dict[str, Any]]:
    """The create requests the emulator logged, oldest first, one per Idempotency-Key:
    a retry of the client's (a slow answer on a loaded machine) resends the same request."""
    first: dict[str, dict[str, Any]] = {}
    for r in emu.requests():
        if r["method"] == "POST" and r["path"] == "/v1/partitions":
            first.setdefault(r["headers"].get("idempotency-key", ""), r)
    return list(first.values())


def batch_args(docs: Path, journal: Path, *extra: str) -> list[str]:
    return ["partitions", "batch", str(docs), "--key", KEY, "--journal", str(journal), *extra]


def report(cli: Cli, *journals: Path) -> list[dict[str, Any]]:
    result = cli("partitions", "report", *map(str, journals), "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = result.json()
    return rows


def spawn(cli: Cli, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """The tool as a real process (for signals and kills), its output piped."""
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v != ""}}
    return subprocess.Popen([sys.executable, "-m", "retab_cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
