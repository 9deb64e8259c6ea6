"""The bulk engine: `ordered` and its `Ledger`, and the reports of a run stopped early."""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest

from retab_cli import errors
from retab_cli.bulk import (
    DONE,
    FAILED,
    IN_FLIGHT,
    NOT_SENT,
    Ledger,
    Outcome,
    ordered,
    report_stopped,
    save_private,
)
from retab_cli.creating import CreateOptions, report_unfinished
from retab_cli.documents import from_path


class Out:
    """A Reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors: list[errors.RetabError] = []

    def warn(self, text: str) -> None:
        self.lines.append(text)

    def error(self, error: errors.RetabError) -> None:
        self.errors.append(error)


class Gates:
    """A worker whose items finish when the test opens their gate (no sleeping)."""

    def __init__(self, items: list[str]) -> None:
        self.gates = {item: asyncio.Event() for item in items}
        self.started: list[str] = []
        self.fail: dict[str, errors.RetabError] = {}

    async def __call__(self, item: str) -> str:
        self.started.append(item)
        await self.gates[item].wait()
        if item in self.fail:
            raise self.fail[item]
        return item.upper()

    def open(self, *items: str) -> None:
        for item in items:
            self.gates[item].set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_results_come_in_input_order_and_the_ledger_ends_answered() -> None:
    items = ["a", "b", "c", "d"]
    work, shown = Gates(items), list[Outcome]()
    work.fail["c"] = errors.NotFoundError("gone")
    ledger = Ledger(items)

    async def main() -> None:
        task = asyncio.ensure_future(ordered(items, work, shown.append, limit=2, ledger=ledger))
        await settle()
        assert work.started == ["a", "b"]  # the limit
        work.open("b")
        await settle()
        assert shown == []  # b waits for a
        assert ledger.state == bytearray([IN_FLIGHT, DONE, IN_FLIGHT, NOT_SENT])
        work.open("a", "c", "d")
        await task

    asyncio.run(main())
    assert [(o.item, o.value, type(o.error)) for o in shown] == [
        ("a", "A", type(None)), ("b", "B", type(None)), ("c", None, errors.NotFoundError),
        ("d", "D", type(None))]
    assert ledger.where(DONE) == ["a", "b", "d"] and ledger.where(FAILED) == ["c"]


def test_a_cancelled_run_emits_every_answer_it_got_first() -> None:
    items = [f"i{n}" for n in range(6)]
    work, shown = Gates(items), list[Outcome]()
    ledger = Ledger(items)

    async def main() -> None:
        task = asyncio.ensure_future(ordered(items, work, shown.append, limit=3, ledger=ledger))
        await settle()
        work.open("i1", "i2")  # answered, held behind i0; i3 and i4 then start
        await settle()
        assert shown == []
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [o.item for o in shown] == ["i1", "i2"]
    assert ledger.where(DONE) == ["i1", "i2"]
    assert ledger.where(IN_FLIGHT) == ["i0", "i3", "i4"]
    assert ledger.where(NOT_SENT) == ["i5"]


def test_an_auth_error_stops_the_rest_and_is_raised_once() -> None:
    items = ["a", "b", "c", "d"]
    work, shown = Gates(items), list[Outcome]()
    work.fail["a"] = errors.AuthError("bad key", partition_id="a")
    ledger = Ledger(items)

    async def main() -> None:
        task = asyncio.ensure_future(ordered(items, work, shown.append, limit=2, ledger=ledger))
        await settle()
        work.open("a")
        await settle()
        work.open("b")  # in flight when it stopped: finished and shown all the same
        with pytest.raises(errors.AuthError) as caught:
            await task
        assert caught.value.partition_id is None

    asyncio.run(main())
    assert [o.item for o in shown] == ["b"]
    assert ledger.state == bytearray([FAILED, DONE, NOT_SENT, NOT_SENT])


def a_ledger(done: int, failed: int, flying: int, unsent: int) -> Ledger:
    states = [DONE] * done + [FAILED] * failed + [IN_FLIGHT] * flying + [NOT_SENT] * unsent
    ledger = Ledger([f"prtn_{n:03}" for n in range(len(states))])
    ledger.state = bytearray(states)
    return ledger


def test_a_short_stop_report_names_every_set() -> None:
    out = Out()
    report_stopped(out, "cancelled", a_ledger(2, 1, 2, 1), "interrupted")
    assert out.lines == [
        "interrupted: cancelled 2 of 6",
        "  cancelled (2): prtn_000 prtn_001",
        "  not cancelled (1): prtn_002",
        "  outcome unknown, in flight (2): prtn_003 prtn_004",
        "  not sent (1): prtn_005"]
    out = Out()
    report_stopped(out, "deleted", a_ledger(3, 0, 0, 0), "stdout was closed")
    assert out.lines == ["deleted all 3; stdout was closed"]


def test_a_long_stop_report_writes_the_full_lists_to_a_private_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = Out()
    ledger = a_ledger(25, 0, 3, 30)
    report_stopped(out, "deleted", ledger, "interrupted")
    assert out.lines[0] == "interrupted: deleted 25 of 58"
    assert out.lines[1] == "  deleted (25): " + " ".join(ledger.items[:20]) + " …"
    assert out.lines[3] == "  not sent (30): " + " ".join(ledger.items[28:48]) + " …"
    path = out.lines[4].split("the full lists: ")[1].split(";")[0]
    assert out.lines[4] == (f"  the full lists: {path}; to finish, retab partitions delete - "
                            f"--yes < {path}")
    assert Path(path).parent == tmp_path / "cache" / "retab"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = Path(path).read_text().splitlines()
    assert lines[:3] == ["# retab partitions delete, interrupted: deleted 25 of 58",
                         "# Plain lines: the ids still to do (outcome unknown, then not sent).",
                         "# deleted (25)"]
    # What `delete -` would read back: the ids in flight, then those not sent.
    plain = [line for line in lines if not line.startswith("#")]
    assert plain == ledger.items[25:]
    assert [line[2:] for line in lines if line.startswith("# prtn_")] == ledger.items[:25]


def test_a_report_survives_a_file_it_cannot_write(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("a file, not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    assert save_private("x", prefix="p-") is None
    out = Out()
    report_stopped(out, "cancelled", a_ledger(0, 0, 0, 21), "interrupted")
    assert out.lines[-1] == "  (the full lists could not be saved)"


def test_save_private_falls_back_to_the_temp_dir(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("a file, not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    saved = save_private("ids\n", prefix="p-")
    assert saved is not None and Path(saved).parent == tmp_path
    assert Path(saved).name.startswith("retab-p-") and Path(saved).read_text() == "ids\n"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600


def create_case(tmp_path: Path, count: int) -> tuple[CreateOptions, list[Any], list[str]]:
    options = CreateOptions(key="invoice number", background=True)
    docs = []
    for n in range(count):
        path = tmp_path / f"d {n}.txt"
        path.write_text(f"Invoice number: {n}")
        docs.append(from_path(str(path), filename=None, mime_type=None, warn=print))
    return options, docs, [f"{n:032x}" for n in range(count)]


def test_an_unfinished_create_gives_a_safe_retry_per_document(tmp_path: Path) -> None:
    options, docs, keys = create_case(tmp_path, 5)
    ledger = Ledger(range(5))
    ledger.state = bytearray([DONE, IN_FLIGHT, FAILED, NOT_SENT, IN_FLIGHT])
    out = Out()
    report_unfinished(out, options, docs, keys, ledger, wait=False, why="interrupted")
    assert out.lines == [
        "interrupted: created 1 of 5 run(s); 1 failed; 2 outcome unknown (in flight); "
        "1 not sent",
        "interrupted before every create was answered; to retry safely (no duplicate runs):",
        "  # outcome unknown, in flight (2)",
        f"  {options.rerun(docs[1], keys[1], False)}",
        f"  {options.rerun(docs[4], keys[4], False)}",
        "  # not sent (1)",
        f"  {options.rerun(docs[3], keys[3], False)}"]
    assert shlex.split(out.lines[3])[-2:] == ["--idempotency-key", keys[1]]


def test_a_long_unfinished_create_writes_a_script(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    options, docs, keys = create_case(tmp_path, 30)
    ledger = Ledger(range(30))
    ledger.state = bytearray([DONE] * 3 + [IN_FLIGHT] * 4 + [NOT_SENT] * 23)
    out = Out()
    created = ["prtn_a", "prtn_b", "prtn_c"]
    report_unfinished(out, options, docs, keys, ledger, wait=True, why="stdout was closed",
                      created=created)
    assert out.lines[:3] == [
        "stdout was closed: created 3 of 30 run(s); 4 outcome unknown (in flight); 23 not sent",
        "  created (3): prtn_a prtn_b prtn_c",
        "stdout was closed before every create was answered; to retry safely (no duplicate "
        "runs):"]
    script = out.lines[3].split()[1]
    assert out.lines[3] == (f"  sh {script}   (a private file: the 27 command(s) and the ids "
                            "created)")
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o600
    lines = Path(script).read_text().splitlines()
    assert lines[:4] == ["# retab partitions create, stdout was closed", "# created: prtn_a",
                         "# created: prtn_b", "# created: prtn_c"]
    commands = [line for line in lines if not line.startswith("#")]
    assert commands == [options.rerun(docs[i], keys[i], True) for i in range(3, 30)]
    assert all(shlex.split(c)[-3:] == ["--wait", "--idempotency-key", keys[i + 3]]
               for i, c in enumerate(commands))


def test_outcomes_are_plain_data() -> None:
    assert Outcome("a") == Outcome("a", None, None)
