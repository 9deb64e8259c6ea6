"""The tool as a real process when its streams misbehave, and when outside text is hostile.

- A closed stderr never changes the exit code (its reader gone, or closed before start).
- A closed stdout ends a read-only command quietly with 0 (unless it already reported an
  error), a mutating one with its report and 1; a stdout that cannot be written (a full
  disk) is one error line; never a traceback.
- A JSON list cut short (a failed page, SIGINT/SIGTERM) is still one valid array.
- Every stderr line made from outside text (file names, server messages) is one line, so
  nothing can forge a line or a GitHub workflow command; every id printed on stdout is
  sanitised (docs/output-contract.md, "Sanitising"; docs/exit-codes.md, "Closed pipes").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cli_support import SAMPLE_PDF, Cli

TOOL = [sys.executable, "-m", "retab_cli"]


def tool_env(cli: Cli, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Cli.run uses (emulator, private config), plus `extra`."""
    merged = {**os.environ, **cli.env, **(extra or {})}
    return {k: v for k, v in merged.items() if v != "" or k == "NO_COLOR"}


def gone_reader() -> int:
    """The write end of a pipe whose reader has already gone: every write is EPIPE."""
    read, write = os.pipe()
    os.close(read)
    return write


def run_with(cli: Cli, args: list[str], *, stdout: Any = subprocess.PIPE,
             stderr: Any = subprocess.PIPE, env: dict[str, str] | None = None,
             shell_redirect: str = "") -> subprocess.CompletedProcess[bytes]:
    """Run the tool with the given streams; `shell_redirect` (e.g. `2>&-`) is applied by
    a shell that then execs the tool, for streams closed before start."""
    command = [*TOOL, *args]
    if shell_redirect:
        command = ["bash", "-c", f'exec "$@" {shell_redirect}', "bash", *command]
    done = subprocess.run(command, stdout=stdout, stderr=stderr, env=tool_env(cli, env),
                          timeout=60, check=False)
    for stream in (stdout, stderr):
        if isinstance(stream, int) and stream > 2:
            os.close(stream)
    return done


def text(data: bytes | None) -> str:
    return (data or b"").decode()


# ---- item 4: a closed stderr never changes the code ---------------------------------------------


def _dead_create(cli: Cli) -> list[str]:
    # The server "dead": five 503s in a row (no wait between them), then the tool gives up.
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", status=503, times=5,
                      headers={"Retry-After": "0"}, body={"detail": "unavailable"})
    return ["partitions", "create", str(SAMPLE_PDF), "--key", "k"]


FAILURES: dict[str, tuple[Callable[[Cli], list[str]], int]] = {
    "get": (lambda cli: ["partitions", "get", "prtn_missing"], 6),
    "get --exit-status": (lambda cli: ["partitions", "get", "prtn_missing", "--exit-status"], 6),
    "watch": (lambda cli: ["partitions", "watch", "prtn_missing"], 6),
    "create, server down": (_dead_create, 1),
}


@pytest.mark.parametrize("name", FAILURES)
def test_a_failure_stays_a_failure_when_stderrs_reader_is_gone(cli: Cli, name: str) -> None:
    make_args, code = FAILURES[name]
    # `2>&1 | true`: both streams into one pipe nobody reads any more.
    sink = gone_reader()
    done = run_with(cli, make_args(cli), stdout=sink, stderr=os.dup(sink))
    assert done.returncode == code


@pytest.mark.parametrize("name", FAILURES)
def test_a_failure_stays_a_failure_with_stderr_closed_before_start(cli: Cli, name: str) -> None:
    make_args, code = FAILURES[name]
    done = run_with(cli, make_args(cli), shell_redirect="2>&-")
    assert done.returncode == code
    assert b"Traceback" not in done.stdout


def test_get_missing_into_head_exits_6_as_the_issue_ran_it(cli: Cli) -> None:
    line = " ".join(TOOL) + " partitions get prtn_missing 2>&1 | head -1; exit ${PIPESTATUS[0]}"
    done = subprocess.run(["bash", "-c", line], capture_output=True, env=tool_env(cli),
                          timeout=60, check=False)
    assert done.returncode == 6
    assert text(done.stdout).startswith("error: prtn_missing: Partition not found")


def test_an_error_already_shown_stays_the_code_when_stdout_then_breaks(cli: Cli) -> None:
    run_id = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "-q").stdout.strip()
    # `get missing ok 2>&1 | head -1`: the reader takes the error line and leaves; the
    # object for the other id then meets a closed pipe.
    sink = gone_reader()
    done = run_with(cli, ["partitions", "get", "prtn_missing", run_id], stdout=sink,
                    stderr=os.dup(sink))
    assert done.returncode == 6


# ---- item 5: a closed stdout ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["table", "json", "jsonl", "ids"])
def test_list_into_a_pipe_nobody_reads_ends_quietly_with_0(cli: Cli, mode: str) -> None:
    cli.emu.seed(150)
    done = run_with(cli, ["partitions", "list", "--all", "-o", mode], stdout=gone_reader())
    assert (done.returncode, text(done.stderr)) == (0, "")


def test_list_table_into_head_exits_0(cli: Cli) -> None:
    # More rows than a pipe buffer holds (64 KiB): the tool is still writing when head
    # exits, so it always meets the closed pipe (300 rows fitted, and then the tool could
    # finish first and print its summary, on a loaded machine).
    cli.emu.seed(1500)
    line = " ".join(TOOL) + " partitions list --all -o table | head -1; exit ${PIPESTATUS[0]}"
    done = subprocess.run(["bash", "-c", line], capture_output=True, env=tool_env(cli),
                          timeout=60, check=False)
    assert done.returncode == 0, text(done.stderr)
    assert text(done.stdout).startswith("ID ")
    assert text(done.stderr) == ""


@pytest.mark.parametrize("mode", ["table", "json", "ids"])
def test_list_with_stdout_closed_before_start_ends_quietly_with_0(cli: Cli, mode: str) -> None:
    cli.emu.seed(3)
    done = run_with(cli, ["partitions", "list", "-o", mode], shell_redirect=">&-")
    assert (done.returncode, text(done.stderr)) == (0, "")


def test_cancel_with_stdout_closed_before_start_reports_and_exits_1(cli: Cli) -> None:
    cli.emu.next_create("stuck", times=3)
    ids = [cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--background",
               "-q").stdout.strip() for _ in range(3)]
    done = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", *TOOL, "partitions", "cancel",
                           "-", "--yes"], input="\n".join(ids).encode(), capture_output=True,
                          env=tool_env(cli), timeout=60, check=False)
    assert done.returncode == 1
    # The JSON array comes once every cancel is answered: all were sent, none printed.
    assert text(done.stderr) == "cancelled all 3; stdout was closed\n"
    assert [cli("partitions", "get", i, "-q", "--no-output").exit_code for i in ids] == [0] * 3
    statuses = {r["path"] for r in cli.emu.requests() if r["path"].endswith("/cancel")}
    assert statuses == {f"/v1/partitions/{i}/cancel" for i in ids}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("mode", ["json", "table"])
def test_a_stdout_that_cannot_be_written_is_one_error_line(cli: Cli, mode: str) -> None:
    cli.emu.seed(3)
    with open("/dev/full", "w") as full:
        done = run_with(cli, ["partitions", "list", "-o", mode], stdout=full)
    assert done.returncode == 2
    lines = text(done.stderr).splitlines()
    assert lines[0] == "error: cannot write to stdout: No space left on device"
    if mode == "json":  # asked for explicitly: the JSON error object too
        assert json.loads(lines[1])["error"]["type"] == "usage"
    assert len(lines) == (2 if mode == "json" else 1)


# ---- a hostile server on loopback ------------------------------------------------------------

HOSTILE_ID = "prtn_\x1b]52;c;aGk=\x07\x1b[2J\u202eevil\nnext"
SHOWN_ID = "prtn_\\x1b]52;c;aGk=\\x07\\x1b[2J\\u202eevil\\nnext"


def partition(ident: str, status: str = "cancelled") -> dict[str, Any]:
    return {"id": ident, "object": "partition", "status": status, "created_at":
            "2026-01-01T00:00:00Z", "file": {"id": "file_1", "filename": "a.pdf"},
            "output": [], "usage": {"credits": 1}}


class Hostile(ThreadingHTTPServer):
    """Answers from `routes` ((method, path, has a query) -> (status, body)); a route whose
    body is `HOLD` waits until `release` is set (a page that never comes)."""

    daemon_threads = True
    routes: dict[tuple[str, str, bool], tuple[int, Any]]
    release: threading.Event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


HOLD = object()


class _Handler(BaseHTTPRequestHandler):
    server: Hostile

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, body = self.server.routes.get((self.command, path, "after=" in query),
                                              (404, {"detail": "not found"}))
        if body is HOLD:
            self.server.release.wait(30)
            status, body = 500, {"detail": "late"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def hostile(cli: Cli) -> Iterator[Hostile]:
    server = Hostile(("127.0.0.1", 0), _Handler)
    server.routes = {}
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    cli.env["RETAB_API_BASE_URL"] = server.url
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def listing(items: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    return {"data": items, "list_metadata": {"before": None, "after": after}}


# ---- item 2: server ids on stdout ----------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["partitions", "cancel", "prtn_a", "-q"],
    ["partitions", "cancel", "prtn_a", "-o", "ids"],
    ["partitions", "get", "prtn_a", "-q"],
])
def test_an_id_from_the_server_reaches_stdout_sanitised(cli: Cli, hostile: Hostile,
                                                        args: list[str]) -> None:
    hostile.routes = {("POST", "/v1/partitions/prtn_a/cancel", False): (200, partition(HOSTILE_ID)),
                      ("GET", "/v1/partitions/prtn_a", False): (200, partition(HOSTILE_ID))}
    done = cli.run(*args)
    assert (done.exit_code, done.stdout) == (0, SHOWN_ID + "\n"), done.stderr


def test_a_dry_run_shows_server_ids_sanitised(cli: Cli, hostile: Hostile) -> None:
    hostile.routes = {("GET", "/v1/partitions", False):
                      (200, listing([partition(HOSTILE_ID, "queued")]))}
    done = cli.run("partitions", "cancel", "--all-matching", "--status", "queued", "--dry-run")
    # A listing holding an id that breaks the id rule is unusable (paging.snapshot_ids):
    # nothing of it is shown or acted on, dry run or not.
    assert (done.exit_code, done.stdout) == (1, ""), done.stderr
    assert done.stderr.splitlines()[0] == ("error: unusable response: the listing holds an "
                                           "item without a valid id; nothing was done")
    assert "\x1b" not in done.stderr and "evil" not in done.stderr


# ---- item 6: a JSON list cut short is still one array -------------------------------------------


def test_a_failed_later_page_leaves_a_closed_json_array(cli: Cli, hostile: Hostile) -> None:
    first = [partition("prtn_a", "completed"), partition("prtn_b", "completed")]
    hostile.routes = {("GET", "/v1/partitions", False): (200, listing(first, after="prtn_b")),
                      ("GET", "/v1/partitions", True): (400, {"detail": "bad cursor"})}
    done = cli.run("partitions", "list", "--all", "-o", "json")
    assert done.exit_code == 2
    assert json.loads(done.stdout) == first
    assert done.stderr.splitlines()[0] == "error: bad cursor"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_json_list_is_a_closed_array(cli: Cli, hostile: Hostile, signum: int,
                                                    code: int) -> None:
    first = [partition("prtn_a", "completed"), partition("prtn_b", "completed")]
    hostile.routes = {("GET", "/v1/partitions", False): (200, listing(first, after="prtn_b")),
                      ("GET", "/v1/partitions", True): (200, HOLD)}
    proc = subprocess.Popen([*TOOL, "partitions", "list", "--all", "-o", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env(cli))
    assert proc.stdout is not None and proc.stderr is not None
    out = b""
    deadline = time.monotonic() + 30
    while b"prtn_b" not in out and time.monotonic() < deadline:  # the first page is out
        out += os.read(proc.stdout.fileno(), 65536)
    proc.send_signal(signum)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert json.loads(out + rest) == first
    lines = text(err).splitlines()
    assert lines[0] == "error: interrupted"
    assert json.loads(lines[1])["error"] == {
        "type": "interrupted", "message": "interrupted", "status": None, "request_id": None,
        "partition_id": None, "file": None, "exit_code": code}


# ---- item 1: every stderr line made from outside text is one line ---------------------------

FORGED = "\n::add-mask::x\n::error title=t::forged"


def assert_nothing_forged(stderr: str) -> None:
    assert not [line for line in stderr.splitlines() if line.startswith("::")]


def test_a_hostile_file_name_stays_on_its_line_in_ci(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / f"scan{FORGED}"
    path.write_bytes(bytes(range(256)) * 4)  # no type to tell: the warning names the path
    done = cli.run("partitions", "create", str(path), "--key", "k", "--background", "-q",
                   env={"GITHUB_ACTIONS": "true"})
    assert done.exit_code == 0, done.stderr
    assert_nothing_forged(done.stderr)
    shown = str(path).replace("\n", "\\n")
    assert done.stderr.splitlines() == [
        f"warning: cannot tell the type of {shown}; sending it as application/octet-stream "
        "(use --mime-type to set it)"]


def test_a_503_body_with_newlines_cannot_forge_lines_in_ci(cli: Cli) -> None:
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", status=503, times=2,
                      headers={"Retry-After": "0"}, body={"detail": f"down{FORGED}\r\nend"})
    done = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--background",
                   "-q", env={"GITHUB_ACTIONS": "true"})
    assert done.exit_code == 0, done.stderr
    assert_nothing_forged(done.stderr)
    message = "down\\n::add-mask::x\\n::error title=t::forged\\r\\nend"
    assert done.stderr.splitlines() == [
        f"retrying POST /v1/partitions in 0.0s (attempt {n}/5): {message}" for n in (2, 3)]


def test_a_watch_poll_failure_with_newlines_is_one_line_in_ci(cli: Cli) -> None:
    run_id = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "-q").stdout.strip()
    cli.emu.add_fault(method="GET", path=f"^/v1/partitions/{run_id}$", status=503, times=5,
                      headers={"Retry-After": "0"}, body={"detail": f"down{FORGED}"})
    done = cli.run("partitions", "watch", run_id, env={"GITHUB_ACTIONS": "true"})
    assert done.exit_code == 0, done.stderr
    assert_nothing_forged(done.stderr)
    failed = [line for line in done.stderr.splitlines() if "poll failed" in line]
    assert len(failed) == 1
    assert failed[0].endswith("poll failed, retrying: down\\n::add-mask::x\\n::error "
                              "title=t::forged")


def test_auth_status_shows_the_servers_refusal_sanitised(cli: Cli, hostile: Hostile) -> None:
    hostile.routes = {("GET", "/v1/partitions", False):
                      (401, {"detail": "bad key\x1b]52;c;aGk=\x07\nkey works  yes"})}
    done = cli.run("auth", "status", "-o", "table")
    assert done.exit_code == 4
    assert done.stdout.splitlines()[-1] == (
        "key works  no: bad key\\x1b]52;c;aGk=\\x07\\nkey works  yes")
