"""The command boundary on its own: @command, the client factory, interrupts in the loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from retab_cli.budget import DEFAULT_RATE
from retab_cli.client import MAX_ATTEMPTS, REQUEST_TIMEOUT, Client
from retab_cli.commands._common import command
from retab_cli.connect import open_client
from retab_cli.errors import AuthError, UsageError
from retab_cli.running import Interrupted, run_interruptible
from retab_cli.settings import GlobalOptions, Settings, resolve

from cli_support import Warnings

if TYPE_CHECKING:
    from retab_cli.session import Env


# ---- @command -------------------------------------------------------------------------


@dataclass(frozen=True)
class Flags:
    size: Annotated[int, typer.Option(metavar="N", help="A size.")] = 1
    loud: Annotated[bool, typer.Option("--loud", help="Say it loudly.")] = False


calls: list[tuple[str, str, Flags]] = []


@command(options=("output", "json"))
def probe(env: Env, name: Annotated[str, typer.Argument(help="A name.")] = "x", *,
          flags: Flags) -> int:
    """Probe the boundary."""
    calls.append((env.renderer.mode, name, flags))
    if name == "bad":
        raise UsageError("bad name", hint="try another")
    return 3


APP = typer.Typer(rich_markup_mode=None)
APP.command()(probe)


def invoke(*args: str) -> Any:
    calls.clear()
    return CliRunner().invoke(APP, list(args), env={"RETAB_OUTPUT": "", "COLUMNS": "100"})


def test_a_bundle_arrives_as_one_object_and_the_code_is_the_exit_status() -> None:
    result = invoke("ann", "--size", "5", "--loud", "--json")
    assert result.exit_code == 3
    assert calls == [("json", "ann", Flags(size=5, loud=True))]
    assert invoke().exit_code == 3
    assert calls == [("json", "x", Flags())]  # not a terminal: JSON by default


def test_an_error_while_parsing_is_one_line_and_its_exit_code() -> None:
    result = invoke("bad", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:2] == ["error: bad name", "hint: try another"]
    assert json.loads(lines[2])["error"]["type"] == "usage"


def test_an_output_conflict_is_refused_before_the_command_runs() -> None:
    result = invoke("ann", "-o", "table", "--json")
    assert result.exit_code == 2
    assert "conflicting output options" in result.stderr
    assert calls == []


def test_help_lists_the_commands_options_then_the_chosen_output_options() -> None:
    text = invoke("--help").stdout
    names = [n for n in ("--size N", "--loud", "-o, --output MODE", "--json") if n in text]
    assert names == ["--size N", "--loud", "-o, --output MODE", "--json"]
    assert [text.index(n) for n in names] == sorted(text.index(n) for n in names)
    assert "--quiet" not in text and "--fields" not in text
    assert "Probe the boundary." in text


# ---- the client factory ---------------------------------------------------------------


def settings(tmp_path: Path, **env: str) -> Settings:
    base = {"RETAB_API_KEY": "rt_test_factory", "RETAB_API_BASE_URL": "http://127.0.0.1:9",
            "RETAB_CONFIG_DIR": str(tmp_path)}
    return resolve(GlobalOptions(), {**base, **env})


def closed(client: Client) -> Client:
    asyncio.run(client.aclose())
    return client


def test_the_factory_takes_the_settings_and_the_client_defaults(tmp_path: Path) -> None:
    client = closed(open_client(settings(tmp_path)))
    assert client.base_url == "http://127.0.0.1:9"
    assert client.budget.configured_rate == DEFAULT_RATE
    assert (client.max_attempts, client.request_timeout) == (MAX_ATTEMPTS, REQUEST_TIMEOUT)
    assert closed(open_client(settings(tmp_path, RETAB_MAX_RPS="2"))).budget.configured_rate == 2


def test_each_caller_may_pass_its_own_budget_and_attempts(tmp_path: Path) -> None:
    client = closed(open_client(settings(tmp_path), rate=0, max_attempts=1, request_timeout=0.4,
                                key="rt_other", base_url="https://api.example"))
    assert client.budget.configured_rate == 0
    assert (client.max_attempts, client.request_timeout) == (1, 0.4)
    assert client.base_url == "https://api.example"


def test_the_factory_checks_the_base_url_and_needs_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warnings: Warnings
) -> None:
    plain = settings(tmp_path, RETAB_API_BASE_URL="http://api.example")
    with pytest.raises(UsageError, match="refusing plain http"):
        open_client(plain)
    monkeypatch.setenv("RETAB_ALLOW_INSECURE_HTTP", "1")
    assert closed(open_client(plain, notice=warnings)).base_url == "http://api.example"
    assert warnings == ["warning: sending the API key over plain http to api.example"]
    with pytest.raises(AuthError):
        open_client(settings(tmp_path, RETAB_API_KEY=""))


# ---- interrupts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_main_then_awaits_the_hook_in_the_same_loop(signum: int,
                                                                      code: int) -> None:
    loops: list[object] = []
    seen: list[object] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        try:
            os.kill(os.getpid(), signum)
            await asyncio.Event().wait()  # until cancelled by the signal
        finally:
            seen.append("main cleaned up")
        return 0

    async def hook(got: int) -> None:
        loops.append(asyncio.get_running_loop())
        try:  # the hook can still bound its own work, as --cancel-on-interrupt does
            async with asyncio.timeout(0):
                await asyncio.Event().wait()
        except TimeoutError:
            seen.append(("hook", got))

    with pytest.raises(Interrupted) as stop:
        run_interruptible(main, on_interrupt=hook)
    assert stop.value.code == code
    assert seen == ["main cleaned up", ("hook", code)]
    assert loops[0] is loops[1]


def test_without_a_signal_the_result_and_errors_pass_through() -> None:
    async def answer() -> int:
        return 7

    async def fail() -> int:
        raise UsageError("no")

    assert run_interruptible(answer) == 7
    with pytest.raises(UsageError):
        run_interruptible(fail)


def test_the_command_layer_loads_no_engine_until_a_command_runs() -> None:
    """`--help` pays for the command declarations only (docs/design.md §7)."""
    import subprocess
    import sys

    code = ("import sys, retab_cli.app; "
            "print(' '.join(m for m in sys.modules if m.startswith(('retab_cli', 'asyncio'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = set(done.stdout.split())
    engines = {"retab_cli.session", "retab_cli.bulk", "retab_cli.paging", "retab_cli.creating",
               "retab_cli.chunks", "retab_cli.watch_ui", "retab_cli.connect", "retab_cli.watch",
               "retab_cli.client", "asyncio"}
    assert "retab_cli.commands.create" in loaded
    assert loaded & engines == set()


# ---- ids from stdin ------------------------------------------------------------------------


def test_ids_from_a_stdin_that_is_not_text_are_a_usage_error() -> None:
    import io

    from retab_cli.session import read_ids

    binary = io.TextIOWrapper(io.BytesIO(b"%PDF-1.4\n\xff\xfe\x00binary"), encoding="utf-8")
    with pytest.raises(UsageError, match=r"^'-' reads ids from stdin, but stdin is not text"):
        read_ids(["-"], stdin=binary)


# ---- the boundary when stdout goes away ------------------------------------------------------


def test_a_closed_stdout_keeps_the_code_of_an_error_already_shown() -> None:
    from retab_cli.errors import NotFoundError
    from retab_cli.session import Env

    env = Env()

    async def main() -> int:
        env.renderer.error(NotFoundError("Partition not found", partition_id="prtn_x"))
        raise BrokenPipeError

    assert env.run(main) == 6
    assert Env().run(_broken) == 0  # nothing shown before: a read-only command's quiet 0


async def _broken() -> int:
    raise BrokenPipeError
