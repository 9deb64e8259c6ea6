"""The polling engine, on virtual time (tests/virtual_time.py): a scripted fake client
and a real Budget, both sleeping with `asyncio.sleep` on the fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from virtual_time import now, run

from retab_cli.budget import Budget
from retab_cli.client import ApiResult
from retab_cli.errors import (
    AuthError,
    BadResponseError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
    RetabError,
    ServerError,
)
from retab_cli.watch import Event, RunState, Watcher, check_once

T = TypeVar("T")
LATENCY = 0.05


# ---- a scripted client -------------------------------------------------------------


@dataclass
class Limited:
    """A 429, as the real client handles it: tell the budget, then raise."""

    retry_after: float | None


Step = str | dict[str, Any] | BaseException | Limited
Script = Callable[[float], Step]


@dataclass
class Call:
    at: float
    id: str
    include_output: bool
    attempts: int | None


def partition(pid: str, status: str, full: bool) -> dict[str, Any]:
    chunks = [{"key": "invoice", "pages": [1, 2]}]
    return {
        "id": pid,
        "status": status,
        "file": {"id": "file_0123456789abcdef", "filename": f"{pid}.pdf", "mime_type": ""},
        "output": chunks if full and status == "completed" else [],
        "error": {"code": "x", "message": "boom"} if status == "failed" else None,
    }


class FakeClient:
    """Per id, a script: the response as a function of the fake time of the request."""

    def __init__(
        self,
        scripts: dict[str, Script],
        *,
        rate: float = 5.0,
        burst: float = 2.0,
        latency: float = LATENCY,
        latency_of: dict[str, float] | None = None,
    ) -> None:
        self.budget = Budget(rate, burst, clock=asyncio.get_running_loop().time)
        self.scripts = scripts
        self.latency = latency
        self.latency_of = latency_of or {}  # per id, instead of `latency`
        self.calls: list[Call] = []
        self.cancelled = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def get(
        self, partition_id: str, *, include_output: bool = True, attempts: int | None = None
    ) -> ApiResult:
        await self.budget.acquire()
        self.calls.append(Call(now(), partition_id, include_output, attempts))
        step = self.scripts[partition_id](now())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_of.get(partition_id, self.latency))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        if isinstance(step, Limited):
            self.budget.on_rate_limited(step.retry_after)
            raise RateLimitedError("HTTP 429 Too Many Requests", status=429)
        if isinstance(step, BaseException):
            raise step
        data = partition(partition_id, step, include_output) if isinstance(step, str) else step
        return ApiResult(data, 200, "req_fake")

    def calls_for(self, pid: str) -> list[Call]:
        return [c for c in self.calls if c.id == pid]


def timeline(*points: tuple[float, Step]) -> Script:
    """The step of the last point at or before the time of the request."""

    def at(t: float) -> Step:
        current = points[0][1]
        for start, step in points:
            if start <= t:
                current = step
        return current

    return at


def sequence(*steps: Step) -> Script:
    """One step per request, in order; the last one repeats."""
    left = list(steps)

    def step(_: float) -> Step:
        return left.pop(0) if len(left) > 1 else left[0]

    return step


def watcher(client: FakeClient, ids: list[str] | None = None, **kw: Any) -> Watcher:
    kw.setdefault("rng", random.Random(7))
    return Watcher(
        client,
        ids if ids is not None else list(client.scripts),
        clock=asyncio.get_running_loop().time,
        wall=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        **kw,
    )


async def collect(w: Watcher) -> list[Event]:
    async with contextlib.aclosing(w.run()) as events:
        return [event async for event in events]


def kinds(events: list[Event], pid: str) -> list[str]:
    out = []
    for e in events:
        if e.run.id == pid:
            out.append(f"{e.kind}:{e.new}" if e.kind == "status" else e.kind)
    return out


def poll_gaps(client: FakeClient, pid: str) -> list[tuple[float, float]]:
    """(time the previous response arrived, delay the engine chose) per cheap poll."""
    calls = [c for c in client.calls_for(pid) if not c.include_output]
    return [(a.at + LATENCY, b.at - a.at - LATENCY) for a, b in itertools.pairwise(calls)]


def still_pending() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


# ---- intervals ---------------------------------------------------------------------


def test_interval_starts_at_one_second_grows_with_elapsed_and_caps_at_ten() -> None:
    async def main() -> None:
        client = FakeClient({"a": timeline((0, "queued"), (300, "completed"))}, rate=0)
        w = watcher(client)
        await collect(w)
        gaps = poll_gaps(client, "a")
        ratios = []
        for at, delay in gaps:
            base = min(max(at / 10, 1.0), 10.0)
            assert base * 0.8 - 1e-9 <= delay <= base * 1.2 + 1e-9, (at, delay)
            ratios.append(delay / base)
        assert gaps[0][1] <= 1.2
        assert max(d for at, d in gaps if at > 120) > 10.0  # jitter above the cap...
        assert all(8.0 <= d <= 12.0 for at, d in gaps if at > 100)  # ...within ±20%
        assert max(ratios) - min(ratios) > 0.2  # the jitter really varies
        assert len(gaps) < 60  # ~1 s at first would be 300 polls
        assert w.exit_code() == 0

    run(main)


def test_interval_option_pins_the_base_and_keeps_jitter() -> None:
    async def main() -> None:
        client = FakeClient({"a": timeline((0, "queued"), (100, "completed"))}, rate=0)
        await collect(watcher(client, interval=3.0))
        delays = [d for _, d in poll_gaps(client, "a")]
        assert all(2.4 - 1e-9 <= d <= 3.6 + 1e-9 for d in delays)
        assert len(set(round(d, 6) for d in delays)) > 5

    run(main)


def test_fifty_runs_share_the_budget_and_each_end_is_noticed_in_time() -> None:
    async def main() -> None:
        ends = {f"r{i:02}": 5.0 + i * 1.7 for i in range(50)}
        client = FakeClient(
            {
                pid: timeline((0, "queued"), (2, "in_progress"), (end, "completed"))
                for pid, end in ends.items()
            },
            rate=5.0,
        )
        w = watcher(client)
        events = await collect(w)
        assert w.exit_code() == 0
        assert sum(1 for c in client.calls if c.at < 60) <= 5 * 60 * 1.1
        for e in events:
            if e.kind == "status" and e.new == "completed":
                # 2 intervals (10 s cap with +20% jitter) beats N / rate = 10 s here
                assert e.at - ends[e.run.id] <= 2 * 12.0, e.run.id

    run(main)


def test_a_thousand_runs_stay_within_budget_and_all_end() -> None:
    async def main() -> None:
        rng = random.Random(1)
        ends = {f"r{i:04}": rng.uniform(30, 600) for i in range(1000)}
        client = FakeClient(
            {pid: timeline((0, "in_progress"), (end, "completed")) for pid, end in ends.items()},
            rate=5.0,
        )
        w = watcher(client)
        events = await collect(w)
        last = client.calls[-1].at
        assert len(client.calls) <= 5 * last * 1.05 + 2
        lags = [e.at - ends[e.run.id] for e in events if e.kind == "status" and e.new == "completed"]
        assert len(lags) == 1000
        # The per-run floor is N / rate = 200 s while all 1,000 are active (no list
        # sweep), so "within 2 intervals" (docs/design.md §7) means within 400 s here.
        assert max(lags) <= 2 * 1000 / 5.0
        assert w.exit_code() == 0

    run(main)


# ---- faults ------------------------------------------------------------------------


def test_429_halves_the_budget_and_holds_every_request_for_retry_after() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {
            "a": sequence("queued", "queued", Limited(retry_after=5.0), "queued", "completed"),
            "b": timeline((0, "queued"), (40, "completed")),
            "c": timeline((0, "queued"), (40, "completed")),
        }
        client = FakeClient(scripts, rate=5.0)
        w = watcher(client)
        events = await collect(w)
        limited_at = client.calls_for("a")[2].at + LATENCY
        assert client.budget.rate_limited == 1
        assert not [c for c in client.calls if limited_at < c.at < limited_at + 5.0]
        retry = next(e for e in events if e.kind == "retry")
        assert retry.error is not None and retry.error.status == 429
        assert w.exit_code() == 0

    run(main)


def test_429_halves_the_budget_rate() -> None:
    async def main() -> None:
        client = FakeClient({"a": sequence("queued", Limited(None), "queued")}, rate=5.0)
        w = watcher(client, timeout=3.0)
        await collect(w)
        assert client.budget.rate == 2.5
        assert w.exit_code() == 8

    run(main)


def test_a_burst_of_503s_and_a_dropped_connection_still_end_completed() -> None:
    async def main() -> None:
        fails: list[Step] = [ServerError("HTTP 503 Service Unavailable", status=503)] * 5
        dropped = NetworkError("the connection broke mid-response")
        client = FakeClient({"a": sequence("queued", *fails, dropped, "in_progress", "completed")})
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "a") == [
            "status:queued",
            *["retry"] * 6,
            "status:in_progress",
            "status:completed",
            "ended",
        ]
        assert w.runs[0].outcome == "completed"
        assert w.runs[0].last_error is None
        assert w.exit_code() == 0
        delays = [d for _, d in poll_gaps(client, "a")]
        assert delays[5] > delays[1] * 2  # backing off while it fails
        assert max(delays) <= 30 * 1.2 + 1e-9

    run(main)


def test_gives_up_after_120_s_of_nothing_but_failures_naming_the_last_error() -> None:
    async def main() -> None:
        last = BadResponseError("unusable response: body is not valid JSON")
        script = timeline((0, "queued"), (0.5, ServerError("HTTP 503", status=503)), (90, last))
        client = FakeClient({"a": script, "b": lambda t: "queued"})
        w = watcher(client, timeout=1000)
        events = await collect(w)
        first_failure = client.calls_for("a")[1].at + LATENCY
        gave_up = next(e for e in events if e.kind == "gave_up")
        assert gave_up.run.id == "a"
        assert 120.0 <= gave_up.at - first_failure <= 120.0 + 2 * LATENCY
        assert gave_up.error is last
        assert w.runs[0].last_error == last.message
        assert (w.runs[0].outcome, w.runs[0].exit_code) == ("gave_up", 1)
        assert w.runs[1].outcome == "timeout"  # the other run went on
        assert w.exit_code() == 1

    run(main)


def test_a_success_resets_the_failure_clock() -> None:
    async def main() -> None:
        def script(t: float) -> Step:
            if t >= 250:
                return "completed"
            if 100 <= t < 140:
                return "in_progress"
            return "in_progress" if t < 1 else NetworkError("connection refused")

        client = FakeClient({"a": script})
        w = watcher(client)
        events = await collect(w)
        assert "gave_up" not in kinds(events, "a")
        assert w.exit_code() == 0

    run(main)


def test_404_before_the_first_success_is_tolerated_three_times() -> None:
    async def main() -> None:
        lag = NotFoundError("Partition not found", status=404)
        client = FakeClient(
            {
                "lagging": sequence(lag, lag, lag, "queued", "completed"),
                "missing": lambda t: NotFoundError("Partition not found", status=404),
            }
        )
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "lagging") == [
            "retry",
            "retry",
            "retry",
            "status:queued",
            "status:completed",
            "ended",
        ]
        assert kinds(events, "missing") == ["retry", "retry", "retry", "gone"]
        assert len(client.calls_for("missing")) == 4
        gaps = [d for _, d in poll_gaps(client, "missing")]
        assert all(0.8 - 1e-9 <= d <= 1.2 + 1e-9 for d in gaps)  # retried at ~1 s
        states = {r.id: (r.outcome, r.exit_code) for r in w.runs}
        assert states == {"lagging": ("completed", 0), "missing": ("not_found", 6)}
        assert w.exit_code() == 6

    run(main)


def test_404_after_a_success_means_deleted_and_the_others_go_on() -> None:
    async def main() -> None:
        gone = NotFoundError("Partition not found", status=404)
        client = FakeClient(
            {
                "deleted": timeline((0, "queued"), (5, gone)),
                "other": timeline((0, "queued"), (30, "completed")),
            }
        )
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "deleted") == ["status:queued", "gone"]
        gone_at = next(e.at for e in events if e.kind == "gone")
        assert gone_at < 7  # at once, no tolerance
        assert kinds(events, "other")[-1] == "ended"
        assert [r.exit_code for r in w.runs] == [6, 0]
        assert w.exit_code() == 6

    run(main)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuthError("Invalid API key", status=401), 4),
        (AuthError("Forbidden", status=403), 4),
        (RejectedError("include_output: bad value", status=422), 2),
    ],
)
def test_a_fatal_error_stops_everything_at_once(error: RetabError, code: int) -> None:
    async def main() -> None:
        client = FakeClient(
            {
                "a": timeline((0, "queued"), (100, "completed")),
                "b": timeline((0, "queued"), (5, error)),
                "c": timeline((0, "queued"), (100, "completed")),
            }
        )
        w = watcher(client)
        events = await collect(w)
        fatal = next(e for e in events if e.kind == "fatal")
        assert fatal.run.id == "b"
        assert fatal.error is error
        assert w.fatal is error
        assert events[-2:] == [e for e in events if e.kind == "stopped"]
        assert events.index(fatal) == len(events) - 3  # nothing observed after it
        assert {r.id: r.outcome for r in w.runs} == {"a": "stopped", "b": "error", "c": "stopped"}
        assert not [c for c in client.calls if c.at > fatal.at]
        assert w.exit_code() == code
        assert not still_pending()

    run(main)


# ---- timeout, fail-fast ------------------------------------------------------------


def test_timeout_ends_the_watch_with_8() -> None:
    async def main() -> None:
        client = FakeClient(
            {
                "slow": lambda t: "in_progress",
                "quick": timeline((0, "queued"), (3, "completed")),
            }
        )
        w = watcher(client, timeout=30.0)
        events = await collect(w)
        assert now() == pytest.approx(30.0)
        assert kinds(events, "slow") == ["status:in_progress", "timeout"]
        assert kinds(events, "quick")[-1] == "ended"
        assert [(r.outcome, r.exit_code) for r in w.runs] == [("timeout", 8), ("completed", 0)]
        assert w.exit_code() == 8
        assert not still_pending()

    run(main)


def test_fail_fast_stops_at_the_first_failed_run() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {
            "ok": timeline((0, "queued"), (4, "completed")),
            "bad": timeline((0, "queued"), (10, "failed")),
            "long": timeline((0, "queued"), (500, "completed")),
        }
        client = FakeClient(scripts)
        w = watcher(client, fail_fast=True)
        events = await collect(w)
        assert now() < 20
        assert kinds(events, "bad")[-1] == "ended"
        assert kinds(events, "long")[-1] == "stopped"
        assert [r.outcome for r in w.runs] == ["completed", "failed", "stopped"]
        assert [r.exit_code for r in w.runs] == [0, 3, 8]
        assert w.exit_code() == 3

        client = FakeClient(scripts)
        w = watcher(client)  # without it, the watch goes on to the end
        await collect(w)
        assert [r.outcome for r in w.runs] == ["completed", "failed", "completed"]

    run(main)


# ---- events, the final fetch -------------------------------------------------------


def test_events_follow_the_order_of_observation_without_repeats() -> None:
    async def main() -> None:
        client = FakeClient(
            {
                "a": timeline((0, "pending"), (2, "queued"), (6, "in_progress"), (40, "completed")),
                "b": timeline((0, "queued"), (15, "in_progress"), (20, "cancelled")),
            }
        )
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "a") == [
            "status:pending",
            "status:queued",
            "status:in_progress",
            "status:completed",
            "ended",
        ]
        assert kinds(events, "b") == ["status:queued", "status:in_progress", "status:cancelled", "ended"]
        assert [e.at for e in events] == sorted(e.at for e in events)
        changes = [(e.old, e.new) for e in events if e.run.id == "a" and e.kind == "status"]
        assert changes[:2] == [(None, "pending"), ("pending", "queued")]
        assert len(client.calls_for("a")) > 8  # many polls, one event per change
        assert all(e.wall.tzinfo is UTC for e in events)
        assert w.exit_code() == 5

    run(main)


def test_the_full_object_is_fetched_exactly_once_at_the_end() -> None:
    async def main() -> None:
        client = FakeClient(
            {
                "a": timeline((0, "queued"), (12, "completed")),
                "b": timeline((0, "queued"), (8, "failed")),
            }
        )
        w = watcher(client)
        events = await collect(w)
        for pid in ("a", "b"):
            calls = client.calls_for(pid)
            assert [c.include_output for c in calls].count(True) == 1
            assert calls[-1].include_output and calls[-1].attempts == 3
            assert all(c.attempts == 1 for c in calls[:-1])
        ended = {e.run.id: e for e in events if e.kind == "ended"}
        assert ended["a"].data is not None and ended["a"].data["output"]
        assert w.runs[0].raw is ended["a"].data
        status_event = next(e for e in events if e.kind == "status" and e.new == "completed")
        assert status_event.data is not None and status_event.data["output"] == []

    run(main)


def test_a_failing_final_fetch_is_retried() -> None:
    async def main() -> None:
        client = FakeClient({"a": sequence("queued", "completed", ServerError("502"), "completed")})
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "a") == ["status:queued", "status:completed", "retry", "ended"]
        assert [c.include_output for c in client.calls] == [False, False, True, True]

    run(main)


def test_a_timeout_during_the_final_fetch_still_reports_how_the_run_ended() -> None:
    async def main() -> None:
        down = NetworkError("connection refused")
        client = FakeClient({"a": sequence("queued", "failed", down)})
        w = watcher(client, timeout=20.0)
        events = await collect(w)
        seen = kinds(events, "a")
        assert seen[:3] == ["status:queued", "status:failed", "retry"]
        assert seen[-1] == "ended" and set(seen[2:-1]) == {"retry"}
        assert events[-1].at == pytest.approx(20.0)
        assert events[-1].data is not None and events[-1].data["status"] == "failed"
        assert (w.runs[0].outcome, w.exit_code()) == ("failed", 3)

    run(main)


def test_ids_are_deduplicated_and_a_watcher_runs_once() -> None:
    async def main() -> None:
        client = FakeClient({"a": lambda t: "completed", "b": lambda t: "completed"})
        w = watcher(client, ["a", "b", "a"])
        await collect(w)
        assert [r.id for r in w.runs] == ["a", "b"]
        assert len(client.calls) == 4
        with pytest.raises(RuntimeError):
            await w.run().__anext__()

    run(main)


@pytest.mark.parametrize(
    ("ends", "code"),
    [
        (["completed", "completed"], 0),
        (["completed", "failed", "cancelled"], 3),
        (["completed", "cancelled"], 5),
        (["completed", "failed", "cancelled", "gone"], 6),
        (["failed", "gone", "error"], 1),
    ],
)
def test_the_most_severe_outcome_wins(ends: list[str], code: int) -> None:
    async def main() -> None:
        def script(end: str) -> Script:
            last: Step = end
            if end == "gone":
                last = NotFoundError("Partition not found", status=404)
            elif end == "error":
                last = ServerError("HTTP 500", status=500)
            return timeline((0, "queued"), (3, last))

        client = FakeClient({f"r{i}": script(end) for i, end in enumerate(ends)})
        w = watcher(client, give_up_after=10)
        await collect(w)
        assert w.exit_code() == code
        if set(ends) <= {"completed", "failed", "cancelled"}:
            assert w.exit_code(any_end_ok=True) == 0  # cancel --wait: any end is success

    run(main)


# ---- initial objects, single checks ------------------------------------------------


def test_initial_objects_are_first_sightings_without_a_refetch() -> None:
    async def main() -> None:
        lag = NotFoundError("Partition not found", status=404)
        client = FakeClient(
            {
                "new": sequence(lag, "queued", "in_progress", "completed"),
                "done": lambda t: "completed",
            }
        )
        initial = {
            "new": partition("new", "queued", False),
            "done": partition("done", "completed", True),
        }
        w = watcher(client, initial=initial)
        events = await collect(w)
        assert [(e.run.id, e.kind) for e in events[:3]] == [
            ("new", "status"),
            ("done", "status"),
            ("done", "ended"),
        ]
        assert events[0].at == events[2].at == 0.0
        assert not client.calls_for("done")  # create returned the whole object
        assert client.calls[0].at >= 0.8  # the seeded run is polled after an interval
        assert kinds(events, "new") == [
            "status:queued",
            "retry",
            "status:in_progress",
            "status:completed",
            "ended",
        ]
        assert w.exit_code() == 0

    run(main)


def test_check_once_maps_each_status_and_never_waits() -> None:
    async def main() -> None:
        client = FakeClient(
            {
                "c": lambda t: "completed",
                "f": lambda t: "failed",
                "x": lambda t: "cancelled",
                "q": lambda t: "queued",
                "n": lambda t: NotFoundError("Partition not found", status=404),
                "s": lambda t: ServerError("HTTP 500 (gave up after 5 attempts)", status=500),
            }
        )
        runs = await check_once(client, ["c", "f", "x", "q", "n", "s"])
        assert [(r.id, r.exit_code) for r in runs] == [
            ("c", 0),
            ("f", 3),
            ("x", 5),
            ("q", 8),
            ("n", 6),
            ("s", 1),
        ]
        assert [r.outcome for r in runs] == ["completed", "failed", "cancelled", None, "not_found", "error"]
        assert len(client.calls) == 6
        assert all(c.include_output and c.attempts is None for c in client.calls)
        assert now() < 2

    run(main)


def test_check_once_raises_auth_errors_and_leaves_nothing_running() -> None:
    async def main() -> None:
        client = FakeClient(
            {
                "a": lambda t: AuthError("Invalid API key", status=401),
                **{f"q{i}": (lambda t: "queued") for i in range(30)},
            }
        )
        with pytest.raises(AuthError):
            await check_once(client, list(client.scripts))
        assert not still_pending()

    run(main)


# ---- stopping ------------------------------------------------------------------------


def test_cancelling_the_watch_cancels_every_poll_in_flight() -> None:
    async def main() -> None:
        client = FakeClient({f"r{i}": lambda t: "queued" for i in range(40)}, rate=0)
        w = watcher(client)
        seen: list[Event] = []

        async def consume() -> None:
            async with contextlib.aclosing(w.run()) as events:
                async for event in events:
                    seen.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(10.02)  # polls are in flight now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not still_pending()
        assert client.cancelled > 0
        assert len(seen) == 40
        assert all(r.outcome is None and r.status == "queued" for r in w.runs)
        assert w.exit_code() == 8  # still running, for the command to report

    run(main)


def test_leaving_the_loop_early_stops_the_polls() -> None:
    async def main() -> None:
        client = FakeClient({f"r{i}": lambda t: "queued" for i in range(5)})
        w = watcher(client)
        async with contextlib.aclosing(w.run()) as events:
            async for _ in events:
                break
        assert not still_pending()
        calls = len(client.calls)
        await asyncio.sleep(60)
        assert len(client.calls) == calls

    run(main)


def test_aclose_alone_cancels_the_polls() -> None:
    async def main() -> None:
        client = FakeClient({"a": lambda t: "queued"})
        w = watcher(client)
        events = w.run()
        await events.__anext__()
        await w.aclose()
        assert not still_pending()
        await events.aclose()

    run(main)


def test_an_unexpected_exception_ends_the_watch_instead_of_hanging() -> None:
    async def main() -> None:
        client = FakeClient({"a": lambda t: "queued", "b": sequence("queued", ValueError("bug"))})
        w = watcher(client)
        with pytest.raises(ValueError, match="bug"):
            await collect(w)
        assert not still_pending()

    run(main)


def test_no_ids_means_nothing_to_do() -> None:
    async def main() -> None:
        w = watcher(FakeClient({}), [])
        assert await collect(w) == []
        assert w.exit_code() == 0
        assert isinstance(RunState("x").exit_code, int)

    run(main)


# ---- hostile or odd servers ------------------------------------------------------------


def test_a_run_seen_terminal_stays_terminal_when_the_full_view_says_otherwise() -> None:
    async def main() -> None:
        # The cheap view says completed, the full object (a stale cache) in_progress.
        full = partition("a", "in_progress", True)
        client = FakeClient({"a": sequence("queued", "completed", full)})
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "a") == ["status:queued", "status:completed", "ended"]
        ended = events[-1]
        assert ended.data is full and ended.new == "completed"
        run = w.runs[0]
        assert (run.status, run.outcome, run.exit_code, run.raw) == ("completed", "completed", 0, full)
        assert w.exit_code() == 0

    run(main)


def test_a_full_view_with_another_terminal_status_wins() -> None:
    async def main() -> None:
        client = FakeClient({"a": sequence("queued", "completed", "failed")})
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "a") == ["status:queued", "status:completed", "status:failed", "ended"]
        assert (w.runs[0].outcome, w.exit_code()) == ("failed", 3)

    run(main)


def test_an_invalid_id_ends_its_run_at_once_as_an_unusable_response() -> None:
    async def main() -> None:
        client = FakeClient({"ok": timeline((0, "queued"), (5, "completed"))})
        w = watcher(client, ["ok", "bad id\n"], timeout=600)
        events = await collect(w)
        gave_up = next(e for e in events if e.run.id == "bad id\n")
        assert (gave_up.kind, gave_up.at) == ("gave_up", 0.0)
        assert isinstance(gave_up.error, BadResponseError)
        assert gave_up.error.message == ("unusable response: invalid partition id 'bad id\\n': ids are "
                                         "1-128 characters of A-Z a-z 0-9 _ -")
        assert gave_up.error.partition_id == "bad id\n"
        assert kinds(events, "bad id\n") == ["gave_up"]
        assert not client.calls_for("bad id\n")
        assert [(r.outcome, r.exit_code) for r in w.runs] == [("completed", 0), ("gave_up", 1)]
        assert now() < 10  # not until the timeout
        assert w.exit_code() == 1

    run(main)


def test_only_invalid_ids_end_the_watch_at_once() -> None:
    async def main() -> None:
        w = watcher(FakeClient({}), ["a/b", "c d"], timeout=600, fail_fast=True)
        events = await collect(w)
        assert [(e.run.id, e.kind) for e in events] == [("a/b", "gave_up"), ("c d", "stopped")]
        assert [r.outcome for r in w.runs] == ["gave_up", "stopped"] and w.active == 0
        assert now() == 0.0
        assert w.exit_code() == 1

    run(main)


@pytest.mark.parametrize("body", [{"id": "a"}, {"id": "a", "status": 5}, {"id": "a", "status": ""}, []])
def test_a_polled_object_without_a_status_is_a_transient_failure(body: Any) -> None:
    async def main() -> None:
        client = FakeClient({"a": lambda t: body})
        w = watcher(client, give_up_after=30)
        events = await collect(w)
        assert set(kinds(events, "a")[:-1]) == {"retry"}
        assert events[-1].kind == "gave_up"
        assert events[-1].error is not None
        assert events[-1].error.message == "unusable response: a partition without a status"
        assert w.runs[0].status is None and w.runs[0].raw is None
        assert 30 <= events[-1].at <= 30 + 2 * LATENCY
        assert w.exit_code() == 1

    run(main)


def test_an_unknown_status_is_shown_and_the_watch_goes_on() -> None:
    async def main() -> None:
        client = FakeClient({"a": timeline((0, "queued"), (3, "paused\x1b[2J"), (20, "completed"))})
        w = watcher(client)
        events = await collect(w)
        assert kinds(events, "a") == ["status:queued", "status:paused\x1b[2J", "status:completed", "ended"]
        paused = events[1]
        assert (paused.old, paused.new) == ("queued", "paused\x1b[2J")
        assert w.exit_code() == 0

        client = FakeClient({"a": lambda t: "paused"})
        w = watcher(client, timeout=30)
        events = await collect(w)
        assert kinds(events, "a") == ["status:paused", "timeout"]
        assert (w.runs[0].status, w.runs[0].outcome, w.exit_code()) == ("paused", "timeout", 8)

    run(main)


def test_check_once_with_an_unknown_status_or_none() -> None:
    async def main() -> None:
        client = FakeClient({"p": lambda t: "paused", "n": lambda t: {"id": "n"}})
        runs = await check_once(client, ["p", "n"])
        assert [(r.status, r.outcome, r.exit_code) for r in runs] == [("paused", None, 8), (None, "error", 1)]
        assert runs[1].last_error == "unusable response: a partition without a status"

    run(main)


# ---- nothing after the end ---------------------------------------------------------------


@pytest.mark.parametrize("stop", ["timeout", "fail_fast", "fatal"])
def test_nothing_is_emitted_or_asked_after_a_stop(stop: str) -> None:
    async def main() -> None:
        ending: Step = "queued"
        if stop == "fail_fast":
            ending = "failed"
        elif stop == "fatal":
            ending = AuthError("Invalid API key", status=401)
        scripts: dict[str, Script] = {
            "ender": timeline((0, "queued"), (9.5, ending)),
            # Slow answers: a poll of these is always in flight when the stop comes.
            **{f"slow{i}": timeline((0, "queued"), (9.8, "in_progress")) for i in range(5)},
        }
        client = FakeClient(scripts, latency=5.0, rate=0)
        w = watcher(client, timeout=10.0 if stop == "timeout" else None, fail_fast=stop == "fail_fast")
        events = await collect(w)
        finals = {"ended", "gone", "gave_up", "timeout", "stopped", "fatal"}
        stop_at = next(e.at for e in events if e.kind in finals)
        after = [e for e in events if e.at > stop_at]
        assert after == []
        assert [e.kind in finals for e in events].index(True) == len(events) - 6  # all finals last
        assert sorted(e.run.id for e in events if e.kind in finals) == sorted(scripts)
        assert not [c for c in client.calls if c.at > stop_at]
        assert client.cancelled > 0  # the polls in flight were cancelled, not awaited
        assert not still_pending()
        await asyncio.sleep(60)
        assert not [c for c in client.calls if c.at > stop_at]

    run(main)


def test_the_end_of_every_run_ends_the_stream() -> None:
    async def main() -> None:
        client = FakeClient({"a": sequence("completed"), "b": timeline((0, "queued"), (400, "completed"))})
        w = watcher(client)
        events = await collect(w)
        assert [e.kind for e in events].count("ended") == 2
        assert events[-1].kind == "ended" and events[-1].run.id == "b"
        assert not still_pending()

    run(main)


# ---- exact pacing --------------------------------------------------------------------------


class Middle(random.Random):
    """No jitter: every delay is exactly its base."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def base_at(elapsed: float) -> float:
    return min(max(elapsed / 10, 1.0), 10.0)


def test_failures_back_off_doubling_from_one_interval_to_30_s_and_a_success_resets() -> None:
    async def main() -> None:
        down = NetworkError("connection refused")
        client = FakeClient({"a": sequence("queued", *[down] * 7, "queued", "queued", "completed")}, rate=0)
        await collect(watcher(client, rng=Middle()))
        gaps = poll_gaps(client, "a")
        # After: the sighting, 7 failures (1, 1, 2, 4, 8, 16 intervals, then the 30 s cap),
        # and two sightings (a success resets it to one interval).
        factors = [1, 1, 2, 4, 8, 16, None, None, 1, 1]
        expected = [30.0 if f is None else base_at(at) * f for (at, _), f in zip(gaps, factors, strict=True)]
        assert [d for _, d in gaps] == pytest.approx(expected)

    run(main)


def test_the_elapsed_time_counts_from_when_the_watch_starts() -> None:
    async def main() -> None:
        await asyncio.sleep(7.0)
        client = FakeClient({"a": timeline((0, "queued"), (30, "completed"))}, rate=0)
        w = watcher(client, rng=Middle())
        events = await collect(w)
        assert w.runs[0].started == 7.0
        assert poll_gaps(client, "a")[0][1] == pytest.approx(1.0)  # 1 s, not (7 + 7) / 10
        ended = events[-1]
        assert w.runs[0].ended == ended.at
        assert ended.at - w.runs[0].started == pytest.approx(ended.at - 7.0)

    run(main)


def test_the_full_object_is_asked_for_as_soon_as_the_end_is_seen() -> None:
    async def main() -> None:
        client = FakeClient({"a": timeline((0, "queued"), (5, "completed"))})
        await collect(watcher(client))
        cheap, full = client.calls[-2:]
        assert (cheap.include_output, full.include_output) == (False, True)
        assert full.at == pytest.approx(cheap.at + LATENCY)

    run(main)


def test_a_sleep_that_wakes_early_still_ends_at_the_deadline() -> None:
    async def main() -> None:
        async def early(seconds: float) -> None:
            await asyncio.sleep(seconds / 2)

        client = FakeClient({"a": lambda t: "queued"})
        w = watcher(client, timeout=30.0, sleep=early)
        events = await collect(w)
        assert events[-1].kind == "timeout"
        assert events[-1].at == pytest.approx(30.0)

    run(main)


@pytest.mark.parametrize(("last", "outcome"), [
    ("cancelled", "cancelled"),
    (NotFoundError("Partition not found", status=404), "not_found"),
    (NetworkError("connection refused"), "gave_up"),
])
def test_fail_fast_stops_at_each_failing_outcome(last: Step, outcome: str) -> None:
    async def main() -> None:
        client = FakeClient({"bad": timeline((0, "queued"), (5, last)),
                             "long": timeline((0, "queued"), (500, "completed"))})
        w = watcher(client, fail_fast=True, give_up_after=10)
        await collect(w)
        assert [r.outcome for r in w.runs] == [outcome, "stopped"]
        assert now() < 30

    run(main)


def test_fail_fast_does_not_stop_at_a_completed_run() -> None:
    async def main() -> None:
        client = FakeClient({"ok": timeline((0, "queued"), (5, "completed")),
                             "long": timeline((0, "queued"), (50, "completed"))})
        w = watcher(client, fail_fast=True)
        await collect(w)
        assert [r.outcome for r in w.runs] == ["completed", "completed"]

    run(main)


def test_a_final_fetch_failing_until_give_up_ends_the_run_with_the_cheap_view() -> None:
    async def main() -> None:
        down = NetworkError("connection refused")
        client = FakeClient({"a": sequence("queued", "failed", down)})
        w = watcher(client, give_up_after=10)
        events = await collect(w)
        ended = events[-1]
        assert ended.kind == "ended"
        assert ended.data is not None and ended.data["status"] == "failed"
        assert ended.data["output"] == []  # the cheap object: the full one never came
        assert ended.error is down
        assert (w.runs[0].outcome, w.runs[0].last_error, w.exit_code()) == ("failed", down.message, 3)

    run(main)


def test_every_tolerated_failure_is_the_runs_last_error_while_it_lasts() -> None:
    async def main() -> None:
        lag = NotFoundError("Partition not found", status=404)
        down = NetworkError("connection refused")
        client = FakeClient({"a": sequence(lag, "queued", down, "queued", "completed")})
        w = watcher(client)
        seen: list[tuple[str, str | None]] = []
        async with contextlib.aclosing(w.run()) as events:
            async for event in events:  # as a live display reads them
                seen.append((event.kind, event.run.last_error))
        assert seen == [("retry", lag.message), ("status", None), ("retry", down.message),
                        ("status", None), ("ended", None)]

    run(main)


def test_a_slow_consumer_sees_nothing_after_a_stop_and_no_request_goes_out() -> None:
    async def main() -> None:
        denied = AuthError("Invalid API key", status=401)
        scripts: dict[str, Script] = {"bad": timeline((0, "queued"), (5, denied))}
        scripts |= {f"r{i}": lambda t: "queued" for i in range(5)}
        client = FakeClient(scripts, rate=0)
        w = watcher(client)
        kinds_seen, fatal_at = [], 0.0
        async with contextlib.aclosing(w.run()) as events:
            async for event in events:
                kinds_seen.append(event.kind)
                fatal_at = event.at if event.kind == "fatal" else fatal_at
                await asyncio.sleep(3.0)  # a slow pipe: the engine must not go on meanwhile
        assert kinds_seen[-6:] == ["fatal"] + ["stopped"] * 5
        assert not [c for c in client.calls if c.at > fatal_at]
        assert w.fatal is denied
        assert w.runs[0].last_error == denied.message
        assert not still_pending()

    run(main)


def test_a_stop_gives_each_run_exactly_one_final_event() -> None:
    async def main() -> None:
        # Both seen failed, both full fetches failing when the timeout comes; ending the
        # first under fail-fast must not end the second twice.
        down = NetworkError("connection refused")
        client = FakeClient({"a": sequence("queued", "failed", down), "b": sequence("queued", "failed", down),
                             "c": lambda t: "queued"})
        w = watcher(client, timeout=20.0, fail_fast=True, give_up_after=1000)
        events = await collect(w)
        finals = [(e.run.id, e.kind) for e in events if e.kind not in ("status", "retry")]
        assert sorted(finals) == [("a", "ended"), ("b", "ended"), ("c", "timeout")]

    run(main)


def test_the_watchers_own_state() -> None:
    async def main() -> None:
        client = FakeClient({"a": timeline((0, "queued"), (3, "completed")), "b": lambda t: "completed"})
        w = watcher(client)
        assert (w.active, w.fatal, [r.status for r in w.runs]) == (2, None, [None, None])
        await collect(w)
        assert (w.active, w.fatal) == (0, None)
        with pytest.raises(RuntimeError) as info:
            await w.run().__anext__()
        assert str(info.value) == "a Watcher runs once"

    run(main)


def test_initial_objects_without_a_status_are_polled_at_once() -> None:
    async def main() -> None:
        client = FakeClient({"odd": lambda t: "completed", "seeded": lambda t: "completed",
                             "none": lambda t: "completed"})
        initial = {"odd": {"id": "odd"}, "seeded": partition("seeded", "queued", False)}
        await collect(watcher(client, initial=initial))
        first = {pid: client.calls_for(pid)[0].at for pid in client.scripts}
        assert first["odd"] == first["none"] == 0.0
        assert first["seeded"] >= 0.8

    run(main)


@pytest.mark.parametrize(("limit", "expected"), [(None, 16), (4, 4), (0, 1)])
def test_at_most_max_concurrent_requests_in_flight(limit: int | None, expected: int) -> None:
    async def main() -> None:
        client = FakeClient({f"r{i}": timeline((0, "queued"), (20, "completed")) for i in range(40)},
                            rate=0, latency=2.0)
        kw: dict[str, Any] = {} if limit is None else {"max_concurrent": limit}
        w = watcher(client, **kw)
        await collect(w)
        assert client.most_in_flight == expected
        client.most_in_flight = 0
        runs = await check_once(client, list(client.scripts), **kw)
        assert client.most_in_flight == expected
        assert [(r.status, r.raw is not None) for r in runs] == [("completed", True)] * 40

    run(main)


def test_check_once_stops_the_slow_ones_at_a_fatal_error() -> None:
    async def main() -> None:
        scripts: dict[str, Script] = {f"q{i}": lambda t: "queued" for i in range(5)}
        scripts["a"] = lambda t: AuthError("Invalid API key", status=401)
        client = FakeClient(scripts, rate=0, latency_of={f"q{i}": 100.0 for i in range(5)})
        with pytest.raises(AuthError):
            await check_once(client, list(scripts))
        assert now() < 1
        assert client.cancelled == 5
        assert not still_pending()

    run(main)


def test_a_first_poll_that_fails_backs_off_from_one_interval() -> None:
    async def main() -> None:
        down = NetworkError("connection refused")
        client = FakeClient({"a": sequence(down, down, down, "completed")}, rate=0)
        await collect(watcher(client, rng=Middle()))
        gaps = poll_gaps(client, "a")
        assert [d for _, d in gaps] == pytest.approx([base_at(at) * f for (at, _), f in zip(gaps, [1, 2, 4],
                                                                                        strict=True)])

    run(main)


def test_a_fail_fast_stop_while_seeding_leaves_the_other_runs_as_they_were() -> None:
    async def main() -> None:
        client = FakeClient({"bad": lambda t: "failed", "other": lambda t: "queued"})
        initial = {"bad": partition("bad", "failed", True), "other": partition("other", "queued", False)}
        w = watcher(client, fail_fast=True, initial=initial)
        events = await collect(w)
        assert [(e.run.id, e.kind) for e in events] == [
            ("bad", "status"), ("bad", "ended"), ("other", "stopped")]
        assert [(r.status, r.outcome) for r in w.runs] == [("failed", "failed"), (None, "stopped")]
        assert w.active == 0 and client.calls == []

    run(main)


def test_a_fresh_run_state() -> None:
    assert RunState("x") == RunState("x", status=None, raw=None, started=0.0, ended=None, outcome=None,
                                     last_error=None, exit_code=8)
    assert not RunState("x").done

    async def main() -> None:
        client = FakeClient({"q": lambda t: "queued"})
        (checked,) = await check_once(client, ["q"])
        assert (checked.ended, checked.last_error, checked.started, checked.done) == (None, None, 0.0, False)

    run(main)
