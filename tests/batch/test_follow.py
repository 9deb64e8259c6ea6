"""The watch engine left open (a batch adds runs as it creates them), on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from test_watch import partition
from test_watch_sweep import Account, forever, life, watcher
from virtual_time import run

from retab_cli.client import ApiResult
from retab_cli.errors import AuthError
from retab_cli.watch import Event, Runs, Watcher


async def follow(w: Watcher, adds: Sequence[tuple[float, str, dict[str, Any] | None]],
                 close_at: float) -> list[Event]:
    """Run the watch while adding runs at given times, then say no more will come."""

    async def feed() -> None:
        loop = asyncio.get_running_loop()
        for at, pid, initial in adds:
            await asyncio.sleep(max(0.0, at - loop.time()))
            w.add(pid, initial)
        await asyncio.sleep(max(0.0, close_at - loop.time()))
        w.no_more_runs()

    feeder = asyncio.create_task(feed())
    async with contextlib.aclosing(w.run()) as events:
        seen = [event async for event in events]
    await feeder
    return seen


def finals(events: list[Event]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        if e.kind not in ("status", "retry"):
            out.setdefault(e.run.id, []).append(e.kind)
    return out


def test_an_open_watch_waits_for_runs_added_later_and_for_no_more_runs() -> None:
    async def main() -> None:
        account = Account({"a": life(3.0), "b": life(4.0)})
        w = watcher(account, [], open_ended=True, sweep_above=0)
        loop = asyncio.get_running_loop()
        events = await follow(w, [(5.0, "a", None), (20.0, "b", None)], close_at=30.0)
        assert finals(events) == {"a": ["ended"], "b": ["ended"]}
        assert loop.time() >= 30.0  # it ended when told no more runs come, not before
        ended = [e for e in events if e.kind == "ended"]
        assert [e.data["status"] for e in ended if e.data] == ["completed", "completed"]
        assert [e.data["output"] for e in ended if e.data] == [
            [{"key": "invoice", "pages": [1, 2]}]] * 2  # the full objects

    run(main)


def test_an_open_watch_with_no_runs_ends_when_told() -> None:
    async def main() -> None:
        w = watcher(Account({}), [], open_ended=True)
        assert await follow(w, [], close_at=3.0) == []

    run(main)


def test_many_runs_added_turn_polls_into_sweeps() -> None:
    async def main() -> None:
        scripts = {f"r{i:02}": life(10.0 + i) for i in range(40)}
        account = Account(scripts, rate=20.0)
        w = watcher(account, [], open_ended=True, sweep_above=0)
        adds = [(0.1 * i, pid, None) for i, pid in enumerate(scripts)]
        events = await follow(w, adds, close_at=5.0)
        assert finals(events) == {pid: ["ended"] for pid in scripts}
        assert account.lists  # swept
        # Each run: fetched in full once when it ended, and (nearly) never polled alone.
        for pid in scripts:
            gets = account.gets_for(pid)
            assert [g.include_output for g in gets][-1:] == [True]
            assert len(gets) <= 2, (pid, gets)

    run(main)


class SlowFullFetch(Account):
    """The full object of run `a` takes 2 s to arrive: a poll of it is still on its way
    when sweeps take over and fetch it too."""

    async def get(self, partition_id: str, *, include_output: bool = True,
                  attempts: int | None = None) -> ApiResult:
        if partition_id == "a" and include_output:
            await asyncio.sleep(2.0)
        return await super().get(partition_id, include_output=include_output,
                                 attempts=attempts)


def test_a_run_seen_ended_by_a_poll_and_a_sweep_ends_once() -> None:
    async def main() -> None:
        scripts = {"a": life(0.0)} | {f"b{i}": life(30.0) for i in range(5)}
        account = SlowFullFetch(scripts, rate=50.0)
        w = watcher(account, [], open_ended=True, sweep_above=0)
        adds = [(0.0, "a", None)] + [(0.2, f"b{i}", None) for i in range(5)]
        events = await follow(w, adds, close_at=1.0)
        assert [g.include_output for g in account.gets_for("a")] == [False, True, True]
        assert finals(events) == {pid: ["ended"] for pid in scripts}
        # The watch counted its runs right: it ended after the b's did, not when a did twice.
        assert max(e.at for e in events) >= 30.0

    run(main)


def test_forget_drops_an_ended_run_and_keeps_an_active_one() -> None:
    async def main() -> None:
        account = Account({"a": life(1.0), "b": forever()})
        w = watcher(account, ["a", "b"], open_ended=True)
        async with contextlib.aclosing(w.run()) as events:
            async for event in events:
                if event.kind == "ended":
                    w.forget("a")
                    w.forget("b")  # still active: kept
                    break
        assert [r.id for r in w.runs] == ["b"]

    run(main)


def test_after_an_expensive_sweep_a_few_runs_added_get_polls_not_another_sweep() -> None:
    """A busy account (450 other active runs: a sweep takes 7 pages) makes sweeps dear:
    the watcher remembers what the last one cost, so runs added later, as long as they are
    no more than that, are polled one by one instead of paying for another sweep."""
    async def main() -> None:
        others = {f"z{i:03}": forever() for i in range(450)}
        mine = {f"m{i}": life(40.0) for i in range(6)}
        account = Account(others | mine, rate=50.0)
        w = watcher(account, [], open_ended=True, sweep_above=0)
        adds = [(0.0, f"m{i}", None) for i in range(4)] + [(5.0, "m4", None), (6.0, "m5", None)]
        events = await follow(w, adds, close_at=7.0)
        assert finals(events) == {pid: ["ended"] for pid in mine}
        sweeps = account.sweeps()
        assert [len(pages) for pages in sweeps] == [7]  # one sweep, then polls only
        assert all(listed.at < 5.0 for listed in account.lists)
        assert all(account.gets_for(pid) for pid in ("m4", "m5"))  # polled on their own

    run(main)


def test_a_run_added_with_its_object_before_the_start_is_seeded_not_fetched() -> None:
    async def main() -> None:
        account = Account({"a": life(0.0)})
        w = watcher(account, [], open_ended=True)
        w.add("a", partition("a", "completed", True))  # create returned it whole
        events = await follow(w, [], close_at=1.0)
        assert finals(events) == {"a": ["ended"]}
        assert account.gets_for("a") == []

    run(main)


def test_a_run_added_later_is_fetched_at_once_unless_its_object_came_with_it() -> None:
    async def main() -> None:
        account = Account({"seen": life(30.0), "unseen": life(30.0)})
        w = watcher(account, [], open_ended=True, interval=4.0)
        adds = [(5.0, "seen", account.obj("seen", "in_progress", False)), (5.0, "unseen", None)]
        events = await follow(w, adds, close_at=6.0)
        assert finals(events) == {"seen": ["ended"], "unseen": ["ended"]}
        assert account.gets_for("unseen")[0].at == pytest.approx(5.0)
        # Seen when added: its first poll waits the interval (jittered by ±20%).
        assert account.gets_for("seen")[0].at >= 5.0 + 4.0 * 0.8
        assert next(e.new for e in events if e.run.id == "seen") == "in_progress"

    run(main)


def test_a_run_added_twice_is_watched_once() -> None:
    async def main() -> None:
        account = Account({"a": life(3.0)})
        w = watcher(account, [], open_ended=True)
        events = await follow(w, [(0.0, "a", None), (1.0, "a", None)], close_at=2.0)
        assert finals(events) == {"a": ["ended"]}
        assert [r.id for r in w.runs] == ["a"]

    run(main)


def test_a_run_added_after_a_fatal_error_is_stopped_at_once() -> None:
    async def main() -> None:
        denied = AuthError("Invalid API key", status=401)
        account = Account({"a": lambda t: denied, "b": life(3.0)})
        w = watcher(account, [], open_ended=True)
        events = await follow(w, [(0.0, "a", None), (5.0, "b", None)], close_at=6.0)
        assert finals(events) == {"a": ["fatal"], "b": ["stopped"]}
        assert account.gets_for("b") == []
        assert w.fatal is denied

    run(main)


def test_after_sweeps_hand_over_runs_added_later_get_polls_again() -> None:
    """Sweeps end when their runs do; runs added after that must be polled (a sweeper
    thought still running would leave them unwatched until the timeout)."""
    async def main() -> None:
        first = {f"a{i}": life(3.0) for i in range(10)}
        later = {"b0": life(25.0), "b1": life(25.0)}
        account = Account(first | later, rate=50.0)
        w = watcher(account, [], open_ended=True, sweep_above=0, timeout=100.0)
        adds = [(0.0, pid, None) for pid in first] + [(20.0, pid, None) for pid in later]
        events = await follow(w, adds, close_at=21.0)
        assert finals(events) == {pid: ["ended"] for pid in first | later}
        assert account.lists and all(listed.at < 20.0 for listed in account.lists)  # b's: polled
        assert max(e.at for e in events) < 40.0

    run(main)


def test_finished_tasks_are_not_kept() -> None:
    """A long batch spawns a poll task per run: finished ones must not pile up."""
    async def main() -> None:
        runs = Runs([], fail_fast=False, clock=lambda: 0.0,
                    wall=lambda: datetime(2026, 1, 1, tzinfo=UTC), give_up_after=1.0,
                    not_found_tolerance=1)

        async def nothing() -> None:
            return None

        for _ in range(3):
            runs.spawn(nothing())
        await asyncio.sleep(0.1)
        assert runs._tasks == set()

    run(main)


def test_three_runs_added_are_polled_not_swept() -> None:
    """A sweep costs at least a page per active status (three): with no more runs than
    that, per-run polls are as cheap, even when sweeping is allowed from the first run."""
    async def main() -> None:
        scripts = {f"r{i}": life(6.0) for i in range(3)}
        account = Account(scripts, rate=50.0)
        w = watcher(account, [], open_ended=True, sweep_above=0)
        events = await follow(w, [(0.0, pid, None) for pid in scripts], close_at=1.0)
        assert finals(events) == {pid: ["ended"] for pid in scripts}
        assert account.lists == []
        assert all(account.gets_for(pid) for pid in scripts)

    run(main)
