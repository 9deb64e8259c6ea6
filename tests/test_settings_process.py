"""Settings as the real process meets them: key files and configs that are devices, FIFOs or
huge, keys that are not ASCII, config files of the wrong shape (issue 8 #13, issue 9).

Each process runs with its address space capped, so a tool that reads /dev/zero or a sparse
file to the end dies with MemoryError here instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import NO_SERVER, Result, run_isolated

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX files and limits")

MEMORY_CAP = 512 << 20  # the tool needs about 60 MiB; reading a device to the end needs more
BAD_KEY = "rt_test_\u201dQZQZ"  # a pasted curly quote; QZQZ must never be echoed
FILE_HINT = "hint: RETAB_API_KEY_FILE must name a regular file holding only the key"


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def retab(home: Path, *args: str, env: dict[str, str] | None = None,
          stdin: bytes = b"") -> Result:
    """`python -m retab_cli ARGS`, isolated (see `run_isolated`), its address space capped."""
    return run_isolated(home, *args, env=env, stdin=stdin, preexec_fn=_cap_memory)


def write_config(home: Path, text: str) -> Path:
    path = home / "config" / "config.toml"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


# ---- RETAB_API_KEY_FILE ---------------------------------------------------------------------


def test_key_file_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    result = retab(tmp_path, "partitions", "list", env={"RETAB_API_KEY_FILE": "/dev/zero"})
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: cannot read RETAB_API_KEY_FILE /dev/zero: not a regular file (a device)",
        FILE_HINT]


def test_key_file_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would wait forever
    result = retab(tmp_path, "partitions", "list", env={"RETAB_API_KEY_FILE": str(fifo)})
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        f"error: cannot read RETAB_API_KEY_FILE {fifo}: not a regular file (a FIFO)", FILE_HINT]


def test_huge_sparse_key_file_is_refused_after_a_few_kib(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    with key_file.open("wb") as fh:
        fh.truncate(8 << 30)  # 8 GiB of zeros, no disk used
    result = retab(tmp_path, "partitions", "list", env={"RETAB_API_KEY_FILE": str(key_file)})
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        f"error: the API key from RETAB_API_KEY_FILE ({key_file}) is longer than 4096 bytes; "
        "refusing to use it", FILE_HINT]


# ---- the config file ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_config_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path,
                                                                       kind: str) -> None:
    path = tmp_path / "config" / "config.toml"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    result = retab(tmp_path, "partitions", "list", env={"RETAB_API_KEY": "rt_test_fine_key"})
    assert result.exit_code == 2
    shown = "a FIFO" if kind == "fifo" else "a device"
    assert result.stderr.splitlines() == [
        f"error: cannot read config file {path}: not a regular file ({shown})"]


@pytest.mark.parametrize(("text", "where"), [
    ("profiles = 1\n", "profiles must be a table, not an integer"),
    ("[profiles]\ndefault = 5\n", "profiles.default must be a table, not an integer"),
    ('[profiles.default]\napi_key = ["rt_live_QZQZ"]\n',
     "profiles.default.api_key must be a string, not an array"),
    ("[profiles.default]\nbase_url = []\n", "profiles.default.base_url must be a string, not an array"),
])
@pytest.mark.parametrize("command", [("partitions", "list"), ("--profile", "default", "auth", "status"),
                                     ("auth", "logout")])
def test_odd_config_shapes_are_one_line_errors(tmp_path: Path, text: str, where: str,
                                               command: tuple[str, ...]) -> None:
    path = write_config(tmp_path, text)
    result = retab(tmp_path, *command, env={"RETAB_API_KEY": "rt_test_fine_key"})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: config file {path}: {where}",
                                          f"hint: fix or remove {path}"]
    assert path.read_text() == text


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[profiles.default]\n[profiles.staging]\n')
    result = retab(tmp_path, "--profile", "prod", "partitions", "list")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: no profile named 'prod' in {path}",
        "hint: known profiles: default, staging; to create it: retab auth login --profile prod"]


# ---- keys that are not printable ASCII ----------------------------------------------------------


@pytest.mark.parametrize("command", [("partitions", "list"), ("partitions", "get", "prtn_x"),
                                     ("auth", "status")])
def test_a_non_ascii_key_is_refused_without_echo_or_traceback(tmp_path: Path,
                                                              command: tuple[str, ...]) -> None:
    result = retab(tmp_path, *command, "-o", "json", env={"RETAB_API_KEY": BAD_KEY})
    assert result.exit_code == 4
    assert "Traceback" not in result.stderr
    assert "QZQZ" not in result.stdout + result.stderr
    message = ("the API key from RETAB_API_KEY contains whitespace, control or non-ASCII "
               "characters; refusing to send it")
    if command[0] == "auth":  # status reports it as its problem, on stdout
        assert Result(0, result.stdout, "").json()["problem"] == message
    else:
        assert result.stderr.splitlines()[0] == f"error: {message}"


def test_a_non_ascii_stored_key_is_refused_without_echo(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'[profiles.default]\napi_key = "{BAD_KEY}"\n'
                                  f'base_url = "{NO_SERVER}"\n')
    result = retab(tmp_path, "partitions", "list")
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        f"error: the API key from profile 'default' in {path} contains whitespace, control or "
        "non-ASCII characters; refusing to send it",
        "hint: run 'retab auth login --profile default'"]


def test_login_with_a_non_ascii_key_saves_nothing(tmp_path: Path) -> None:
    result = retab(tmp_path, "auth", "login", "--with-key", "--no-verify",
                   stdin=f"{BAD_KEY}\n".encode())
    assert result.exit_code == 4
    assert result.stderr.splitlines()[0] == (
        "error: the API key from stdin contains whitespace, control or non-ASCII characters; "
        "refusing to send it")
    assert "QZQZ" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "config").exists()


# ---- repairing a bad stored key ------------------------------------------------------------


def test_logout_removes_a_profile_whose_key_is_unusable(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'[profiles.default]\napi_key = "rt bad {BAD_KEY}"\n'
                                  f'base_url = "{NO_SERVER}"\n')
    result = retab(tmp_path, "auth", "logout")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"removed profile 'default' from {path}\n"
    assert path.read_text() == "[profiles]\n"


def test_login_replaces_a_stored_key_that_is_unusable(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[profiles.default]\napi_key = "rt bad key"\n'
                                  f'base_url = "{NO_SERVER}"\n')
    result = retab(tmp_path, "auth", "login", "--with-key", "--no-verify",
                   stdin=b"rt_test_goodkey123456\n")
    assert result.exit_code == 0, result.stderr
    assert 'api_key = "rt_test_goodkey123456"' in path.read_text()


# ---- the auth commands on top of these settings (issue 9) ------------------------------------




@pytest.mark.parametrize("where", ["after", "before"])
def test_login_creates_the_profile_it_names(tmp_path: Path, where: str) -> None:
    write_config(tmp_path, '[profiles.default]\napi_key = "rt_test_defaultkey1234"\n')
    args = (["auth", "login", "--with-key", "--no-verify", "--profile", "staging"]
            if where == "after" else ["--profile", "staging", "auth", "login", "--with-key",
                                      "--no-verify"])
    result = retab(tmp_path, *args, stdin=b"rt_test_stagingkey1234\n",
                   env={"RETAB_API_BASE_URL": "https://staging.retab.example"})
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "config" / "config.toml"
    assert result.stderr == (f"saved the key for https://staging.retab.example in profile "
                             f"'staging' ({path})\n")
    listed = retab(tmp_path, "auth", "list", "--json")
    assert [p["name"] for p in listed.json()["profiles"]] == ["default", "staging"]


def test_login_reads_a_few_kib_of_an_endless_stdin(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-m", "retab_cli", "auth", "login", "--with-key",
                               "--no-verify"], stdin=zeros, capture_output=True, timeout=60,
                              env={**os.environ, "RETAB_CONFIG_DIR": str(tmp_path / "config")},
                              preexec_fn=_cap_memory)
    assert done.returncode == 4
    assert done.stderr.decode().splitlines()[0] == (
        "error: the API key from stdin is longer than 4096 bytes; refusing to use it")


def test_list_switch_and_status_show_the_active_profile(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[profiles.default]\napi_key = "rt_test_defaultkey1234"\n'
                                  '[profiles.staging]\napi_key = "rt_test_stagingkey1234"\n'
                                  'base_url = "https://staging.retab.example"\n')
    switched = retab(tmp_path, "auth", "switch", "staging")
    assert switched.exit_code == 0, switched.stderr
    assert switched.stderr == f"active profile: 'staging' ({path})\n"
    listed = retab(tmp_path, "auth", "list", "--json")
    assert listed.json() == {
        "config_file": str(path), "active": "staging",
        "active_source": f"active_profile in {path}",
        "profiles": [
            {"name": "default", "base_url": "https://api.retab.com", "api_key": "rt_...1234",
             "active": False},
            {"name": "staging", "base_url": "https://staging.retab.example",
             "api_key": "rt_...1234", "active": True}]}
    table = retab(tmp_path, "auth", "list", "-o", "table")
    assert table.stdout.splitlines() == [
        "   NAME     BASE URL                       API KEY",
        "   default  https://api.retab.com          rt_...1234",
        "*  staging  https://staging.retab.example  rt_...1234"]
    assert table.stderr == f"active: staging (from active_profile in {path})\n"
    unknown = retab(tmp_path, "auth", "switch", "prod")
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines() == [
        f"error: no profile named 'prod' in {path}",
        "hint: known profiles: default, staging; to create it: retab auth login --profile prod"]


def test_status_without_a_key_says_not_set(tmp_path: Path) -> None:
    result = retab(tmp_path, "auth", "status", "-o", "table")
    assert result.exit_code == 4
    assert result.stdout.splitlines() == [
        "profile    default  (from default)",
        f"base url   {NO_SERVER}  (from RETAB_API_BASE_URL)",
        "api key    not set",
        f"config     {tmp_path / 'config' / 'config.toml'}",
        "key works  no: no API key configured"]
    assert result.stderr.splitlines() == [
        "error: no API key configured", "hint: run 'retab auth login', or set RETAB_API_KEY"]
    as_json = retab(tmp_path, "auth", "status", "-o", "jsonl")
    assert as_json.exit_code == 4
    assert len(as_json.stdout.splitlines()) == 1
    assert as_json.json()["problem"] == "no API key configured"
    assert json.loads(as_json.stderr.splitlines()[-1])["error"]["exit_code"] == 4


def test_login_with_an_empty_stdin_is_refused(tmp_path: Path) -> None:
    result = retab(tmp_path, "auth", "login", "--with-key", "--no-verify", stdin=b"")
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr.splitlines() == [
        "error: the API key from stdin is empty",
        "hint: pipe the key in on one line, e.g. retab auth login --with-key < key.txt"]
    assert not (tmp_path / "config" / "config.toml").exists()


def test_switch_warns_when_retab_profile_overrides_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[profiles.staging]\napi_key = "rt_test_stagingkey1234"\n')
    result = retab(tmp_path, "auth", "switch", "staging", env={"RETAB_PROFILE": "default"})
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"active profile: 'staging' ({path})",
        "warning: RETAB_PROFILE=default is set and takes precedence in this shell"]
    assert 'active_profile = "staging"' in path.read_text()


def test_list_without_a_config_file(tmp_path: Path) -> None:
    table = retab(tmp_path, "auth", "list", "-o", "table")
    assert (table.exit_code, table.stdout) == (0, "   NAME  BASE URL  API KEY\n")
    assert table.stderr == "active: default (from default)\n"
    listed = retab(tmp_path, "auth", "list")
    assert listed.json()["profiles"] == []
