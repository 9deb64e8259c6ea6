"""Watching end to end: `retab` as a real process against the emulator.

Signals, pipes, terminals and exit codes are how users meet a watch, so most tests
start `python -m retab_cli` (through `cli.run`, or `Popen` when the test must act while
the watch runs). The session emulator runs at speed 20: an ordinary run ends within
half a second, and `next_create("stuck")` makes one that stays in_progress until it is
cancelled or deleted.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from cli_support import SAMPLE_PDF, Cli, Result
from emulator_support import wait_until

KEY_PHRASE = "invoice number"
UNKNOWN_ID = "prtn_" + "0" * 21
# `12:00:03Z prtn_... queued→in_progress invoices.pdf (12s)`; the first sighting has no arrow.
CHANGE = re.compile(
    r"^(?P<clock>\d\d:\d\d:\d\dZ) (?P<id>prtn_[A-Za-z0-9_-]+) (?:(?P<old>[a-z_]+)→)?"
    r"(?P<new>[a-z_]+) (?P<file>.+) \((?P<elapsed>\d+s|\d+m\d\ds)\)$")
SUMMARY = re.compile(r"^(?P<count>\d+) runs?: (?P<counts>[a-z_0-9, ]+) · [\d.]+ credits · \d+(s|m\d\ds)$")
# For watches that wait on a change the test makes: see it within 0.2 s, not 1 s.
FAST = ("--interval", "200ms")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# ---- helpers -----------------------------------------------------------------------


def create(cli: Cli, outcome: str | None = None, *, filename: str | None = None) -> str:
    """A background run: completed (default), or failed/cancelled/stuck as forced."""
    if outcome is not None:
        cli.emu.next_create(outcome)
    extra = ["--filename", filename] if filename is not None else []
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--background",
                 "-q", *extra)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def settled(cli: Cli, *ids: str) -> None:
    """Wait until the runs (not stuck ones) have ended, so each is first seen terminal."""
    def ended() -> bool:
        result = cli("partitions", "get", *ids, "--no-output", "-o", "jsonl")
        return all(obj["status"] in ("completed", "failed", "cancelled") for obj in result.jsonl())
    wait_until(ended, timeout=10, interval=0.05)


def process_env(cli: Cli, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `cli.run` gives the tool (empty values unset, NO_COLOR aside)."""
    merged = {**os.environ, **cli.env, **(extra or {})}
    return {k: v for k, v in merged.items() if v != "" or k == "NO_COLOR"}


class Watch:
    """`retab ARGS...` running in the background; stderr collected line by line."""

    def __init__(self, cli: Cli, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "retab_cli", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=process_env(cli, env))
        self.err: list[str] = []
        self.out: list[str] = []
        self._readers = [self._drain(self.proc.stderr, self.err),
                         self._drain(self.proc.stdout, self.out)]

    @staticmethod
    def _drain(stream: IO[str] | None, into: list[str]) -> threading.Thread:
        assert stream is not None
        thread = threading.Thread(target=lambda: into.extend(iter(stream.readline, "")),
                                  daemon=True)
        thread.start()
        return thread

    def wait_for_stderr(self, text: str, timeout: float = 10) -> None:
        try:
            wait_until(lambda: any(text in line for line in self.err), timeout=timeout)
        except AssertionError:
            raise AssertionError(f"{text!r} not on stderr: {''.join(self.err)!r}") from None

    def signal(self, signum: int) -> None:
        """Send a signal and wait for the exit. The runs watched include a stuck one, so an
        exit at all shows the watch did not wait on them; no wall-clock bound (flaky under load)."""
        self.proc.send_signal(signum)
        self.proc.wait(timeout=60)

    def finish(self, timeout: float = 20) -> Result:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for reader in self._readers:
            reader.join(5)
        return Result(self.proc.returncode, "".join(self.out), "".join(self.err))


def changes(stderr: str) -> list[re.Match[str]]:
    return [m for line in stderr.splitlines() if (m := CHANGE.match(line))]


def statuses_by_id(stderr: str) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for match in changes(stderr):
        seen.setdefault(match["id"], []).append(match["new"])
    return seen


def summary_counts(stderr: str) -> Counter[str]:
    lines = [m for line in stderr.splitlines() if (m := SUMMARY.match(line))]
    assert len(lines) == 1, stderr
    counts: Counter[str] = Counter()
    for part in lines[0]["counts"].split(", "):
        number, status = part.split(" ", 1)
        counts[status] = int(number)
    return counts


def gets(cli: Cli, partition_id: str) -> list[dict[str, Any]]:
    return [r for r in cli.emu.requests()
            if r["method"] == "GET" and r["path"] == f"/v1/partitions/{partition_id}"]


def posts_to_cancel(cli: Cli) -> list[str]:
    return [r["path"].split("/")[3] for r in cli.emu.requests()
            if r["method"] == "POST" and r["path"].endswith("/cancel")]


def assert_no_repeats(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), stderr
    for run_id, seen in statuses_by_id(stderr).items():
        assert all(a != b for a, b in itertools.pairwise(seen)), (run_id, seen)


# ---- outcomes and exit codes ---------------------------------------------------------


def test_completed_failed_cancelled_exit_3_with_one_line_per_change(cli: Cli) -> None:
    completed, failed, stuck = create(cli), create(cli, "failed"), create(cli, "stuck")
    settled(cli, completed, failed)
    watch = Watch(cli, "partitions", "watch", completed, failed, stuck, *FAST)
    watch.wait_for_stderr(f"{stuck} in_progress")
    assert cli("partitions", "cancel", stuck).exit_code == 0
    result = watch.finish()

    assert result.exit_code == 3, result.stderr  # failed beats cancelled beats completed
    finals = result.json()
    assert [f["id"] for f in finals] == [completed, failed, stuck]
    assert [f["status"] for f in finals] == ["completed", "failed", "cancelled"]
    assert finals[0]["output"], "the final object is the full one"
    assert statuses_by_id(result.stderr) == {
        completed: ["completed"], failed: ["failed"], stuck: ["in_progress", "cancelled"]}
    arrow = [m for m in changes(result.stderr) if m["old"]]
    assert [(m["id"], m["old"], m["new"], m["file"]) for m in arrow] == [
        (stuck, "in_progress", "cancelled", "invoices.pdf")]
    assert_no_repeats(result.stderr)
    assert summary_counts(result.stderr) == {"completed": 1, "failed": 1, "cancelled": 1}
    # Nothing else: every stderr line is a change or the summary.
    assert len(result.stderr.splitlines()) == len(changes(result.stderr)) + 1


@pytest.mark.parametrize(("outcomes", "code"), [
    ((None, None), 0),
    ((None, "cancelled"), 5),
    (("cancelled", "failed", None), 3),
])
def test_most_severe_outcome_wins(cli: Cli, outcomes: tuple[str | None, ...], code: int) -> None:
    ids = [create(cli, o) for o in outcomes]
    settled(cli, *ids)
    result = cli.run("partitions", "watch", *ids, "-q")
    assert result.exit_code == code, result.stderr
    assert result.stdout.split() == ids
    assert result.stderr == ""  # -q silences progress


def test_unknown_id_among_others_is_6_and_the_others_finish(cli: Cli) -> None:
    ids = [create(cli), create(cli, "failed"), create(cli, "cancelled")]
    settled(cli, *ids)
    result = cli.run("partitions", "watch", *ids, UNKNOWN_ID)
    assert result.exit_code == 6, result.stderr  # 404 is more severe than failed
    assert [(f["id"], f["status"]) for f in result.json()] == list(
        zip(ids, ["completed", "failed", "cancelled"], strict=True))
    assert statuses_by_id(result.stderr) == {
        ids[0]: ["completed"], ids[1]: ["failed"], ids[2]: ["cancelled"]}
    assert re.search(rf"^\d\d:\d\d:\d\dZ {UNKNOWN_ID} not found \(404\)", result.stderr,
                     re.M), result.stderr
    assert_no_repeats(result.stderr)
    assert summary_counts(result.stderr) == {"completed": 1, "failed": 1, "cancelled": 1, "gone": 1}


def test_jsonl_streams_each_change_and_ends_with_the_full_object(cli: Cli) -> None:
    completed, stuck = create(cli), create(cli, "stuck")
    settled(cli, completed)
    watch = Watch(cli, "partitions", "watch", completed, stuck, "-o", "jsonl", *FAST)
    watch.wait_for_stderr(f"{stuck} in_progress")
    assert cli("partitions", "cancel", stuck).exit_code == 0
    result = watch.finish()

    assert result.exit_code == 5, result.stderr
    objects = result.jsonl()
    assert all(set(obj) >= {"id", "status", "output", "file"} for obj in objects), objects
    assert [(o["id"], o["status"]) for o in objects if o["id"] == stuck] == [
        (stuck, "in_progress"), (stuck, "cancelled")]
    last = {obj["id"]: obj for obj in objects}
    assert last[completed]["status"] == "completed" and last[completed]["output"]
    assert [o["id"] for o in objects].count(completed) == 1
    # One object per change, as many as the lines on stderr.
    assert Counter(o["id"] for o in objects) == Counter(m["id"] for m in changes(result.stderr))
    assert summary_counts(result.stderr) == {"completed": 1, "cancelled": 1}


def test_json_prints_only_the_final_objects(cli: Cli) -> None:
    first, second = create(cli), create(cli)
    settled(cli, first, second)
    one = cli.run("partitions", "watch", first, "--json")
    assert one.exit_code == 0, one.stderr
    assert isinstance(one.json(), dict) and one.json()["id"] == first
    assert one.json()["output"]
    assert statuses_by_id(one.stderr) == {first: ["completed"]}

    several = cli.run("partitions", "watch", first, second, "-o", "json")
    assert several.exit_code == 0, several.stderr
    assert [obj["id"] for obj in several.json()] == [first, second]
    assert summary_counts(several.stderr) == {"completed": 2}

    piped = cli.run("partitions", "watch", "-", "-o", "json", input=f"{first}\n")
    assert piped.exit_code == 0, piped.stderr
    assert [obj["id"] for obj in piped.json()] == [first]  # `-` always gives an array
    assert statuses_by_id(piped.stderr) == {first: ["completed"]}


# ---- create --wait and cancel --wait ----------------------------------------------------


def test_create_wait_one_and_several_files(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "second.pdf"
    other.write_bytes(SAMPLE_PDF.read_bytes())
    one = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--wait")
    assert one.exit_code == 0, one.stderr
    final = one.json()
    assert final["status"] == "completed" and final["output"]
    assert statuses_by_id(one.stderr)[final["id"]][-1] == "completed"
    assert_no_repeats(one.stderr)
    assert summary_counts(one.stderr) == {"completed": 1}

    cli.emu.next_create("failed")  # the first upload of two may land second: either may fail
    two = cli.run("partitions", "create", str(SAMPLE_PDF), str(other), "--key", KEY_PHRASE,
                  "--wait")
    assert two.exit_code == 3, two.stderr
    finals = two.json()
    assert [f["file"]["filename"] for f in finals] == ["invoices.pdf", "second.pdf"]
    assert sorted(f["status"] for f in finals) == ["completed", "failed"]
    seen = statuses_by_id(two.stderr)
    assert {run_id: s[-1] for run_id, s in seen.items()} == {f["id"]: f["status"] for f in finals}
    assert_no_repeats(two.stderr)
    assert summary_counts(two.stderr) == {"completed": 1, "failed": 1}


def test_create_wait_timeout_on_a_stuck_run_exits_8(cli: Cli) -> None:
    cli.emu.next_create("stuck")
    result = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--wait",
                     "--timeout", "1s")
    assert result.exit_code == 8, result.stderr
    assert result.json()["status"] in ("queued", "in_progress")  # the last object seen
    assert re.search(r"^\d\d:\d\d:\d\dZ prtn_\S+ still running at --timeout$", result.stderr, re.M)
    assert summary_counts(result.stderr) == {"timeout": 1}


def test_cancel_wait_any_terminal_state_is_success(cli: Cli) -> None:
    done, stuck = create(cli), create(cli, "stuck")
    settled(cli, done)
    several = cli.run("partitions", "cancel", done, stuck, "--wait")
    assert several.exit_code == 0, several.stderr
    assert [(f["id"], f["status"]) for f in several.json()] == [
        (done, "completed"), (stuck, "cancelled")]
    assert summary_counts(several.stderr) == {"completed": 1, "cancelled": 1}
    assert "::error" not in several.stderr

    other = create(cli, "stuck")
    one = cli.run("partitions", "cancel", other, "--wait", "--json")
    assert one.exit_code == 0, one.stderr
    assert one.json()["status"] == "cancelled"


# ---- faults --------------------------------------------------------------------------


def test_503_burst_and_dropped_connection_still_end_0(cli: Cli) -> None:
    run = create(cli)
    settled(cli, run)
    cli.emu.clear_requests()
    path = f"^/v1/partitions/{run}$"
    cli.emu.add_fault(path=path, method="GET", status=503, times=3)
    cli.emu.add_fault(path=path, method="GET", drop=True)
    # A pinned short interval keeps the engine's backoff (0.1, 0.2, 0.4, 0.8 s) quick.
    result = cli.run("partitions", "watch", run, "--interval", "100ms")

    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "completed" and result.json()["output"]
    assert statuses_by_id(result.stderr) == {run: ["completed"]}
    retries = [line for line in result.stderr.splitlines() if "poll failed, retrying" in line]
    assert len(retries) == 2, result.stderr  # once for the 503s, once for the drop
    assert "HTTP 503" in retries[0]
    assert summary_counts(result.stderr) == {"completed": 1}
    sent = gets(cli, run)
    assert [r["status"] for r in sent][:3] == [503, 503, 503]
    assert [r["query"].get("include_output") for r in sent] == ["false"] * (len(sent) - 1) + ["true"]
    assert sent[-1]["status"] == 200


def test_401_mid_watch_stops_everything_with_4(cli: Cli) -> None:
    first, second = create(cli, "stuck"), create(cli, "stuck")
    cli.emu.add_fault(path=f"^/v1/partitions/{second}$", method="GET", status=401)
    result = cli.run("partitions", "watch", first, second, timeout=20)
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    assert re.search(rf"^error: {second}: .*HTTP 401", result.stderr, re.M), result.stderr
    assert "hint: check the key with 'retab auth status'" in result.stderr
    assert "--fail-fast" not in result.stderr  # the error stopped it, not the user's option


def test_run_deleted_mid_watch_is_6_while_another_completes(cli: Cli) -> None:
    doomed, other = create(cli, "stuck"), create(cli)
    watch = Watch(cli, "partitions", "watch", doomed, other, "-o", "jsonl", *FAST)
    watch.wait_for_stderr(f"{doomed} in_progress")
    assert cli("partitions", "delete", doomed, "--yes").exit_code == 0
    result = watch.finish()

    assert result.exit_code == 6, result.stderr
    assert re.search(rf"^\d\d:\d\d:\d\dZ {doomed} no longer exists \(404\)", result.stderr, re.M)
    assert statuses_by_id(result.stderr)[other][-1] == "completed"
    assert {obj["id"]: obj["status"] for obj in result.jsonl()} == {
        doomed: "in_progress", other: "completed"}
    assert summary_counts(result.stderr) == {"completed": 1, "gone": 1}


# ---- interrupts ----------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_at_once_without_cancelling(cli: Cli, signum: int, code: int) -> None:
    done, stuck = create(cli), create(cli, "stuck")
    settled(cli, done)
    watch = Watch(cli, "partitions", "watch", done, stuck)
    watch.wait_for_stderr(f"{stuck} in_progress")
    watch.signal(signum)
    result = watch.finish()

    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert posts_to_cancel(cli) == []
    lines = result.stderr.splitlines()
    report = lines[lines.index("interrupted; the runs were not cancelled"):]
    assert report == [
        "interrupted; the runs were not cancelled",
        f"  {done}  completed",
        f"  {stuck}  in_progress",
        f"resume: retab partitions watch {stuck}",
        f"cancel: retab partitions cancel {stuck}",
    ]
    assert "Traceback" not in result.stderr
    assert cli("partitions", "get", stuck, "--no-output").json()["status"] == "in_progress"


def test_interrupt_with_json_output_also_reports_json(cli: Cli) -> None:
    stuck = create(cli, "stuck")
    watch = Watch(cli, "partitions", "watch", stuck, "-o", "jsonl")
    watch.wait_for_stderr(f"{stuck} in_progress")
    watch.signal(signal.SIGINT)
    result = watch.finish()
    assert result.exit_code == 130, result.stderr
    assert [obj["status"] for obj in result.jsonl()] == ["in_progress"]
    error = result.stderr_json()["error"]
    assert (error["type"], error["exit_code"]) == ("interrupted", 130)


def test_cancel_on_interrupt_cancels_the_active_runs(cli: Cli) -> None:
    done, first, second = create(cli), create(cli, "stuck"), create(cli, "stuck")
    settled(cli, done)
    watch = Watch(cli, "partitions", "watch", done, first, second, "--cancel-on-interrupt")
    watch.wait_for_stderr(f"{first} in_progress")
    watch.wait_for_stderr(f"{second} in_progress")
    watch.signal(signal.SIGTERM)
    result = watch.finish()

    assert result.exit_code == 143, result.stderr
    assert result.stdout == ""
    assert sorted(posts_to_cancel(cli)) == sorted([first, second])
    assert "cancel-on-interrupt: sent 2 of 2 cancels" in result.stderr
    assert f"  {first}  in_progress → cancelled (cancel sent)" in result.stderr
    assert "resume:" not in result.stderr
    states = cli("partitions", "get", done, first, second, "--no-output").json()
    assert [s["status"] for s in states] == ["completed", "cancelled", "cancelled"]


# ---- GitHub Actions ------------------------------------------------------------------


HOSTILE_NAME = "q3|`rm -rf`\n100%\r.pdf"


def test_github_actions_summary_and_error_annotation(cli: Cli, tmp_path: Path) -> None:
    good, bad = create(cli), create(cli, "failed", filename=HOSTILE_NAME)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    gha = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = cli.run("partitions", "watch", good, bad, env=gha)

    assert result.exit_code == 3, result.stderr
    assert [f["id"] for f in result.json()] == [good, bad]
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert len(annotations) == 1, result.stderr
    assert annotations[0].startswith("::error title=partition run failed::" + bad)
    # One line: CR and LF in the name arrive as visible escapes, and % is escaped.
    assert "\r" not in result.stderr
    assert f"{bad} (q3|`rm -rf`\\n100%25\\r.pdf) failed: emulated_failure" in annotations[0]

    text = summary.read_text()
    assert text.startswith("earlier step\n### retab: 2 runs: 1 completed, 1 failed")
    rows = [line for line in text.splitlines() if line.startswith("| `prtn_")]
    assert len(rows) == 2, text
    assert rows[0].startswith(f"| `{good}` | invoices.pdf | completed | 3 |")
    # Six columns survive the hostile name: its pipe and backticks are escaped.
    cells = re.split(r"(?<!\\)\|", rows[1])[1:-1]
    assert [c.strip() for c in cells][:3] == [f"`{bad}`", r"q3\|\`rm -rf\`\\n100%\\r.pdf", "failed"]
    assert len(cells) == 6

    summary.write_text("")
    quiet = cli.run("partitions", "watch", good, bad, "--no-ci-summary", env=gha)
    assert quiet.exit_code == 3, quiet.stderr
    assert [f["id"] for f in quiet.json()] == [good, bad]
    assert "::" not in quiet.stderr
    assert summary.read_text() == ""
    assert summary_counts(quiet.stderr) == {"completed": 1, "failed": 1}


# ---- terminals -----------------------------------------------------------------------


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """A private tmux server (its own socket), killed after the test."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    command = ["tmux", "-L", f"retab-test-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
    try:
        yield command
    finally:
        subprocess.run([*command, "kill-server"], capture_output=True, timeout=10)


def test_live_table_on_a_terminal(cli: Cli, tmux: list[str]) -> None:
    done, stuck = create(cli), create(cli, "stuck")
    settled(cli, done)
    env = process_env(cli, {"TERM": "xterm-256color"})
    watch = shlex.join([sys.executable, "-m", "retab_cli", "partitions", "watch", done, stuck,
                         *FAST, "--debug"])
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith(
        ("RETAB_", "XDG_", "TERM", "NO_COLOR")))
    script = f"env {exports} {watch}; echo exit=$?; sleep 60"
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "30", "sh", "-c", script],
                   check=True, env=env, timeout=10)

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def live_table() -> bool:
        text = screen()
        return "RUN" in text and "2 runs: 1 completed, 1 in_progress" in text

    wait_until(live_table, timeout=15, interval=0.1)
    table = screen()
    rows = {line.split()[0]: line.split()[1:3] for line in table.splitlines()
            if line.startswith("prtn_")}
    assert rows == {done: ["invoices.pdf", "completed"], stuck: ["invoices.pdf", "in_progress"]}
    assert re.search(r"^RUN +FILE +STATUS +ELAPSED +CHUNKS +CREDITS", table, re.M), table
    assert re.search(r"^debug: ", table, re.M), table  # --debug lines are printed above the table...

    assert cli("partitions", "cancel", stuck).exit_code == 0
    def ended() -> str | None:
        text = screen()
        return text if "exit=" in text else None

    final = wait_until(ended, timeout=15)
    lines = [line.rstrip() for line in final.splitlines() if line.strip()]
    assert lines[-1] == "exit=5", final
    assert SUMMARY.match(lines[-2]), final
    assert summary_counts(lines[-2]) == {"completed": 1, "cancelled": 1}
    # ...so no torn copy of the table is left behind, and the live one was erased.
    assert not any(line.startswith("RUN ") for line in lines), final


def run_in_script(cli: Cli, *args: str, ctrl_c_when: str | None = None) -> tuple[int, str]:
    """Run the tool under `script` (a real pty); optionally type Ctrl-C once `ctrl_c_when`
    shows up. Returns the exit code and everything the terminal received."""
    if shutil.which("script") is None:
        pytest.skip("script (util-linux) is not installed")
    command = shlex.join([sys.executable, "-m", "retab_cli", *args])
    proc = subprocess.Popen(["script", "-qfec", command, "/dev/null"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=process_env(cli, {"TERM": "xterm-256color"}))
    received = bytearray()
    assert proc.stdout is not None and proc.stdin is not None
    out = proc.stdout.fileno()

    def read() -> None:
        while chunk := os.read(out, 4096):
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if ctrl_c_when is not None:
            wait_until(lambda: ctrl_c_when.encode() in received, timeout=15)
            proc.stdin.write(b"\x03")  # the terminal turns it into SIGINT
            proc.stdin.flush()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    return proc.returncode, received.decode(errors="replace")


def plain(text: str) -> list[str]:
    return [line.strip() for line in ANSI.sub("", text).replace("\r", "").splitlines()
            if line.strip()]


def test_live_display_restores_the_cursor_and_ends_with_the_summary(cli: Cli) -> None:
    done, stuck = create(cli), create(cli, "stuck")
    settled(cli, done)
    code, received = run_in_script(cli, "partitions", "watch", done, stuck, "--timeout", "1500ms")
    assert code == 8, received
    assert "\x1b[?25l" in received  # the live display hid the cursor...
    assert received.rindex("\x1b[?25h") > received.rindex("\x1b[?25l"), received  # ...and showed it
    text = plain(received)
    assert "2 runs: 1 completed, 1 in_progress" in text
    assert any(line.startswith(stuck) and "in_progress" in line for line in text)
    assert SUMMARY.match(text[-1]), text
    assert summary_counts(text[-1]) == {"completed": 1, "timeout": 1}


def test_ctrl_c_on_a_terminal_restores_the_cursor(cli: Cli) -> None:
    """Also the live view through a real pty: one run is "1 run", not "1 runs"."""
    stuck = create(cli, "stuck")
    code, received = run_in_script(cli, "partitions", "watch", stuck,
                                   ctrl_c_when="1 run: 1 in_progress")
    assert code == 130, received
    assert received.rindex("\x1b[?25h") > received.rindex("\x1b[?25l"), received
    text = plain(received)
    assert text[-4:] == ["interrupted; the runs were not cancelled", f"{stuck}  in_progress",
                         f"resume: retab partitions watch {stuck}",
                         f"cancel: retab partitions cancel {stuck}"]
    assert posts_to_cancel(cli) == []


# ---- pipes ---------------------------------------------------------------------------


def test_closed_stdout_ends_quietly_with_0(cli: Cli) -> None:
    done, stuck = create(cli), create(cli, "stuck")
    settled(cli, done)
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", "partitions", "watch", done, stuck,
                             "-o", "jsonl", *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=process_env(cli))
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())  # like `| head -1`
    proc.stdout.close()
    # The next change must be written to the closed pipe.
    assert cli("partitions", "cancel", stuck).exit_code == 0
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=15)

    assert proc.returncode == 0, stderr
    assert first["id"] in (done, stuck)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception" not in stderr
    assert all(CHANGE.match(line) for line in stderr.splitlines()), stderr


def test_shell_pipeline_into_head(cli: Cli) -> None:
    runs = [create(cli) for _ in range(3)]
    settled(cli, *runs)
    command = shlex.join([sys.executable, "-m", "retab_cli", "partitions", "watch", *runs,
                          "-o", "jsonl"])
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                          capture_output=True, text=True, env=process_env(cli), timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] in runs
    assert "Traceback" not in proc.stderr
    # Changes, and the summary if the watch got that far before head left.
    assert all(CHANGE.match(line) or SUMMARY.match(line) for line in proc.stderr.splitlines())


def cancel_directly(cli: Cli, run_id: str) -> None:
    """POST the cancel straight to the emulator: no CLI process per run, so no race with
    a watch's --timeout however loaded the machine is."""
    request = urllib.request.Request(f"{cli.emu.url}/v1/partitions/{run_id}/cancel", data=b"",
                                     method="POST",
                                     headers={"Authorization": f"Bearer {cli.emu.api_key}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        assert response.status == 200


def test_many_runs_are_swept_through_list_pages(cli: Cli) -> None:
    """Beyond 50 active runs the watch lists active runs instead of polling each one.

    No wall-clock bound, no fixed sleep: the test waits for the watch's first sweep (a list
    request), ends the runs, and asserts on the requests sent."""
    cli.emu.next_create("stuck", times=60)
    ids = [cli("partitions", "create", str(SAMPLE_PDF), "--key", "invoice number",
               "--background", "-q").stdout.strip() for _ in range(60)]
    cli.emu.clear_requests()
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", "partitions", "watch", "-",
                             "-o", "jsonl", "--fields", "id,status", *FAST],
                            env=process_env(cli), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write("\n".join(ids))
    proc.stdin.close()
    try:
        wait_until(lambda: list_requests(cli), timeout=120, interval=0.1)  # first sweep
        for run_id in ids:  # end them all while the watch is running
            cancel_directly(cli, run_id)
        proc.wait(timeout=120)  # a hang guard only: the watch has no --timeout
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 5, err
    last = {}
    for line in out.splitlines():
        obj = json.loads(line)
        last[obj["id"]] = obj["status"]
    assert last == dict.fromkeys(ids, "cancelled")
    log = [r for r in cli.emu.requests() if r["method"] == "GET"]
    listed = list_requests(cli)
    fetched = [r for r in log if r["path"] != "/v1/partitions"]
    assert {r["query"]["status"] for r in listed} <= {"pending", "queued", "in_progress"}
    assert all(r["query"].get("limit") == "100" for r in listed)  # whole pages per sweep
    assert len(fetched) < 3 * len(ids)  # not polled one by one
    assert sum(1 for r in fetched if r["query"].get("include_output") == "true") == len(ids)


def list_requests(cli: Cli) -> list[dict[str, Any]]:
    return [r for r in cli.emu.requests() if r["method"] == "GET" and r["path"] == "/v1/partitions"]


def test_github_actions_warns_about_runs_still_going_at_timeout(cli: Cli, tmp_path: Path) -> None:
    stuck = create(cli, "stuck")
    summary = tmp_path / "summary.md"
    result = cli.run("partitions", "watch", stuck, "--timeout", "1s", "-q",
                     env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 8
    assert result.stdout == f"{stuck}\n"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert warnings == [f"::warning title=partition run timeout::{stuck} (invoices.pdf) timeout"]
    assert f"| `{stuck}` | invoices.pdf | timeout |" in summary.read_text()


def test_interrupting_many_runs_saves_their_ids_for_the_resume_command(cli: Cli) -> None:
    ids = [create(cli, "stuck") for _ in range(25)]
    watch = Watch(cli, "partitions", "watch", *ids, env={"XDG_CACHE_HOME": str(cli.home / "c")})
    for run_id in ids:
        watch.wait_for_stderr(f"{run_id} in_progress")
    watch.signal(signal.SIGINT)
    result = watch.finish()
    assert result.exit_code == 130
    resume = [line for line in result.stderr.splitlines() if line.startswith("resume: ")]
    assert len(resume) == 1 and resume[0].startswith("resume: retab partitions watch - < ")
    saved = Path(resume[0].split(" < ", 1)[1])
    assert saved.parent == cli.home / "c" / "retab"
    assert saved.read_text().split() == ids
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert f"cancel: retab partitions cancel - < {saved}" in result.stderr


# ---- JSON error objects for run outcomes (docs/design.md §2, §12) --------------------------


def error_objects(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line)["error"] for line in stderr.splitlines() if line.startswith("{")]


def brief(error: dict[str, Any]) -> tuple[Any, ...]:
    return error["type"], error["partition_id"], error["exit_code"]


def test_watch_writes_an_error_object_per_run_that_did_not_complete(cli: Cli) -> None:
    done, failed, cancelled = create(cli), create(cli, "failed"), create(cli, "cancelled")
    result = cli.run("partitions", "watch", done, failed, cancelled, UNKNOWN_ID, "-o", "jsonl")
    assert result.exit_code == 6, result.stderr
    found = error_objects(result.stderr)
    assert [brief(e) for e in found] == [("run_failed", failed, 3), ("run_cancelled", cancelled, 5),
                                         ("not_found", UNKNOWN_ID, 6)]
    assert found[0]["file"] == "invoices.pdf" and found[0]["message"].startswith("run failed")
    assert found[2]["status"] == 404


def test_watch_timeout_writes_a_timeout_object_under_json(cli: Cli) -> None:
    stuck = create(cli, "stuck")
    result = cli.run("partitions", "watch", stuck, "--timeout", "1s", "-o", "json")
    assert result.exit_code == 8, result.stderr
    assert [brief(e) for e in error_objects(result.stderr)] == [("timeout", stuck, 8)]
    assert result.json()["id"] == stuck


def test_no_error_object_without_an_explicit_json_flag(cli: Cli) -> None:
    failed = create(cli, "failed")
    result = cli.run("partitions", "watch", failed, env={"RETAB_OUTPUT": "json"})
    assert result.exit_code == 3, result.stderr
    assert error_objects(result.stderr) == []
    assert result.json()["status"] == "failed"


def test_create_wait_failed_run_writes_run_failed(cli: Cli) -> None:
    cli.emu.next_create("failed")
    result = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--wait",
                     "-o", "json")
    assert result.exit_code == 3, result.stderr
    run_id = result.json()["id"]
    assert [brief(e) for e in error_objects(result.stderr)] == [("run_failed", run_id, 3)]


def test_synchronous_create_whose_run_fails_says_so_in_json(cli: Cli) -> None:
    cli.emu.next_create("failed")
    result = cli.run("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "-o", "json")
    assert result.exit_code == 3, result.stderr
    run_id = result.json()["id"]
    assert [brief(e) for e in error_objects(result.stderr)] == [("run_failed", run_id, 3)]


def test_get_exit_status_writes_error_objects(cli: Cli) -> None:
    done, failed, stuck = create(cli), create(cli, "failed"), create(cli, "stuck")
    settled(cli, done, failed)
    result = cli.run("partitions", "get", done, failed, stuck, "--exit-status", "--no-output",
                     "-o", "jsonl")
    assert result.exit_code == 3, result.stderr
    assert [o["id"] for o in result.jsonl()] == [done, failed, stuck]
    assert [brief(e) for e in error_objects(result.stderr)] == [("run_failed", failed, 3),
                                                                ("timeout", stuck, 8)]


# ---- -o csv (docs/design.md §12) -----------------------------------------------------


def csv_rows(text: str) -> list[list[str]]:
    import csv
    import io

    assert text.endswith("\r\n"), text  # RFC 4180 line ends
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_on_get_watch_and_list(cli: Cli) -> None:
    done, failed = create(cli, filename="=HYPERLINK(1).pdf"), create(cli, "failed")
    settled(cli, done, failed)
    header = ["id", "status", "chunks", "credits", "created_at", "filename"]
    got = cli.run("partitions", "get", done, failed, "-o", "csv", input=b"")
    assert got.exit_code == 0, got.stderr
    rows = csv_rows(got.stdout)
    assert rows[0] == header
    assert [(r[0], r[1]) for r in rows[1:]] == [(done, "completed"), (failed, "failed")]
    assert rows[1][5] == "'=HYPERLINK(1).pdf"  # a formula is not left to run
    assert rows[1][2].isdigit() and rows[2][2] == ""

    watched = cli.run("partitions", "watch", done, failed, "-o", "csv", "--fields", "id,status",
                      input=b"")
    assert watched.exit_code == 3, watched.stderr
    assert csv_rows(watched.stdout) == [["id", "status"], [done, "completed"], [failed, "failed"]]

    listed = cli.run("partitions", "list", "--limit", "2", "-o", "csv", "--fields",
                     "id,file.filename", input=b"")
    assert listed.exit_code == 0, listed.stderr
    assert csv_rows(listed.stdout)[0] == ["id", "file.filename"]
    assert {r[0] for r in csv_rows(listed.stdout)[1:]} == {done, failed}


def test_csv_list_with_no_match_is_just_the_header(cli: Cli) -> None:
    result = cli.run("partitions", "list", "--filename", "no-such-" + uuid.uuid4().hex, "-o", "csv",
                     input=b"")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "id,status,chunks,credits,created_at,filename\r\n"


def test_synchronous_create_on_a_terminal_shows_a_spinner(cli: Cli) -> None:
    cli.emu.add_fault(path="/v1/partitions$", method="POST", delay=1.0)  # time to draw it
    code, received = run_in_script(cli, "partitions", "create", str(SAMPLE_PDF),
                                   "--key", KEY_PHRASE)
    assert code == 0, received
    assert re.search(r"waiting for the run +\d:\d\d:\d\d", "\n".join(plain(received))), received
