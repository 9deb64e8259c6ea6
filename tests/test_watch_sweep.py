"""Sweep mode of the polling engine, on virtual time (see tests/test_watch.py).

The fake client here simulates an account: every run, watched or not, has a status
timeline; `list` answers from it at the time of the request (status filter, `from_date`,
`after` cursors, newest first) and `get` answers as the scripted client does.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_watch import (
    LATENCY,
    FakeClient,
    Middle,
    Script,
    Step,
    base_at,
    collect,
    kinds,
    partition,
    still_pending,
    timeline,
)
from virtual_time import now, run

from retab_cli.budget import Budget
from retab_cli.client import ApiResult
from retab_cli.errors import AuthError, NotFoundError, ServerError
from retab_cli.parsing import parse_time
from retab_cli.sweep import SWEEP_STATUSES, SWEEP_THRESHOLD
from retab_cli.watch import MAX_BACKOFF, Event, Watcher

ACTIVE = frozenset(SWEEP_STATUSES)
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
# A list request's answer instead of the account's: an exception to raise, or a body.
Override = Callable[[float, dict[str, Any]], BaseException | dict[str, Any] | None]


@dataclass
class Got:
    at: float
    id: str
    include_output: bool
    attempts: int | None
    data: dict[str, Any] | None = None


@dataclass
class Listed:
    at: float
    params: dict[str, Any]
    ids: list[str] = field(default_factory=list)


def stamp(seconds: float) -> str:
    return (DAY0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class Account:
    """A client over a simulated account; `scripts` holds every run, watched or not."""

    def __init__(
        self,
        scripts: dict[str, Script],
        *,
        created: Mapping[str, str] | None = None,
        rate: float = 5.0,
        latency: float = LATENCY,
        override: Override | None = None,
        hidden: Callable[[str, float], bool] | None = None,
        latency_of: Mapping[str, float] | None = None,
    ) -> None:
        self.budget = Budget(rate, 2.0, clock=asyncio.get_running_loop().time)
        self.scripts = scripts
        self.created = {pid: stamp(i) for i, pid in enumerate(scripts)} | dict(created or {})
        # Newest first, as the API lists by default; ties broken by id, like the emulator.
        self.order = sorted(scripts, key=lambda p: (parse_time(self.created[p]) or DAY0, p), reverse=True)
        self.latency = latency
        self.latency_of = dict(latency_of or {})  # per id, for its GETs, instead of `latency`
        self.override = override
        self.hidden = hidden or (lambda pid, t: False)
        self.gets: list[Got] = []
        self.lists: list[Listed] = []

    def status_at(self, pid: str, t: float) -> Step:
        return self.scripts[pid](t)

    def obj(self, pid: str, status: str, full: bool) -> dict[str, Any]:
        return {**partition(pid, status, full), "created_at": self.created[pid]}

    async def get(
        self, partition_id: str, *, include_output: bool = True, attempts: int | None = None
    ) -> ApiResult:
        await self.budget.acquire()
        got = Got(now(), partition_id, include_output, attempts)
        self.gets.append(got)
        step = self.status_at(partition_id, now())
        await asyncio.sleep(self.latency_of.get(partition_id, self.latency))
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, str)
        got.data = self.obj(partition_id, step, include_output)
        return ApiResult(got.data, 200, "req_fake")

    async def list(self, params: Mapping[str, str | int]) -> ApiResult:
        await self.budget.acquire()
        t = now()
        listed = Listed(t, dict(params))
        self.lists.append(listed)
        answer = self.override(t, listed.params) if self.override else None
        await asyncio.sleep(self.latency)
        if isinstance(answer, BaseException):
            raise answer
        if answer is not None:
            return ApiResult(answer, 200, "req_fake")
        limit = int(params.get("limit", 10))
        assert 1 <= limit <= 100
        status = params["status"]
        first_day = str(params.get("from_date", "0000-00-00"))
        after = params.get("after")
        start = self.order.index(str(after)) + 1 if after is not None else 0
        matching = [
            pid
            for pid in self.order[start:]
            if self.status_at(pid, t) == status
            and self.created[pid][:10] >= first_day
            and not self.hidden(pid, t)
        ]
        page = matching[:limit]
        listed.ids = page
        more = len(matching) > limit
        body = {
            "data": [self.obj(pid, str(status), True) for pid in page],
            "list_metadata": {"before": None, "after": page[-1] if more else None},
        }
        return ApiResult(body, 200, "req_fake")

    # `list` is a method here: the builtin is spelled out in the annotations below.
    def gets_for(self, pid: str) -> builtins.list[Got]:
        return [g for g in self.gets if g.id == pid]

    def sweeps(self) -> builtins.list[builtins.list[Listed]]:
        """The list requests grouped by sweep (each starts with the first pending page)."""
        out: builtins.list[builtins.list[Listed]] = []
        for listed in self.lists:
            if listed.params["status"] == SWEEP_STATUSES[0] and "after" not in listed.params:
                out.append([])
            out[-1].append(listed)
        return out


def watcher(client: Any, ids: list[str], **kw: Any) -> Watcher:
    kw.setdefault("rng", random.Random(7))
    return Watcher(
        client,
        ids,
        clock=asyncio.get_running_loop().time,
        wall=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        **kw,
    )


def life(end: float, outcome: str = "completed", *, queued: float = 0.0, started: float = 2.0) -> Script:
    return timeline((0, "pending"), (queued, "queued"), (started, "in_progress"), (end, outcome))


def forever(status: str = "in_progress") -> Script:
    return lambda t: status


def reported(events: list[Event]) -> dict[str, Event]:
    """The first terminal status event per run."""
    out: dict[str, Event] = {}
    for e in events:
        if e.kind == "status" and e.new not in ACTIVE:
            out.setdefault(e.run.id, e)
    return out


# ---- the budget and the delay to notice an end -----------------------------------------


def test_500_runs_at_5_rps_stay_in_budget_and_each_end_is_noticed_within_two_intervals() -> None:
    async def main() -> None:
        rng = random.Random(3)
        ends = {f"w{i:03}": rng.uniform(30, 600) for i in range(500)}
        scripts: dict[str, Script] = {
            pid: life(end, "failed" if i % 25 == 0 else "completed", started=rng.uniform(1, 20))
            for i, (pid, end) in enumerate(ends.items())
        }
        # Other files in the same account: 150 runs active throughout, 100 already done.
        scripts |= {f"o{i:03}": forever(("queued", "in_progress")[i % 2]) for i in range(150)}
        scripts |= {f"d{i:03}": forever("completed") for i in range(100)}
        client = Account(scripts, rate=5.0)
        w = watcher(client, list(ends))
        events = await collect(w)

        assert w.exit_code() == 3
        assert [r.status for r in w.runs].count("failed") == 20
        last = max(g.at for g in client.gets)
        requests = len(client.gets) + len(client.lists)
        assert requests <= 5.0 * last * 1.10
        # Every run was fetched once in full, at its end; the last 50 were polled on their
        # own (cheap view) once sweeps handed over.
        full = [g for g in client.gets if g.include_output]
        assert len(full) == len({g.id for g in full}) == 500
        handover = max(s.at for s in client.lists)
        assert all(g.attempts == 1 for g in client.gets if g.at < handover)
        assert all(g.at > handover for g in client.gets if not g.include_output)

        # What each sweep cost: its pages and the fetches it made (until the next one).
        starts = [s[0].at for s in client.sweeps()]
        costs = []
        for (begin, end) in itertools.pairwise(starts):
            pages = sum(1 for s in client.lists if begin <= s.at < end)
            fetched = sum(1 for g in client.gets if begin <= g.at < end)
            costs.append(pages + fetched)
        lags = {pid: e.at - ends[pid] for pid, e in reported(events).items()}
        assert len(lags) == 500
        assert max(costs) / 5.0 < 5.0  # ~7 pages and a few ends
        slack = 1.0
        for pid, lag in lags.items():
            allowed = max(2 * base_at(ends[pid]) * 1.2, max(costs) / 5.0) + slack
            assert 0 < lag <= allowed, (pid, ends[pid], lag, allowed)
        assert max(lags.values()) < 500 / 5.0 / 5  # per-run polls: N / rate = 100 s
        # Sweeps pace themselves at the interval while it is the larger constraint.
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(g >= 0.8 - 1e-9 for g in gaps)
        assert max(gaps) <= 12.0 + 1e-9

    run(main)


def test_sweeps_never_outpace_their_own_cost_under_the_budget() -> None:
    async def main() -> None:
        # 2,000 active runs of other files: 20+ pages a sweep. At 5 req/s, a sweep may
        # not come round faster than its pages take, even while the interval is 1 s.
        scripts: dict[str, Script] = {f"w{i:03}": life(40 + i * 0.1) for i in range(60)}
        scripts |= {f"o{i:04}": forever() for i in range(2000)}
        client = Account(scripts, rate=5.0)
        w = watcher(client, [p for p in scripts if p.startswith("w")])
        await collect(w)
        assert w.exit_code() == 0
        sweeps = client.sweeps()
        assert len(sweeps) >= 2
        for a, b in itertools.pairwise(sweeps):
            cost = len(a) + sum(1 for g in client.gets if a[0].at <= g.at < b[0].at)
            assert b[0].at - a[0].at >= cost / 5.0 - 1e-9
        last = max(g.at for g in client.gets)
        assert len(client.gets) + len(client.lists) <= 5.0 * last * 1.10

    run(main)


# ---- runs missing from the listing -----------------------------------------------------


def test_a_run_missing_from_the_listing_is_fetched_once_in_full_and_ended_with_it() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": life(300) for i in range(60)}
        scripts["w00"] = life(20.0, "completed")
        scripts["w01"] = life(25.0, "cancelled")
        client = Account(scripts)
        w = watcher(client, list(scripts), timeout=100)
        events = await collect(w)
        for pid, outcome in (("w00", "completed"), ("w01", "cancelled")):
            gets = client.gets_for(pid)
            assert len(gets) == 1
            assert gets[0].include_output and gets[0].attempts == 1
            assert kinds(events, pid) == ["status:queued", "status:in_progress", f"status:{outcome}",
                                          "ended"]
            ended = next(e for e in events if e.run.id == pid and e.kind == "ended")
            assert ended.data is gets[0].data
            assert w.runs[int(pid[1:])].raw is gets[0].data
        ended = next(e for e in events if e.run.id == "w00" and e.kind == "ended")
        assert ended.data is not None and ended.data["output"]  # the full object
        # the still-active runs came from the listing alone
        assert not client.gets_for("w02")
        assert w.runs[2].outcome == "timeout"
        assert w.exit_code() == 5

    run(main)


def test_a_run_moving_between_the_status_queries_is_fetched_and_stays_watched() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": life(200) for i in range(60)}
        scripts["w07"] = timeline((0, "queued"), (30.0, "in_progress"), (200, "completed"))

        def hidden(pid: str, t: float) -> bool:
            # Missing from every query of the sweeps right after its move (a move between
            # the per-status queries, or an index that lags, look the same to the watch).
            return pid == "w07" and 30.0 <= t < 34.0

        client = Account(scripts, hidden=hidden)
        w = watcher(client, list(scripts))
        events = await collect(w)
        gets = client.gets_for("w07")
        during = [g for g in gets if g.at < 100]
        assert len(during) >= 1 and all(g.include_output for g in during)
        assert {g.data["status"] for g in during if g.data} == {"in_progress"}
        assert kinds(events, "w07") == ["status:queued", "status:in_progress", "status:completed", "ended"]
        moved = next(e for e in events if e.run.id == "w07" and e.new == "in_progress")
        assert moved.data is during[0].data  # the fetched object made the event
        assert len(gets) == len(during) + 1  # then one fetch at its end
        assert w.exit_code() == 0

    run(main)


def test_a_never_seen_run_404_is_tolerated_then_gone() -> None:
    async def main() -> None:
        lag = NotFoundError("Partition not found", status=404)
        scripts: dict[str, Script] = {f"w{i:02}": life(60) for i in range(60)}
        scripts["ghost"] = lambda t: lag
        client = Account(scripts)
        w = watcher(client, list(scripts))
        events = await collect(w)
        assert kinds(events, "ghost") == ["retry", "retry", "retry", "gone"]
        assert len(client.gets_for("ghost")) == 4
        assert next(r for r in w.runs if r.id == "ghost").outcome == "not_found"
        assert w.exit_code() == 6

    run(main)


def test_a_404_after_the_run_was_listed_means_deleted() -> None:
    async def main() -> None:
        deleted = NotFoundError("Partition not found", status=404)
        scripts: dict[str, Script] = {f"w{i:02}": life(60) for i in range(60)}
        scripts["w03"] = timeline((0, "queued"), (10.0, deleted))
        client = Account(scripts)
        w = watcher(client, list(scripts))
        events = await collect(w)
        assert kinds(events, "w03") == ["status:queued", "gone"]
        assert len(client.gets_for("w03")) == 1
        assert w.exit_code() == 6

    run(main)


# ---- failing sweeps ------------------------------------------------------------------------


def test_a_cursor_that_does_not_advance_fails_the_sweep_then_the_watch_goes_on() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:03}": life(80 + i * 0.1) for i in range(120)}

        def override(t: float, params: dict[str, Any]) -> dict[str, Any] | None:
            if 20 <= t < 30 and params["status"] == "in_progress":
                return {"data": [], "list_metadata": {"before": None, "after": "w000"}}
            return None

        client = Account(scripts, override=override)
        w = watcher(client, list(scripts))
        events = await collect(w)
        stuck = [s for s in client.sweeps() if 20 <= s[-1].at < 30]
        assert stuck
        for sweep in stuck:  # pending, queued, then in_progress twice: the repeat stops it
            assert [s.params["status"] for s in sweep] == ["pending", "queued", "in_progress", "in_progress"]
            assert sweep[-1].params["after"] == "w000"
        retries = [e for e in events if e.kind == "retry"]
        assert retries and all("cursor did not advance" in str(e.error) for e in retries)
        assert {e.run.id for e in retries} == set(scripts)  # all were in_progress then
        assert not [g for g in client.gets if g.at < 40]  # nothing was presumed ended
        assert w.exit_code() == 0 and all(r.last_error is None for r in w.runs)

    run(main)


def test_transient_sweep_failures_back_off_and_the_watch_recovers() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:03}": life(200 + i * 0.1) for i in range(80)}
        down = ServerError("HTTP 503 Service Unavailable", status=503)

        def override(t: float, params: dict[str, Any]) -> BaseException | None:
            return down if 20 <= t < 100 else None

        client = Account(scripts, override=override)
        w = watcher(client, list(scripts))
        events = await collect(w)
        failing = [s[0].at for s in client.sweeps() if 20 <= s[0].at < 100]
        gaps = [b - a for a, b in itertools.pairwise(failing)]
        assert len(gaps) >= 3
        assert gaps[2] > gaps[0] * 2.5  # doubling (with ±20% jitter)
        assert max(gaps) <= MAX_BACKOFF * 1.2 + 1.0
        assert all(len(s) == 1 for s in client.sweeps() if 20 <= s[0].at < 100)
        retry = next(e for e in events if e.kind == "retry")
        assert retry.error is down
        assert kinds(events, "w000")[-2:] == ["status:completed", "ended"]
        assert w.exit_code() == 0

    run(main)


def test_sweeps_failing_for_give_up_after_give_up_every_run_naming_the_last_error() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:03}": life(500) for i in range(80)}
        first = ServerError("HTTP 503 Service Unavailable", status=503)
        last = ServerError("HTTP 502 Bad Gateway", status=502)

        def override(t: float, params: dict[str, Any]) -> BaseException | None:
            return None if t < 10 else first if t < 40 else last

        client = Account(scripts, override=override)
        w = watcher(client, list(scripts), give_up_after=60)
        events = await collect(w)
        first_failure = next(s.at for s in client.lists if s.at >= 10) + LATENCY
        gave_up = [e for e in events if e.kind == "gave_up"]
        assert len(gave_up) == 80
        assert all(e.error is last for e in gave_up)
        assert all(60.0 <= e.at - first_failure <= 60.0 + 2 * LATENCY for e in gave_up)
        assert all((r.outcome, r.last_error) == ("gave_up", last.message) for r in w.runs)
        assert w.exit_code() == 1

    run(main)


def test_a_401_during_a_sweep_stops_everything_with_4() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:03}": life(500) for i in range(80)}
        denied = AuthError("Invalid API key", status=401)

        def override(t: float, params: dict[str, Any]) -> BaseException | None:
            return denied if t >= 15 and params["status"] == "queued" else None

        client = Account(scripts, override=override)
        w = watcher(client, list(scripts))
        events = await collect(w)
        fatal = [e for e in events if e.kind == "fatal"]
        assert len(fatal) == 1 and fatal[0].run.id == "w000" and fatal[0].error is denied
        assert w.fatal is denied
        assert events.index(fatal[0]) == len(events) - 80  # nothing observed after it
        assert [e.kind for e in events[-79:]] == ["stopped"] * 79
        assert not [c for c in client.lists if c.at > fatal[0].at]
        assert not [c for c in client.gets if c.at > fatal[0].at]
        assert w.exit_code() == 4
        assert not still_pending()

    run(main)


def test_a_401_on_an_individual_fetch_stops_everything() -> None:
    async def main() -> None:
        denied = AuthError("Invalid API key", status=401)
        scripts: dict[str, Script] = {f"w{i:03}": life(500) for i in range(80)}
        for pid in ("w010", "w011", "w012"):
            scripts[pid] = timeline((0, "queued"), (10, denied))
        client = Account(scripts)
        w = watcher(client, list(scripts))
        events = await collect(w)
        fatal = [e for e in events if e.kind == "fatal"]
        assert len(fatal) == 1 and fatal[0].run.id in ("w010", "w011", "w012")
        assert events.index(fatal[0]) == len(events) - 80  # nothing observed after it
        assert sum(1 for e in events if e.kind == "stopped") == 79
        assert w.exit_code() == 4
        assert not still_pending()

    run(main)


# ---- from_date ---------------------------------------------------------------------------


def test_from_date_is_the_earliest_utc_day_once_every_created_at_is_known() -> None:
    async def main() -> None:
        lag = NotFoundError("Partition not found", status=404)
        scripts: dict[str, Script] = {f"w{i:02}": life(100) for i in range(60)}
        scripts["late"] = timeline((0, lag), (1.5, "queued"), (100, "completed"))
        created = {
            "w00": "2025-12-31T23:59:59.123456789Z",  # the earliest: the day before
            "w01": "2026-01-01T01:00:00+02:00",  # 2025-12-31T23:00Z, written with an offset
            "w02": "2026-01-01 00:00:01z",
        }
        # An old run of another file, still active: skipped once from_date is known.
        scripts["old"] = forever()
        created["old"] = "2025-12-01T00:00:00Z"
        client = Account(scripts, created=created)
        w = watcher(client, [p for p in scripts if p != "old"])
        events = await collect(w)
        assert w.exit_code() == 0
        # "late" has no created_at until it is first seen, after a 404 or two
        seen = kinds(events, "late")
        assert seen[0] == "retry" and seen[-1] == "ended" and "status:queued" in seen
        sweeps = client.sweeps()
        for i, sweep in enumerate(sweeps):
            known = any("late" in s.ids for s in itertools.chain(*sweeps[:i]))
            days = {s.params.get("from_date") for s in sweep}
            assert days == ({"2025-12-31"} if known else {None}), (i, sweep[0].at)
        assert sweeps[-1][0].params.get("from_date") == "2025-12-31"
        assert not [s for s in client.lists if "from_date" in s.params and "old" in s.ids]

    run(main)


def test_from_date_from_initial_objects_is_sent_on_the_first_sweep() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": life(30) for i in range(60)}
        client = Account(scripts, created={"w05": "2025-11-30T12:00:00Z"})
        initial = {pid: client.obj(pid, "queued", False) for pid in scripts}
        w = watcher(client, list(scripts), initial=initial)
        await collect(w)
        assert client.lists[0].at >= 0.8  # every run was just seen: a sweep after an interval
        assert client.lists[0].params["from_date"] == "2025-11-30"
        assert all(s.params["from_date"] == "2025-11-30" for s in client.lists)
        assert w.exit_code() == 0

    run(main)


def test_no_from_date_while_a_created_at_is_unparseable() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": life(30) for i in range(60)}
        client = Account(scripts, created={"w05": "yesterday"})
        w = watcher(client, list(scripts))
        await collect(w)
        assert all("from_date" not in s.params for s in client.lists)
        assert all(s.params["limit"] == 100 for s in client.lists)

    run(main)


# ---- switching, fallback ---------------------------------------------------------------


def test_sweeps_hand_over_to_per_run_polls_at_the_threshold() -> None:
    async def main() -> None:
        ends = {f"w{i:03}": 20 + i * 0.5 for i in range(120)}
        client = Account({pid: life(end) for pid, end in ends.items()})
        w = watcher(client, list(ends))
        events = await collect(w)
        assert w.exit_code() == 0
        ended_at = sorted(e.at for e in events if e.kind == "ended")
        threshold_at = ended_at[len(ends) - SWEEP_THRESHOLD - 1]  # the 70th end
        assert client.lists and max(s.at for s in client.lists) < threshold_at
        cheap = [g for g in client.gets if not g.include_output]
        assert cheap and min(g.at for g in cheap) > threshold_at
        assert len(reported(events)) == 120

    run(main)


def test_a_busy_account_hands_over_to_per_run_polls() -> None:
    async def main() -> None:
        # 6,000 active runs of others: a sweep costs more pages than there are runs.
        scripts: dict[str, Script] = {f"w{i:02}": life(100) for i in range(60)}
        scripts |= {f"o{i:04}": forever() for i in range(6000)}
        client = Account(scripts, rate=0)
        w = watcher(client, [f"w{i:02}" for i in range(60)])
        await collect(w)
        assert len(client.sweeps()) == 1
        assert w.exit_code() == 0
        assert all(len(client.gets_for(f"w{i:02}")) > 2 for i in range(60))

    run(main)


def test_a_client_without_list_is_polled_run_by_run() -> None:
    async def main() -> None:
        client = FakeClient({f"r{i:03}": timeline((0, "queued"), (40, "completed")) for i in range(100)})
        assert not hasattr(client, "list")
        w = watcher(client, list(client.scripts))
        await collect(w)
        assert w.exit_code() == 0
        for pid in client.scripts:
            calls = client.calls_for(pid)
            assert calls[0].include_output is False and calls[-1].include_output is True

    run(main)


def test_fifty_runs_are_polled_run_by_run_even_with_list() -> None:
    async def main() -> None:
        client = Account({f"w{i:02}": life(30) for i in range(SWEEP_THRESHOLD)})
        w = watcher(client, list(client.scripts))
        await collect(w)
        assert not client.lists
        assert w.exit_code() == 0

    run(main)


# ---- timeout, fail-fast, cancellation, bugs ------------------------------------------------


def test_timeout_in_sweep_mode() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": forever("queued") for i in range(80)}
        scripts["quick"] = life(5)
        client = Account(scripts)
        w = watcher(client, list(scripts), timeout=30.0)
        events = await collect(w)
        assert now() == pytest.approx(30.0)
        assert kinds(events, "w00") == ["status:queued", "timeout"]
        assert kinds(events, "quick")[-1] == "ended"
        assert w.exit_code() == 8
        assert not still_pending()

    run(main)


def test_fail_fast_in_sweep_mode() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": life(500) for i in range(80)}
        scripts["bad"] = life(10, "failed")
        client = Account(scripts)
        w = watcher(client, list(scripts), fail_fast=True)
        events = await collect(w)
        assert now() < 20
        assert kinds(events, "bad")[-1] == "ended"
        assert sum(1 for e in events if e.kind == "stopped") == 80
        assert events[-80].run.id != "bad" and events[-81].kind == "ended"
        assert w.exit_code() == 3
        assert not still_pending()

    run(main)


def test_cancelling_the_watch_mid_sweep_leaves_nothing_running() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:03}": life(5 + i * 0.01) for i in range(200)}
        client = Account(scripts, rate=2.0)
        w = watcher(client, list(scripts))
        seen: list[Event] = []

        async def consume() -> None:
            async with contextlib.aclosing(w.run()) as events:
                async for event in events:
                    seen.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(9.0)  # individual fetches are queued on the budget now
        assert any(not r.done for r in w.runs) and client.gets
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not still_pending()
        count = len(client.gets) + len(client.lists)
        await asyncio.sleep(60)
        assert len(client.gets) + len(client.lists) == count

    run(main)


def test_an_unexpected_exception_in_a_fetch_ends_the_watch() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": life(500) for i in range(60)}
        for i in range(10):
            scripts[f"b{i}"] = timeline((0, "queued"), (5, ValueError("bug")))
        client = Account(scripts)
        w = watcher(client, list(scripts))
        with pytest.raises(ValueError, match="bug"):
            await collect(w)
        assert not still_pending()

    run(main)


# ---- exact pacing and hand-over -------------------------------------------------------------


def sweep_starts(client: Account) -> list[float]:
    return [s[0].at for s in client.sweeps()]


def test_sweeps_come_round_every_interval_from_the_start_of_the_last() -> None:
    async def main() -> None:
        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0)
        await collect(watcher(client, list(client.scripts), timeout=40, rng=Middle()))
        starts = sweep_starts(client)
        assert starts[:10] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
        # later the interval grows with the elapsed time: start + clamp(elapsed / 10)
        for a, b in itertools.pairwise(starts[10:]):
            assert b == pytest.approx(a + base_at(a + 3 * LATENCY))

    run(main)


def test_failed_sweeps_back_off_from_when_they_failed_and_a_success_resets() -> None:
    async def main() -> None:
        down = ServerError("HTTP 503 Service Unavailable", status=503)
        failing: list[float] = []

        def override(t: float, params: dict[str, Any]) -> BaseException | None:
            if 2.5 <= t < 8:
                failing.append(t)
                return down
            return None

        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0, override=override)
        await collect(watcher(client, list(client.scripts), timeout=30, rng=Middle()))
        starts = sweep_starts(client)
        assert starts[:3] == pytest.approx([0.0, 1.0, 2.0])
        # 3.0 fails: waits 1 interval from its failure, then 2, then 4; then a success,
        # and one interval again from its start.
        assert failing == pytest.approx([3.0, 4.05, 6.1])
        recovered = 6.1 + LATENCY + 4 * 1.0
        assert starts[3:7] == pytest.approx([3.0, 4.05, 6.1, recovered])
        assert starts[7] == pytest.approx(recovered + base_at(recovered + 3 * LATENCY))

    run(main)


def test_a_sweep_waits_at_least_what_its_requests_cost_under_the_budget() -> None:
    async def main() -> None:
        # Listed nowhere and still active when fetched: 3 pages and 60 GETs a sweep.
        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=5.0, hidden=lambda pid, t: True)
        await collect(watcher(client, list(client.scripts), timeout=120))
        starts = sweep_starts(client)
        assert len(starts) >= 3
        assert all(b - a >= 63 / 5.0 - 1e-9 for a, b in itertools.pairwise(starts))

    run(main)


@pytest.mark.parametrize(("ending", "hands_over"), [(10, True), (9, False)])
def test_sweeps_hand_over_when_exactly_fifty_are_left(ending: int, hands_over: bool) -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"e{i:02}": forever("completed") for i in range(ending)}
        scripts |= {f"w{i:02}": forever() for i in range(60 - ending)}
        client = Account(scripts, rate=0)
        w = watcher(client, list(scripts), timeout=5)
        await collect(w)
        assert w.active == 0 and [r.outcome for r in w.runs].count("completed") == ending
        polled = [g for g in client.gets if not g.include_output]
        assert bool(polled) is hands_over
        assert (len(client.sweeps()) == 1) is hands_over

    run(main)


def test_one_run_left_after_a_sweep_is_still_followed_to_its_end() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"e{i:02}": forever("completed") for i in range(59)}
        scripts["last"] = timeline((0, "in_progress"), (20, "completed"))
        client = Account(scripts, rate=0)
        w = watcher(client, list(scripts))
        await collect(w)
        assert w.runs[-1].outcome == "completed"
        assert w.exit_code() == 0

    run(main)


@pytest.mark.parametrize(("pages", "hands_over"), [(55, True), (54, False)])
def test_a_sweep_costing_as_many_pages_as_runs_hands_over(pages: int, hands_over: bool) -> None:
    async def main() -> None:
        watched = [f"w{i:02}" for i in range(55)]
        extra = pages - 3  # more pages of others' pending runs, beyond one page per status

        def override(t: float, params: dict[str, Any]) -> dict[str, Any]:
            status, after = params["status"], params.get("after")
            items: list[dict[str, Any]] = []
            cursor = None
            if status == "in_progress" and after is None:
                items = [client.obj(pid, "in_progress", True) for pid in watched]
            if status == "pending":
                done = int(str(after or "c0")[1:])
                cursor = f"c{done + 1}" if done < extra else None
            return {"data": items, "list_metadata": {"before": None, "after": cursor}}

        client = Account({pid: forever() for pid in watched}, rate=0, override=override)
        await collect(watcher(client, watched, timeout=5))
        sweeps = client.sweeps()
        assert len(sweeps[0]) == pages
        assert (len(sweeps) == 1) is hands_over

    run(main)


def test_a_never_seen_run_after_the_hand_over_is_polled_after_an_interval() -> None:
    async def main() -> None:
        lag = NotFoundError("Partition not found", status=404)
        scripts: dict[str, Script] = {f"e{i:02}": forever("completed") for i in range(10)}
        scripts |= {f"w{i:02}": forever() for i in range(49)}
        scripts["ghost"] = timeline((0, lag), (30, "queued"))
        client = Account(scripts, rate=0)
        w = watcher(client, list(scripts), timeout=40, not_found_tolerance=100)
        await collect(w)
        ghost = [g.at for g in client.gets_for("ghost")]
        assert len(client.sweeps()) == 1  # handed over after the first sweep, which fetched it
        assert ghost[0] > client.lists[-1].at
        assert ghost[1] - (ghost[0] + LATENCY) >= 0.8 - 1e-9  # then polled after an interval, not at once

    run(main)


def test_when_every_run_was_seeded_the_first_sweep_waits_an_interval() -> None:
    async def main() -> None:
        # At 0.5 requests/s one request is worth 2 s: the first sweep has cost nothing yet.
        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0.5)
        initial = {pid: client.obj(pid, "in_progress", False) for pid in client.scripts}
        await collect(watcher(client, list(client.scripts), timeout=5, rng=Middle(), initial=initial))
        assert sweep_starts(client)[0] == pytest.approx(1.0)

        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0)
        initial = {pid: client.obj(pid, "in_progress", False) for pid in list(client.scripts)[1:]}
        started = now()
        await collect(watcher(client, list(client.scripts), timeout=5, rng=Middle(), initial=initial))
        assert sweep_starts(client)[0] == started  # one was never seen: at once

    run(main)


# ---- what listings and fetches mean ----------------------------------------------------------


def test_a_listing_cut_short_fails_only_the_runs_it_did_not_show() -> None:
    async def main() -> None:
        watched = [f"w{i:02}" for i in range(60)]
        down = ServerError("HTTP 502 Bad Gateway", status=502)

        def override(t: float, params: dict[str, Any]) -> BaseException | dict[str, Any] | None:
            if params["status"] != "pending":
                return None
            if params.get("after") is None:
                return {"data": [client.obj(p, "pending", True) for p in watched[:30]],
                        "list_metadata": {"before": None, "after": "w29"}}
            return down if t < 10 else None

        client = Account({pid: forever("pending") for pid in watched}, rate=0, override=override)
        events = await collect(watcher(client, watched, timeout=12))
        retried = {e.run.id for e in events if e.kind == "retry"}
        assert retried == set(watched[30:])
        assert all(e.error is down for e in events if e.kind == "retry")

    run(main)


def test_a_run_fetched_once_then_404_is_gone_at_once() -> None:
    async def main() -> None:
        deleted = NotFoundError("Partition not found", status=404)
        scripts: dict[str, Script] = {f"w{i:02}": forever() for i in range(60)}
        scripts["hidden"] = timeline((0, "in_progress"), (3, deleted))
        client = Account(scripts, rate=0, hidden=lambda pid, t: pid == "hidden")
        w = watcher(client, list(scripts), timeout=20)
        events = await collect(w)
        assert kinds(events, "hidden") == ["status:in_progress", "gone"]
        fetched = client.gets_for("hidden")
        assert [g.data is not None for g in fetched] == [True] * (len(fetched) - 1) + [False]
        assert next(r for r in w.runs if r.id == "hidden").outcome == "not_found"

    run(main)


def test_a_listed_run_with_an_unknown_status_is_fetched_on_its_own() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": forever() for i in range(60)}

        def override(t: float, params: dict[str, Any]) -> dict[str, Any] | None:
            if params["status"] == "in_progress":  # w00 listed as 'paused', the rest as asked
                items: list[Any] = [client.obj(p, "in_progress", True) for p in scripts if p != "w00"]
                items += [{**client.obj("w00", "paused", True)}, "junk", 5, None]  # odd items skipped
                return {"data": items, "list_metadata": {"before": None, "after": None}}
            return None

        client = Account(scripts, rate=0, override=override)
        w = watcher(client, list(scripts), timeout=5)
        await collect(w)
        assert len(client.gets_for("w00")) == len(client.sweeps())
        assert not client.gets_for("w01")

    run(main)


def test_an_unusable_list_page_fails_the_sweep() -> None:
    async def main() -> None:
        bodies: list[Any] = [{"data": {}, "list_metadata": {}}, {"data": [], "list_metadata": []},
                             {"data": [], "list_metadata": {"after": 5}}, {"list_metadata": {}}, [], "page"]
        for body in bodies:
            until = now() + 2

            def override(t: float, params: dict[str, Any], body: Any = body, until: float = until) -> Any:
                return body if t < until else None

            client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0, override=override)
            events = await collect(watcher(client, list(client.scripts), timeout=4))
            retries = [e for e in events if e.kind == "retry"]
            assert retries, body
            assert {str(e.error) for e in retries} == {
                "unusable response: a list page needs 'data' and 'list_metadata'"}

    run(main)


def test_the_cursor_message_keeps_the_server_string_out() -> None:
    async def main() -> None:
        def override(t: float, params: dict[str, Any]) -> dict[str, Any] | None:
            if t < 2 and params["status"] == "pending":
                return {"data": [], "list_metadata": {"before": None, "after": "\x1b]52;c;evil\x07"}}
            return None

        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0, override=override)
        events = await collect(watcher(client, list(client.scripts), timeout=4))
        messages = {str(e.error) for e in events if e.kind == "retry"}
        assert messages == {"unusable response: the list cursor did not advance"}

    run(main)


def test_an_individual_fetch_failing_gives_up_on_time() -> None:
    async def main() -> None:
        down = ServerError("HTTP 500 Internal Server Error", status=500)
        scripts: dict[str, Script] = {f"w{i:02}": forever() for i in range(60)}
        scripts["sick"] = timeline((0, "in_progress"), (5, down))
        client = Account(scripts, rate=0, hidden=lambda pid, t: pid == "sick" and t >= 5)
        w = watcher(client, list(scripts), give_up_after=30, timeout=200)
        events = await collect(w)
        first_failure = next(g.at for g in client.gets_for("sick") if g.at >= 5) + LATENCY
        gave_up = next(e for e in events if e.kind == "gave_up")
        assert gave_up.run.id == "sick"
        assert 30.0 <= gave_up.at - first_failure <= 30.0 + 4 * LATENCY

    run(main)


def test_a_bug_in_one_fetch_cancels_the_slow_others() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"w{i:02}": forever() for i in range(60)}
        scripts["bug"] = timeline((0, "in_progress"), (3, ValueError("bug")))
        slow = {f"s{i}": 500.0 for i in range(5)}
        scripts |= {pid: forever() for pid in slow}
        client = Account(scripts, rate=0, latency_of=slow,
                         hidden=lambda pid, t: t >= 3 and (pid == "bug" or pid in slow))
        w = watcher(client, list(scripts))
        with pytest.raises(ValueError, match="bug"):
            await collect(w)
        assert now() < 10
        assert not still_pending()

    run(main)


def test_under_fail_fast_the_first_run_to_give_up_in_a_failed_sweep_stops_the_rest() -> None:
    async def main() -> None:
        down = ServerError("HTTP 503 Service Unavailable", status=503)
        client = Account({f"w{i:02}": forever() for i in range(60)}, rate=0,
                         override=lambda t, params: down if t >= 1 else None)
        w = watcher(client, list(client.scripts), fail_fast=True, give_up_after=20)
        events = await collect(w)
        finals = [e for e in events if e.kind in ("gave_up", "stopped")]
        assert [e.kind for e in finals] == ["gave_up"] + ["stopped"] * 59
        assert finals[0].run.id == "w00" and w.exit_code() == 1

    run(main)


def test_answers_arriving_with_a_fatal_one_change_nothing_after_the_stop() -> None:
    async def main() -> None:
        # Every run is fetched on its own each sweep (listed nowhere); w00's fetch is a 401
        # at t >= 3, and the other answers of that same sweep arrive at the same instant.
        denied = AuthError("Invalid API key", status=401)
        scripts: dict[str, Script] = {f"w{i:02}": forever() for i in range(60)}
        scripts["w00"] = timeline((0, "in_progress"), (3, denied))
        client = Account(scripts, rate=0, hidden=lambda pid, t: True)
        w = watcher(client, list(scripts))
        events = await collect(w)
        assert sum(e.kind == "fatal" for e in events) == 1
        for state in w.runs[1:]:
            answered = [g for g in client.gets_for(state.id) if g.data is not None]
            assert state.outcome == "stopped"
            assert state.raw is answered[-1].data
        in_flight = [g for g in client.gets if g.at >= 3.0 and g.id != "w00"]
        assert in_flight and all(g.data is None for g in in_flight)  # cancelled, not answered

    run(main)
