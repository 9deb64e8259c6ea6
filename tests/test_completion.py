"""Shell completion: the scripts are current, the values offered, recent ids per API and
profile, and what real bash, zsh and fish do with them (issue 8 #14, issue 9)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retab_cli import recent
from retab_cli.commands.completion import SHELLS, script
from retab_cli.settings import GlobalOptions, Settings, resolve

from cli_support import SAMPLE_PDF, Cli, json_stub
from emulator_support import wait_until

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_ID = "$(touch PWNED)"


@pytest.mark.parametrize("shell", SHELLS)
def test_shipped_scripts_are_current(shell: str) -> None:
    shipped = (ROOT / "completions" / f"retab.{shell}").read_text()
    assert shipped == script(shell).rstrip("\n") + "\n"


# ---- the recent-ids cache ------------------------------------------------------------------


def settings(tmp_path: Path, base_url: str = "https://api.retab.com",
             profile: str = "default") -> Settings:
    return resolve(GlobalOptions(base_url=base_url),
                   {"RETAB_CONFIG_DIR": str(tmp_path / "config"), "RETAB_PROFILE": profile})


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "retab" / "recent"


def test_only_ids_that_pass_the_id_rule_are_kept(tmp_path: Path, cache: Path) -> None:
    here = settings(tmp_path)
    recent.remember(["prtn_ok", HOSTILE_ID, "prtn_\u00e9", "prtn_a\nb", "x" * 129, None, 7,
                     "prtn_ok", "prtn_two"], here)
    assert recent.recent(here) == ["prtn_ok", "prtn_two"]
    (path,) = cache.iterdir()
    assert path.read_bytes() == b"prtn_ok\nprtn_two\n"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    # whatever else lands in the file is never offered
    path.write_bytes(b"prtn_new\n$(touch PWNED)\nprtn_\xc3\xa9\n\xff\xfe\nprtn_ok\n")
    assert recent.complete_ids(here, "") == ["prtn_new", "prtn_ok"]


def test_ids_are_kept_per_api_and_profile(tmp_path: Path, cache: Path) -> None:
    production = settings(tmp_path)
    recent.remember(["prtn_prod"], production)
    recent.remember(["prtn_stage"], settings(tmp_path, "https://staging.retab.example"))
    recent.remember(["prtn_other"], settings(tmp_path, profile="other"))
    assert recent.recent(production) == ["prtn_prod"]
    # the same API however its URL is spelt
    assert recent.recent(settings(tmp_path, "HTTPS://API.retab.com/v1/")) == ["prtn_prod"]
    assert recent.recent(settings(tmp_path, profile="other")) == ["prtn_other"]
    assert len(list(cache.iterdir())) == 3


def test_newest_first_bounded_and_forgotten(tmp_path: Path, cache: Path) -> None:
    here = settings(tmp_path)
    recent.remember([f"prtn_{n:04d}" for n in range(recent.KEEP)], here)
    recent.remember(["prtn_new", "prtn_0001"], here)
    ids = recent.recent(here)
    assert ids[:3] == ["prtn_new", "prtn_0001", "prtn_0000"] and len(ids) == recent.KEEP
    recent.forget(["prtn_0001", "prtn_unknown"], here)
    assert "prtn_0001" not in recent.recent(here)
    assert recent.complete_ids(here, "prtn_n") == ["prtn_new"]


def test_a_cache_that_cannot_be_written_is_ignored(tmp_path: Path, cache: Path) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the directory should be")
    here = settings(tmp_path)
    recent.remember(["prtn_ok"], here)
    recent.forget(["prtn_ok"], here)
    assert recent.recent(here) == []


class _FakeClient:
    async def __aenter__(self) -> _FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def list(self, params: dict[str, Any]) -> Any:
        from retab_cli.client import ApiResult

        return ApiResult({"data": [{"id": "prtn_api"}, {"id": HOSTILE_ID}, {"id": 5}, "x"],
                          "list_metadata": {}}, 200)


def test_the_budget_bounds_the_request_only(tmp_path: Path, cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing and building the client happen before the clock starts (a slow machine
    took 216-305 ms for them, leaving the request nothing of its 0.4 s)."""
    timed: list[tuple[str, float]] = []
    real_wait_for = asyncio.wait_for

    async def wait_for(awaitable: Any, timeout: float) -> Any:
        timed.append((awaitable.__qualname__, timeout))
        return await real_wait_for(awaitable, timeout)

    built: list[dict[str, Any]] = []

    def open_client(settings: Settings, **options: Any) -> _FakeClient:
        built.append(options)
        return _FakeClient()

    monkeypatch.setattr(asyncio, "wait_for", wait_for)
    monkeypatch.setattr("retab_cli.connect.open_client", open_client)
    here = settings(tmp_path)
    assert recent.complete_ids(here, "prtn_") == ["prtn_api"]
    assert timed == [("_FakeClient.list", 0.4)]
    assert built == [{"rate": 0, "max_attempts": 1, "request_timeout": 0.4}]
    assert recent.recent(here) == ["prtn_api"]
    monkeypatch.setenv("RETAB_COMPLETION_TIMEOUT", "5")
    recent.fetch_recent(here)
    assert timed[-1] == ("_FakeClient.list", 5.0)


# ---- through the tool ------------------------------------------------------------------------


def complete(cli: Cli, words: str, env: dict[str, str] | None = None) -> list[str]:
    """Ask the tool as bash's script does (a real process)."""
    merged = {**os.environ, **{k: v for k, v in cli.env.items() if v}, **(env or {})}
    merged.update(_RETAB_COMPLETE="complete_bash", COMP_WORDS=words,
                  COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    merged.setdefault("RETAB_COMPLETION_TIMEOUT", "10")  # a loaded machine is not the subject
    result = subprocess.run([sys.executable, "-m", "retab_cli"], env=merged,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def create(cli: Cli, *env: str) -> str:
    extra = dict(e.split("=", 1) for e in env)
    made = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "-q", env=extra)
    assert made.exit_code == 0, made.stderr
    return made.stdout.strip()


BAD_KEY = {"RETAB_API_KEY": "rt_test_bad_key"}  # the API cannot answer: the cache alone


def test_ids_from_the_cache_then_from_the_api(cli: Cli) -> None:
    made = create(cli)
    assert complete(cli, "retab partitions get prtn_") == [made]  # written by create
    shutil.rmtree(cli.home / "cache")
    assert complete(cli, "retab partitions get prtn_", BAD_KEY) == []
    assert complete(cli, "retab partitions get prtn_") == [made]  # a miss asks the API
    assert complete(cli, "retab partitions get prtn_", BAD_KEY) == [made]  # and remembers


def test_ids_are_offered_for_the_api_and_profile_in_use(cli: Cli) -> None:
    made = create(cli)
    other_spelling = cli.emu.url.replace("127.0.0.1", "localhost")
    assert complete(cli, "retab partitions get ", BAD_KEY) == [made]
    assert complete(cli, "retab partitions get ", {**BAD_KEY, "RETAB_API_BASE_URL":
                                                   other_spelling}) == []
    assert complete(cli, f"retab --base-url {other_spelling} partitions get ", BAD_KEY) == []
    assert complete(cli, f"retab partitions get --base-url {cli.emu.url} ", BAD_KEY) == [made]
    assert complete(cli, "retab partitions get ", {**BAD_KEY, "RETAB_PROFILE": "ci"}) == []


def test_a_404_or_a_delete_forgets_an_id(cli: Cli) -> None:
    gone, deleted, kept = create(cli), create(cli), create(cli)
    request = urllib.request.Request(f"{cli.emu.url}/v1/partitions/{gone}", method="DELETE",
                                     headers={"Authorization": f"Bearer {cli.emu.api_key}"})
    urllib.request.urlopen(request, timeout=10).close()  # deleted elsewhere
    assert cli("partitions", "get", gone).exit_code == 6
    assert cli("partitions", "delete", deleted, "--yes").exit_code == 0
    assert complete(cli, "retab partitions get ", BAD_KEY) == [kept]


def test_values_of_options_and_arguments(cli: Cli) -> None:
    assert complete(cli, "retab partitions c") == ["create", "cancel"]
    assert complete(cli, "retab partitions list --status ") == [
        "pending", "queued", "in_progress", "completed", "failed", "cancelled"]
    assert complete(cli, "retab partitions watch -o j") == ["json", "jsonl"]
    assert complete(cli, "retab partitions list --order ") == ["asc", "desc"]
    assert complete(cli, "retab partitions create --model retab-") == [
        "retab-micro", "retab-small", "retab-large"]
    assert complete(cli, "retab completion ") == ["bash", "zsh", "fish"]
    assert complete(cli, "retab --color a") == ["auto", "always"]


def test_profile_names_for_switch_and_profile(cli: Cli) -> None:
    config = cli.home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[profiles.staging]\napi_key = "rt_test_k123456789"\n'
                      '[profiles."odd\\nname"]\n[profiles.stage2]\n')
    assert complete(cli, "retab auth switch st") == ["staging", "stage2"]
    assert complete(cli, "retab --profile ") == ["staging", "stage2"]
    assert complete(cli, "retab partitions list --profile st") == ["staging", "stage2"]


# ---- a hostile server's ids --------------------------------------------------------------------

HOSTILE_PAGE: dict[str, Any] = {"data": [{"id": HOSTILE_ID, "status": "completed"},
                         {"id": "prtn_\u00e9t\u00e9", "status": "completed"},
                         {"id": "prtn_fine", "status": "completed"}],
                "list_metadata": {"before": None, "after": None}}


@pytest.fixture
def hostile_server() -> Iterator[str]:
    with json_stub(HOSTILE_PAGE) as url:
        yield url


def test_a_hostile_list_is_shown_but_only_valid_ids_are_offered(cli: Cli,
                                                                hostile_server: str) -> None:
    env = {"RETAB_API_BASE_URL": hostile_server}
    listed = cli.run("partitions", "list", "-o", "json", env=env)
    assert listed.exit_code == 0, listed.stderr
    assert [r["id"] for r in listed.json()] == [r["id"] for r in HOSTILE_PAGE["data"]]
    assert complete(cli, "retab partitions get ", env) == ["prtn_fine"]
    shutil.rmtree(cli.home / "cache")
    assert complete(cli, "retab partitions get ", env) == ["prtn_fine"]  # from the API


# ---- real shells -----------------------------------------------------------------------------


@pytest.fixture
def on_path(tmp_path: Path) -> Path:
    """A `retab` on PATH that runs this checkout with this interpreter."""
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "retab"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m retab_cli "$@"\n')
    wrapper.chmod(0o755)
    return folder


def shell_env(cli: Cli, on_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}, **(extra or {})}
    env["PATH"] = f"{on_path}{os.pathsep}{env['PATH']}"
    env["RETAB_COMPLETION_TIMEOUT"] = "10"
    env["HOME"] = str(cli.home)  # no user's shell configuration
    return env


def bash_complete(env: dict[str, str], line: str) -> list[str]:
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    program = (f"source {shlex.quote(str(ROOT / 'completions/retab.bash'))}\n"
               f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
               f"COMP_CWORD={len(words) - 1}\n"
               "_retab_completion retab\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]  # printf prints one blank for none


def zsh_complete(env: dict[str, str], line: str) -> list[str]:
    """The zsh script in real zsh; the completion system's functions stand in as printers
    (the insertion itself is checked in a terminal below)."""
    program = ("compdef() { : }\n"
               '_describe() { local name=$2; print -rl -- "${(@P)name}" }\n'
               "_files() { print -r -- __files__ }\n"
               f"source {shlex.quote(str(ROOT / 'completions/retab.zsh'))}\n"
               'words=(${(z)LINE}); [[ $LINE == *" " ]] && words+=("")\n'
               "CURRENT=${#words}\n"
               "_retab_completion\n")
    done = subprocess.run(["zsh", "-f", "-c", program], env={**env, "LINE": line},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [entry.split(":", 1)[0] for entry in done.stdout.splitlines()]


def fish_complete(env: dict[str, str], line: str) -> list[str]:
    program = (f"source {shlex.quote(str(ROOT / 'completions/retab.fish'))}\n"
               f"complete -C {shlex.quote(line)}\n")
    done = subprocess.run(["fish", "--no-config", "-c", program], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [entry.split("\t", 1)[0] for entry in done.stdout.splitlines()]


SHELL_COMPLETERS = {"bash": bash_complete, "zsh": zsh_complete, "fish": fish_complete}


def needs(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed (.ci/run installs bash, zsh and fish)")


@pytest.mark.parametrize("shell", SHELLS)
def test_values_in_real_shells(cli: Cli, on_path: Path, shell: str) -> None:
    needs(shell)
    made = create(cli)
    env = shell_env(cli, on_path, BAD_KEY)
    ask = SHELL_COMPLETERS[shell]
    assert sorted(ask(env, "retab partitions list --status c")) == ["cancelled", "completed"]
    assert ask(env, "retab partitions list -o t") == ["table"]
    assert ask(env, "retab partitions list --order ") == ["asc", "desc"]
    assert ask(env, "retab partitions get ") == [made]
    elsewhere = shell_env(cli, on_path, {**BAD_KEY, "RETAB_API_BASE_URL":
                                         cli.emu.url.replace("127.0.0.1", "localhost")})
    # nothing from the other API's cache (the shells may fall back to file names)
    assert [v for v in ask(elsewhere, "retab partitions get ") if v.startswith("prtn_")] == []


# ---- what the shells insert (a terminal: tmux) -------------------------------------------------

PROFILE = "we$(touch PWNED)"
SETUP = {
    "bash": (["bash", "--norc", "--noprofile", "-i"],
             "PS1='$ '; source {script}"),
    "zsh": (["zsh", "-f", "-i"],
            "PROMPT='$ '; autoload -Uz compinit; compinit -u -D; source {script}"),
    "fish": (["fish", "--no-config", "-i"],
             "function fish_prompt; echo '$ '; end; source {script}"),
}


class Terminal:
    """A shell in a tmux session of its own (its own server socket, no tmux config)."""

    def __init__(self, folder: Path, command: list[str], env: dict[str, str]) -> None:
        self.socket = str(folder / "tmux.sock")
        self.tmux("new-session", "-d", "-x", "160", "-y", "40", "-c", str(folder), *command,
                  env=env)

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(["tmux", "-f", "/dev/null", "-S", self.socket, *args], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def type(self, text: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", "-l", text)
        if keys:
            self.tmux("send-keys", "-t", "0", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "0")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        shown = wait_until(lambda: text in self.screen(), timeout=timeout)
        assert shown, f"{text!r} never appeared:\n{self.screen()}"
        return self.screen()

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True,
                       timeout=30)


@pytest.mark.parametrize("shell", SHELLS)
def test_shells_insert_values_quoted(cli: Cli, on_path: Path, tmp_path: Path,
                                     shell: str) -> None:
    """A value holding shell syntax is inserted as a word: running the completed line
    switches to that profile and runs nothing."""
    needs(shell)
    needs("tmux")
    config = cli.home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.{json.dumps(PROFILE)}]\napi_key = "rt_test_k123456789"\n')
    folder = tmp_path / "term"
    folder.mkdir()
    command, setup = SETUP[shell]
    terminal = Terminal(folder, command, shell_env(cli, on_path))
    try:
        terminal.type(setup.format(script=ROOT / "completions" / f"retab.{shell}"), "Enter")
        terminal.type("clear", "Enter")
        terminal.type("retab auth switch we", "Tab")
        terminal.wait_for("touch")
        terminal.type("", "Enter")
        terminal.wait_for("active profile:")
    finally:
        terminal.close()
    assert not (folder / "PWNED").exists()
    assert f"active_profile = {json.dumps(PROFILE)}" in config.read_text()
