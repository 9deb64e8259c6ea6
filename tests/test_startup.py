"""Start-up budget rules (docs/design.md §7) as checks on what each path imports, never on timings."""

from __future__ import annotations

import http.server
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import retab_cli

from cli_support import http_stub, send_json

# Runs the real entry point in a fresh interpreter, then writes the names of the loaded
# modules and the exit code to the file named first on the command line.
PROBE = """
import json, os, sys
report, args = sys.argv[1], sys.argv[2:]
loaded = []
if os.environ.get("PROBE_TRACE_CA"):
    import ssl
    def traced(name):
        original = getattr(ssl.SSLContext, name)
        def wrapper(self, *a, **k):
            loaded.append(name)
            return original(self, *a, **k)
        setattr(ssl.SSLContext, name, wrapper)
    for name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
        traced(name)
if os.environ.get("PROBE_CONTROL"):
    import httpx
    httpx.AsyncClient()  # verify=True: loads certifi's bundle
else:
    from retab_cli.app import main
code = None
try:
    if not os.environ.get("PROBE_CONTROL"):
        main(args)
except SystemExit as exit_:
    code = exit_.code
with open(report, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules), "ca_loads": loaded}, fh)
"""

HEAVY = ("httpx", "rich", "pydantic")

PARTITION: dict[str, Any] = {
    "id": "prtn_startup0000000000000",
    "file": {"id": "file_0123456789abcdef", "filename": "a.pdf", "mime_type": "application/pdf"},
    "model": "retab-small",
    "key": "invoice number",
    "instructions": "split",
    "n_consensus": 1,
    "allow_overlap": True,
    "output": [{"key": "INV-1", "pages": [1, 2]}],
    "status": "completed",
    "error": None,
    "consensus": None,
    "usage": {"credits": 3},
    "created_at": "2024-05-01T12:00:00Z",
    "unknown_field": {"kept": True},
}


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RETAB_") and k not in ("NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS")}
    env.update(HOME=str(tmp_path / "home"), RETAB_CONFIG_DIR=str(tmp_path / "config"),
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               XDG_DATA_HOME=str(tmp_path / "data"), COLUMNS="100")
    env.update(extra)
    return env


def probe(tmp_path: Path, *args: str, **env: str) -> tuple[dict[str, Any],
                                                           subprocess.CompletedProcess[str]]:
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(report), *args],
                          env=clean_env(tmp_path, **env), capture_output=True, text=True,
                          timeout=60)
    assert report.exists(), done.stderr
    return json.loads(report.read_text()), done


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["partitions", "--help"]])
def test_help_and_version_load_no_heavy_modules(tmp_path: Path, args: list[str]) -> None:
    result, done = probe(tmp_path, *args)
    assert result["code"] in (0, None), done.stderr
    assert [m for m in HEAVY if m in result["modules"]] == []
    # Nor the engines a command loads when it runs (each costs imports of its own).
    engines = ("retab_cli.client", "retab_cli.models", "retab_cli.documents", "retab_cli.batch")
    assert [m for m in engines if m in result["modules"]] == []
    assert done.stdout


def test_help_lists_the_exit_codes(tmp_path: Path) -> None:
    _, done = probe(tmp_path, "--help")
    assert "Exit codes:" in done.stdout
    for code in ("0", "1", "2", "3", "4", "5", "6", "7", "8", "130"):
        assert re.search(rf"^\s+{code}  \S", done.stdout, flags=re.M), code


def test_version(tmp_path: Path) -> None:
    result, done = probe(tmp_path, "--version")
    assert result["code"] in (0, None)
    expected = (f"retab-cli {retab_cli.__version__} (Python {platform.python_version()}; "
                f"{platform.system()} {platform.machine()})\n")
    assert done.stdout == expected
    assert re.fullmatch(r"retab-cli \S+ \(Python \d+\.\d+\.\d+\S*; \S+ \S+\)\n", done.stdout)
    assert done.stderr == ""


def test_version_through_the_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("retab")
    if not script.exists():
        pytest.skip("the retab console script is not installed beside this interpreter")
    done = subprocess.run([str(script), "--version"], env=clean_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith(f"retab-cli {retab_cli.__version__} (Python ")


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).requests.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path.startswith(f"/v1/partitions/{PARTITION['id']}"):
            send_json(self, 200, json.dumps(PARTITION).encode(), {"x-request-id": "req_stub"})
        else:
            send_json(self, 404, b'{"detail": "Partition not found"}', {"x-request-id": "req_stub"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[str]:
    _Handler.requests = []
    with http_stub(_Handler) as url:
        yield url


def test_get_json_on_loopback_loads_no_models_rich_or_ca_bundle(
    tmp_path: Path, stub_server: str
) -> None:
    result, done = probe(tmp_path, "partitions", "get", PARTITION["id"], "--json",
                         RETAB_API_BASE_URL=stub_server, RETAB_API_KEY="rt_test_startup",
                         PROBE_TRACE_CA="1")
    assert result["code"] in (0, None), done.stderr
    assert json.loads(done.stdout) == PARTITION
    assert '"credits": 3' in done.stdout  # numbers as received, never re-serialised
    assert done.stderr == ""
    modules = result["modules"]
    assert "httpx" in modules  # the request really went through the client
    assert [m for m in ("rich", "pydantic", "retab_cli.models") if m in modules] == []
    # httpx 0.28 imports certifi in create_ssl_context whatever `verify` is (a tiny module);
    # what costs time is loading the CA bundle into an SSL context, which must not happen.
    assert result["ca_loads"] == []
    assert _Handler.requests == [
        ("GET", f"/v1/partitions/{PARTITION['id']}?include_output=true", "Bearer rt_test_startup")]


def test_the_ca_bundle_probe_sees_a_bundle_being_loaded(tmp_path: Path) -> None:
    """Control for the check above: a default httpx client does load a CA bundle."""
    result, _ = probe(tmp_path, PROBE_TRACE_CA="1", PROBE_CONTROL="1")
    assert "load_verify_locations" in result["ca_loads"]
