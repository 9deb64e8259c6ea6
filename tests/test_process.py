"""The tool as a real process: exit codes, usage errors, closed pipes, version."""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time

import retab_cli

from cli_support import SAMPLE_PDF, Cli


def popen(cli: Cli, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The tool as a process with pipes on all three streams, pointed at the emulator."""
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}, **(env or {})}
    for name in [k for k, v in cli.env.items() if not v]:
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "retab_cli", *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_version(cli: Cli) -> None:
    result = cli.run("--version")
    assert result.exit_code == 0
    assert result.stdout == (f"retab-cli {retab_cli.__version__} (Python "
                             f"{platform.python_version()}; {platform.system()} "
                             f"{platform.machine()})\n")
    assert result.stderr == ""


def test_help_documents_exit_codes(cli: Cli) -> None:
    result = cli.run("--help")
    assert result.exit_code == 0
    for line in ("0  success", "3  a run ended failed", "4  authentication",
                 "8  still running", "130  interrupted"):
        assert line in result.stdout
    assert result.stderr == ""


def test_typer_usage_errors_are_one_line(cli: Cli) -> None:
    result = cli.run("partitions", "get")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: Missing argument 'ID'."
    assert lines[1] == "hint: run 'retab partitions get --help' for usage"
    unknown = cli.run("partitions", "frobnicate")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("error: No such command 'frobnicate'.")
    option = cli.run("partitions", "list", "--limit", "many", "--json")
    assert option.exit_code == 2
    error = json.loads(option.stderr.splitlines()[-1])["error"]
    assert error["type"] == "usage" and error["exit_code"] == 2
    assert "Traceback" not in option.stderr


def test_missing_key_as_a_process(cli: Cli) -> None:
    result = cli.run("partitions", "list", env={"RETAB_API_KEY": ""})
    assert result.exit_code == 4
    assert result.stderr.startswith("error: no API key configured\n")


def test_closed_stdout_ends_a_read_only_command_quietly(cli: Cli) -> None:
    cli.emu.seed(300)
    proc = popen(cli, "partitions", "list", "--all", "-q")
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    code = proc.wait(timeout=30)
    stderr = proc.stderr.read().decode()
    assert first.startswith(b"prtn_")
    assert code == 0, stderr
    assert stderr == ""


def test_closed_stdout_stops_a_bulk_cancel_and_says_what_was_done(cli: Cli) -> None:
    cli.emu.next_create("stuck", times=40)
    ids = [cli("partitions", "create", str(SAMPLE_PDF), "--key", "invoice number",
               "--background", "-q").stdout.strip() for _ in range(40)]
    # A slow budget keeps most cancels unsent when the reader goes away.
    proc = popen(cli, "partitions", "cancel", "-", "--yes", "-q", env={"RETAB_MAX_RPS": "4"})
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write("\n".join(ids).encode())
    proc.stdin.close()
    first = proc.stdout.readline().decode().strip()
    proc.stdout.close()
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    assert first == ids[0]
    assert code == 1, stderr
    assert "stdout was closed: cancelled" in stderr
    assert "  cancelled (" in stderr and ids[0] in stderr.split("  cancelled (")[1].split("\n")[0]
    assert "Traceback" not in stderr
    cancels = [r for r in cli.emu.requests() if r["path"].endswith("/cancel")]
    assert 1 <= len(cancels) < 40


def test_interrupted_create_prints_a_safe_retry(cli: Cli) -> None:
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", delay=5)
    proc = popen(cli, "partitions", "create", str(SAMPLE_PDF), "--key", "invoice number")
    assert proc.stdout and proc.stderr
    time.sleep(1.5)  # start-up and the request under way, held by the emulator
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    stderr = proc.stderr.read().decode()
    assert code == 130, stderr
    assert proc.stdout.read() == b""
    assert "interrupted before every create was answered" in stderr
    retry = stderr.splitlines()[-1].strip()
    assert retry.startswith(f"retab partitions create {SAMPLE_PDF} --key 'invoice number'")
    key = retry.split("--idempotency-key ")[1]
    assert len(key) == 32
    # The printed command is safe to run more than once: one run, whatever happened.
    args = shlex.split(retry)[1:]
    first, again = cli(*args, "-q"), cli(*args, "-q")
    assert first.exit_code == 0 and again.exit_code == 0, first.stderr + again.stderr
    assert first.stdout == again.stdout
    assert first.stdout.startswith("prtn_")


def answer_prompt(cli: Cli, args: list[str], answer: bytes) -> tuple[int, str, str]:
    """Run with a terminal on stdin (a pty) and type `answer` at the confirmation prompt."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}}
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", *args], env=env, stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    os.write(master, answer)
    out, err = proc.communicate(timeout=30)
    os.close(master)
    return proc.returncode, out.decode(), err.decode()


def test_declining_the_delete_prompt_deletes_nothing(cli: Cli) -> None:
    run_id = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "-q").stdout.strip()
    code, out, err = answer_prompt(cli, ["partitions", "delete", run_id], b"n\n")
    assert code == 1
    assert out == ""
    assert "Delete 1 partition(s) for good? [y/N]" in err
    assert "error: nothing deleted" in err
    assert cli("partitions", "get", run_id, "-q").exit_code == 0
    code, out, err = answer_prompt(cli, ["partitions", "delete", run_id, "-q"], b"y\n")
    assert code == 0, err
    assert out == f"{run_id}\n"
    assert cli("partitions", "get", run_id, "-q").exit_code == 6
