"""The command: start-up lines, signals, persistence across restarts, `exec`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from retab_cli.emulator.config import parse_size

from .helpers import body, client, create
from emulator_support import start_emulator

EMULATOR = [sys.executable, "-m", "retab_cli.emulator"]


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*EMULATOR, "--port", "0", "--db", ":memory:", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_startup_lines_and_clean_exit(sig: signal.Signals) -> None:
    proc = launch()
    try:
        first = proc.stdout.readline().strip()  # type: ignore[union-attr]
        url = first.removeprefix("listening on ")
        assert first.startswith("listening on http://127.0.0.1:") and not url.endswith(":0")
        assert proc.stdout.readline().strip() == f"export RETAB_API_BASE_URL={url}"  # type: ignore[union-attr]
        assert proc.stdout.readline().strip() == "export RETAB_API_KEY=rt_test_emulator"  # type: ignore[union-attr]
        assert httpx.get(f"{url}/openapi.json", trust_env=False).status_code == 200
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out == "" and "Traceback" not in err


def test_configured_keys_are_never_printed() -> None:
    proc = launch("--api-key", "rt_test_secret_abc")
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert lines[0].startswith("listening on ") and lines[1].startswith("export RETAB_API_BASE_URL=")
    assert "rt_test_secret_abc" not in rest and "RETAB_API_KEY" not in rest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "0"], "--speed"),
        (["--rate-limit", "fast"], "rate limit"),
        (["--error-rate", "2"], "--error-rate"),
        (["--error-status", "200"], "--error-status"),
        (["--latency", "soon"], "duration"),
        (["--max-upload", "5XB"], "error: --max-upload must be a size such as 500MiB, 2GiB"),
        (["--fetch-timeout", "0"], "error: --fetch-timeout must be above 0"),
        (["--idle-timeout", "soon"], "invalid --idle-timeout duration 'soon'"),
    ],
)
def test_bad_option_values(args: list[str], message: str) -> None:
    result = subprocess.run([*EMULATOR, *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


def test_missing_extra_is_one_line() -> None:
    code = "import sys; sys.modules['fastapi'] = None; from retab_cli.emulator.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "--port", "0"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 1
    assert result.stderr == "error: the emulator needs its extra: pip install 'retab-cli[emulator]'\n"


def test_import_of_the_command_stays_light() -> None:
    code = (
        "import sys, retab_cli.emulator.cli; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'uvicorn', 'pypdf', 'sqlite3', 'pydantic', 'rich', 'httpx', 'click', 'starlette')]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert result.stdout.strip() == "[]"


def test_restart_keeps_everything(tmp_path: Path) -> None:
    db = str(tmp_path / "data" / "emulator.sqlite3")
    emu = start_emulator(db=db)
    try:
        with client(emu) as http:
            done = http.post("/v1/partitions", json=body(), headers={"Idempotency-Key": "k1"})
            pending = create(http)
            deleted = create(http)
            assert http.delete(f"/v1/partitions/{deleted['id']}").status_code == 204
    finally:
        emu.stop()
    assert emu.proc is not None and emu.proc.returncode == 0
    again = start_emulator(db=db)
    try:
        with client(again) as http:
            assert http.get(f"/v1/partitions/{done.json()['id']}").json() == done.json()
            assert http.get(f"/v1/partitions/{pending['id']}").json()["status"] == "completed"
            assert http.get(f"/v1/partitions/{deleted['id']}").status_code == 404
            page = http.get("/v1/partitions", params={"after": deleted["id"]}).json()
            assert [r["id"] for r in page["data"]] == [pending["id"], done.json()["id"]]
            replay = http.post("/v1/partitions", json=body(), headers={"Idempotency-Key": "k1"})
            assert replay.content == done.content
    finally:
        again.stop()


CHECK_ENV = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    url = os.environ["RETAB_API_BASE_URL"] + "/v1/partitions"
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["RETAB_API_KEY"]})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert json.load(response)["data"] == []
    assert os.path.isabs(os.environ["RETAB_SAMPLE_PDF"])
    assert open(os.environ["RETAB_SAMPLE_PDF"], "rb").read(5) == b"%PDF-"
    sys.stdout.write(os.environ["RETAB_API_KEY"])
    sys.exit(int(sys.argv[1]))
    """
)


@pytest.mark.parametrize("code", [0, 3])
def test_exec_runs_the_command_and_returns_its_code(code: int) -> None:
    result = subprocess.run(
        [*EMULATOR, "exec", "--", sys.executable, "-c", CHECK_ENV, str(code)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == code, result.stderr
    assert result.stdout == "rt_test_emulator"


def test_exec_options_before_and_after_the_subcommand() -> None:
    result = subprocess.run(
        [
            *EMULATOR,
            "--api-key",
            "rt_parent",
            "exec",
            "--speed",
            "50",
            "--",
            sys.executable,
            "-c",
            CHECK_ENV,
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "rt_parent"
    result = subprocess.run(
        [*EMULATOR, "exec", "--api-key", "rt_child", "--", sys.executable, "-c", CHECK_ENV, "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout == "rt_child"


def test_exec_of_a_missing_command_is_127() -> None:
    result = subprocess.run(
        [*EMULATOR, "exec", "--", "no-such-command-here"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 127
    assert result.stderr.strip().splitlines() == ["error: command not found: no-such-command-here"]


def test_exec_reports_a_signal_death_as_128_plus_n() -> None:
    result = subprocess.run(
        [
            *EMULATOR,
            "exec",
            "--",
            sys.executable,
            "-c",
            "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 128 + signal.SIGTERM


def test_default_db_lives_under_xdg_data_home(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*EMULATOR, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")},
    )
    try:
        assert proc.stdout.readline().startswith("listening on ")  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    folder = tmp_path / "xdg" / "retab"
    assert (folder / "emulator.sqlite3").exists() and (folder.stat().st_mode & 0o777) == 0o700


def test_binding_beyond_loopback_warns() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "retab_cli.emulator", "--host", "0.0.0.0", "--port", "0",
         "--db", ":memory:", "--control"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("listening on http://0.0.0.0:")
        assert proc.stderr.readline() == (
            "warning: listening on 0.0.0.0: other machines can reach the API and its control "
            "API (no auth)\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1GiB", 2**30), ("500MiB", 500 * 2**20), ("20MB", 20_000_000), ("1048576", 2**20), ("1.5 KiB", 1536)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, "--max-upload") == size
