"""The watch engine left open (a batch adds runs as it creates them), on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from test_watch_sweep import Account, forever, life, watcher
from virtual_time import run

from retab_cli.client import ApiResult
from retab_cli.watch import Event, Watcher


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
