"""Nothing lost in bulk work, through the real process: an interrupted or cut-off
`create`, `cancel` or `delete` says exactly what was done, what was in flight and what
was never sent, and prints every answer it got (issue 8, items 7-9)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import SAMPLE_PDF, Cli
from emulator_support import Emulator, start_emulator, wait_until

SLOW = 60.0  # seconds the emulator holds a "slow" request: far beyond any test


@pytest.fixture
def own_emu() -> Iterator[Emulator]:
    """An emulator of this test's own: requests it holds for SLOW seconds must not reach
    the shared one's later tests. Killed, not stopped: nothing held is waited for."""
    emu = start_emulator()
    try:
        yield emu
    finally:
        assert emu.proc is not None
        emu.proc.kill()
        emu.proc.wait()


class Proc:
    """The tool as a process, its stderr read line by line as it comes."""

    def __init__(self, cli: Cli, *args: str, env: dict[str, str] | None = None,
                 stdin: bytes | None = None) -> None:
        merged = {**os.environ, **{k: v for k, v in cli.env.items() if v}, **(env or {})}
        for name in [k for k, v in cli.env.items() if not v]:
            merged.pop(name, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "retab_cli", *args], env=merged,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert self.proc.stdin and self.proc.stderr
        if stdin is not None:
            self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        self.err_lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr
        for raw in self.proc.stderr:
            self.err_lines.append(raw.decode())

    def count(self, pattern: str) -> int:
        return sum(1 for line in list(self.err_lines) if re.search(pattern, line))

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """Exit code, the rest of stdout (unless closed), all of stderr."""
        assert self.proc.stdout
        out = "" if self.proc.stdout.closed else self.proc.stdout.read().decode()
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        return code, out, "".join(self.err_lines)


ANSWERED = r"^debug: POST \S+/v1/partitions -> 20\d"


def documents(folder: Path, count: int) -> list[str]:
    paths = []
    for n in range(count):
        path = folder / f"doc{n}.txt"
        path.write_text(f"Invoice number: INV-{n:03}\n")
        paths.append(str(path))
    return paths


def hold_creates(emu: Emulator, pattern: str) -> None:
    """Answer the creates in arrival order: `f` at once, `s` held for SLOW seconds."""
    for kind in pattern:
        emu.add_fault(method="POST", path="^/v1/partitions$", delay=SLOW if kind == "s" else 0)


def server_ids(cli: Cli) -> set[str]:
    listed = cli("partitions", "list", "--all", "-q")
    assert listed.exit_code == 0, listed.stderr
    return set(listed.stdout.split())


def stdout_ids(mode: str, out: str) -> list[str]:
    if mode == "-q":
        return out.split()
    if mode == "--json":
        return [run["id"] for run in json.loads(out)]
    return [json.loads(line)["id"] for line in out.splitlines()]


# ---- item 7: an interrupted multi-file create ------------------------------------------


@pytest.mark.parametrize(("mode", "how"), [
    ("-q", "--background"), ("--json", "--background"), ("-ojsonl", "--background"),
    ("-q", "--wait"), ("-ojsonl", "--wait"), ("--json", "--no-overlap")])  # the last: sync
def test_interrupted_create_prints_every_answered_run_and_the_safe_retries(
        own_emu: Emulator, tmp_path: Path, mode: str, how: str) -> None:
    cli = Cli(own_emu, tmp_path)
    files = documents(tmp_path, 10)
    # 4 at a time: arrivals 1, 2, 4, 5 are answered; 3, 6, 7, 8 are held (in flight when
    # interrupted); 9 and 10 wait for a free slot and are never sent.
    hold_creates(own_emu, "ffsffsss")
    proc = Proc(cli, "--debug", "partitions", "create", *files, "--key", "invoice number",
                how, mode)
    wait_until(lambda: proc.count(ANSWERED) == 4, timeout=30)
    proc.proc.send_signal(signal.SIGINT)
    code, out, err = proc.finish()
    assert code == 130, err
    assert "Traceback" not in err
    printed = stdout_ids(mode, out)
    # Every run the server holds was printed: nothing answered is lost.
    assert len(printed) == 4 and set(printed) == server_ids(cli)
    assert "interrupted: created 4 of 10 run(s); 4 outcome unknown (in flight); 2 not sent" in err
    lines = [line.strip() for line in err.splitlines()]
    retries = [line for line in lines if line.startswith("retab partitions create")]
    assert len(retries) == 6
    assert lines.index("# outcome unknown, in flight (4)") < lines.index("# not sent (2)")
    keys = [line.split("--idempotency-key ")[1] for line in retries]
    assert len(set(keys)) == 6 and all(len(k) == 32 for k in keys)
    assert all(f" {how} " in retry for retry in retries)
    # Each retry is safe to run twice: 10 runs in all, one per document.
    again = set()
    for retry in retries * 2:
        result = cli(*shlex.split(retry)[1:], "-q")
        assert result.exit_code == 0, result.stderr
        again.add(result.stdout.strip())
    assert len(again) == 6 and not again & set(printed)
    assert server_ids(cli) == again | set(printed)
    sent = [r for r in own_emu.requests() if r["method"] == "POST"]
    assert sorted({r["body"]["document"]["filename"] for r in sent}) == sorted(
        Path(f).name for f in files)


# ---- item 8: an interrupted or cut-off cancel or delete -----------------------------------

BULK = {"cancel": ("cancelled", "POST", r"^/v1/partitions/[^/]+/cancel$"),
        "delete": ("deleted", "DELETE", r"^/v1/partitions/[^/]+$")}


def read_sets(path: str) -> tuple[dict[str, list[str]], list[str]]:
    """The sets of a stopped-bulk file (label -> ids), and its plain (still to do) lines."""
    sets: dict[str, list[str]] = {}
    todo: list[str] = []
    label = ""
    for line in Path(path).read_text().splitlines():
        header = re.fullmatch(r"# (.+) \((\d+)\)", line)
        if header:
            label = header.group(1)
            sets[label] = []
        elif line.startswith("# prtn_") or line.startswith("prtn_"):
            sets[label].append(line.removeprefix("# "))
            if not line.startswith("#"):
                todo.append(line)
    return sets, todo


def handled(emu: Emulator, method: str, path: str) -> set[str]:
    """The ids whose request the server answered (the log is written once answered)."""
    return {r["path"].split("/")[3] for r in emu.requests()
            if r["method"] == method and re.search(path, r["path"]) and 200 <= (r["status"] or 0) < 300}


@pytest.mark.parametrize("stop", ["interrupt", "closed stdout"])
@pytest.mark.parametrize("verb", ["cancel", "delete"])
def test_a_stopped_bulk_command_reports_done_in_flight_and_not_sent(
        own_emu: Emulator, tmp_path: Path, verb: str, stop: str) -> None:
    cli = Cli(own_emu, tmp_path)
    own_emu.seed(60)
    ids = cli("partitions", "list", "--all", "-q").stdout.split()
    done_word, method, path = BULK[verb]
    # 16 at a time: the first 3 answered at once (faults on their paths, matched before
    # the general one), the next 16 held (in flight when stopped), 41 never sent.
    for fast in ids[:3]:
        own_emu.add_fault(method=method, path=path.replace("[^/]+", fast), delay=0)
    own_emu.add_fault(method=method, path=path, delay=SLOW, times=57)
    proc = Proc(cli, "partitions", verb, "-", "--yes", "-q", stdin="\n".join(ids).encode())
    assert proc.proc.stdout
    if stop == "interrupt":
        first = [proc.proc.stdout.readline().decode().strip() for _ in range(3)]
        proc.proc.send_signal(signal.SIGINT)
    else:  # closed before the first answer: that write fails (a later one could wait 60 s)
        first = []
        proc.proc.stdout.close()
    code, out, err = proc.finish()
    assert code == (130 if stop == "interrupt" else 1), err
    assert "Traceback" not in err
    why = "interrupted" if stop == "interrupt" else "stdout was closed"
    saved = re.search(rf"the full lists: (\S+); to finish, retab partitions {verb} - --yes < ",
                      err)
    assert saved, err
    assert os.stat(saved.group(1)).st_mode & 0o777 == 0o600
    sets, todo = read_sets(saved.group(1))
    done, unknown, unsent = (sets[done_word], sets["outcome unknown, in flight"],
                             sets["not sent"])
    assert sets[f"not {done_word}"] == []
    assert f"{why}: {done_word} {len(done)} of 60" in err
    assert sorted(done + unknown + unsent) == sorted(ids)
    assert first == ids[:len(first)] and set(first) <= set(done)
    assert len(unsent) >= 41 and todo == unknown + unsent
    # What the tool says matches what the server did.
    server = wait_until(lambda: (s := handled(own_emu, method, path)) >= set(done) and s)
    assert server <= set(done) | set(unknown)
    assert not server & set(unsent)
    if stop == "interrupt":
        assert (done, unknown, unsent) == (ids[:3], ids[3:19], ids[19:])
        assert out.split() == []
    assert f"  not sent ({len(unsent)}): " + " ".join(unsent[:20]) + " …" in err
    # The file feeds the rest back in: every id then handled (a delete of one already
    # deleted while in flight is a 404, hence 6).
    own_emu.control("DELETE", "faults")
    rest = cli("partitions", verb, "-", "--yes", "-q", input=Path(saved.group(1)).read_text())
    assert rest.exit_code in (0, 6), rest.stderr
    assert handled(own_emu, method, path) == set(ids)


# ---- item 9: one bad reply is that document's failure only --------------------------------


@pytest.mark.parametrize("mode", [["--background", "--json"], ["-q"], ["--wait", "-q"]])
def test_a_create_answered_with_something_else_fails_alone(cli: Cli, tmp_path: Path,
                                                           mode: list[str]) -> None:
    files = documents(tmp_path, 3)
    # The second create to arrive is answered 200 with `[]`: no run for it.
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", delay=0)
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", status=200, body=[])
    result = cli.run("partitions", "create", *files, "--key", "invoice number", *mode)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    printed = ([r["id"] for r in result.json()] if "--json" in mode
               else result.stdout.split())
    assert len(printed) == 2 and set(printed) == server_ids(cli)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert re.fullmatch(rf"error: {tmp_path}/doc[012]\.txt: unusable response: expected an "
                        r"object \(request_id req_\w+\)", errors[0])
    # A 200 that is not a run may still have started one: the safe retry is given.
    assert "hint: retry safely (no duplicate run) with: retab partitions create" in result.stderr


# ---- item 15: create never waits on a terminal, nor on a run id it cannot watch ------------


def test_create_from_stdin_refuses_a_terminal(cli: Cli) -> None:
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}}
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", "partitions", "create", "-",
                             "--filename", "scan.pdf", "--key", "k"], env=env, stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        out, err = proc.communicate(timeout=30)  # before: blocked reading the terminal
    finally:
        proc.kill()
        os.close(master)
    assert proc.returncode == 2
    assert out == b""
    assert err.decode().splitlines() == [
        "error: '-' reads the document from stdin, but stdin is a terminal",
        "hint: pipe it in, e.g. retab partitions create - --filename scan.pdf --key KEY "
        "< scan.pdf"]
    assert [r for r in cli.emu.requests() if r["method"] == "POST"] == []


@pytest.mark.parametrize("run_id", ["not a valid id!", None, 7])
def test_create_wait_fails_at_once_on_a_run_id_it_cannot_watch(cli: Cli, run_id: Any) -> None:
    body = {"object": "partition", "status": "queued", "output": []}
    if run_id is not None:
        body["id"] = run_id
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", status=200, body=body)
    result = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--wait",
                     "--timeout", "30s", "-q")
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {SAMPLE_PDF}: unusable response: the partition "
                                    "object has no valid id (request_id req_")
    assert "Traceback" not in result.stderr
    # Nothing was polled: before, it polled until the timeout (or ended at once with 0).
    assert [r for r in cli.emu.requests() if r["method"] == "GET"] == []


# ---- issue 9: an empty id list is nothing to do ---------------------------------------------


def test_an_empty_pipeline_is_nothing_to_do(cli: Cli) -> None:
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}}
    tool = f"{shlex.quote(sys.executable)} -m retab_cli partitions"
    proc = subprocess.run(["sh", "-c", f"{tool} list --status queued -q | {tool} cancel - --yes"],
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    assert proc.stderr.decode() == "no ids given; nothing to do\n"


@pytest.mark.parametrize("command", [["get"], ["get", "--exit-status"], ["watch"],
                                     ["cancel", "--yes"], ["delete", "--yes"]])
@pytest.mark.parametrize("given", ["", "\n  \n# only a comment\n"])
def test_every_command_taking_ids_does_nothing_for_none(cli: Cli, command: list[str],
                                                        given: str) -> None:
    result = cli("partitions", command[0], "-", *command[1:], "--json", input=given)
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no ids given; nothing to do\n"
    assert cli.emu.requests() == []


def test_create_timeout_bounds_the_whole_synchronous_create(own_emu: Emulator,
                                                            tmp_path: Path) -> None:
    cli = Cli(own_emu, tmp_path)
    own_emu.add_fault(method="POST", path="^/v1/partitions$", delay=SLOW, times=5)
    result = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--timeout", "1s")
    assert result.exit_code == 1
    # One attempt, cut at the deadline; before, 5 attempts of 1 s each plus backoff.
    assert "retrying" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (f"error: {SAMPLE_PDF}: the outcome is unknown: no complete response "
                        "within 1s")
    assert lines[1].startswith("hint: retry safely (no duplicate run) with: retab partitions "
                               f"create {SAMPLE_PDF} --key k --idempotency-key ")
    pending = own_emu.control("GET", "faults")
    assert isinstance(pending, list) and pending[0]["times"] == 4  # one request arrived
