"""The request budget on fake time: pacing, bursts, FIFO order, 429 back-off and recovery."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from retab_cli.budget import DEFAULT_RATE, MIN_RATE, RECOVER_AFTER, Budget


class FakeTime:
    """A clock that only moves when every task is asleep: then to the earliest wake-up."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    def budget(self, rate: float = DEFAULT_RATE, burst: float = 2.0) -> Budget:
        return Budget(rate, burst, clock=self.clock, sleep=self.sleep)

    async def _settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def gather(self, *coros: Awaitable[Any]) -> list[Any]:
        """Run the coroutines to the end, advancing fake time whenever all are asleep."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        while True:
            await self._settle()
            if all(t.done() for t in tasks):
                return [t.result() for t in tasks]
            if not self._sleepers:
                raise AssertionError("deadlock: tasks wait on something other than fake sleep")
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            future.set_result(None)

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        async def runner() -> Any:
            return (await self.gather(main()))[0]

        return asyncio.run(runner())


async def acquire_times(budget: Budget, time: FakeTime, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await budget.acquire()
        times.append(round(time.now - 1000.0, 6))
    return times


# ---- pacing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 10, 26])
def test_n_acquires_take_n_minus_burst_over_rate(n: int) -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=2.0)
    times = time.run(lambda: acquire_times(budget, time, n))
    assert times[-1] == pytest.approx((n - 2) / 5.0)
    assert budget.sent == n


def test_pacing_is_exactly_one_interval_after_the_burst() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=2.0)
    times = time.run(lambda: acquire_times(budget, time, 6))
    assert times == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.8])


def test_the_burst_comes_back_after_an_idle_period() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=3.0)

    async def main() -> list[float]:
        first = await acquire_times(budget, time, 5)
        await time.sleep(10.0)
        return first + await acquire_times(budget, time, 5)

    times = time.run(main)
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.2, 0.4, 10.4, 10.4, 10.4, 10.6, 10.8])


def test_long_run_rate_never_exceeds_the_budget() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=2.0)
    times = time.run(lambda: acquire_times(budget, time, 101))
    # In any window of w seconds at most burst + w * rate requests go.
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert j - i + 1 <= 2 + (times[j] - times[i]) * 5.0 + 1e-9


def test_the_default_burst_is_two_requests_back_to_back() -> None:
    time = FakeTime(start=0.0)  # a clock that starts at zero: the burst must not depend on it
    budget = Budget(5.0, clock=time.clock, sleep=time.sleep)
    assert budget.burst == 2.0

    async def main() -> list[float]:
        times = []
        for _ in range(4):
            await budget.acquire()
            times.append(time.now)
        return times

    assert time.run(main) == pytest.approx([0.0, 0.0, 0.2, 0.4])


def test_burst_below_one_means_one() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=0.0)
    assert budget.burst == 1.0
    assert time.run(lambda: acquire_times(budget, time, 3)) == pytest.approx([0.0, 0.2, 0.4])


def test_negative_rate_refused() -> None:
    with pytest.raises(ValueError) as info:
        Budget(-1.0)
    assert str(info.value) == "rate must be >= 0"
    assert Budget(0.0).unlimited


def test_default_rate_is_retabs_published_limit() -> None:
    assert DEFAULT_RATE == 5.0
    assert Budget().rate == 5.0


# ---- FIFO ------------------------------------------------------------------------------------


def test_concurrent_waiters_are_served_in_arrival_order() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=2.0)
    served: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await budget.acquire()
        served.append((i, round(time.now - 1000.0, 6)))

    async def main() -> None:
        await time.gather(*(one(i) for i in range(8)))

    asyncio.run(main())
    assert [i for i, _ in served] == list(range(8))
    assert [t for _, t in served] == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])


# ---- 429 -------------------------------------------------------------------------------------


def test_rate_limited_halves_the_rate_down_to_the_minimum() -> None:
    time = FakeTime()
    budget = time.budget(5.0)
    rates = []
    for _ in range(8):
        budget.on_rate_limited(0.0)
        rates.append(budget.rate)
    assert rates == pytest.approx([2.5, 1.25, 0.625, 0.3125, MIN_RATE, MIN_RATE, MIN_RATE,
                                   MIN_RATE])
    assert MIN_RATE == 0.2
    assert budget.rate_limited == 8


def test_rate_limited_holds_every_acquire_until_retry_after() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=2.0)
    served: list[float] = []

    async def one() -> None:
        await budget.acquire()
        served.append(round(time.now - 1000.0, 6))

    async def main() -> None:
        await budget.acquire()
        await budget.acquire()
        budget.on_rate_limited(3.0)
        await time.gather(*(one() for _ in range(4)))

    asyncio.run(main())
    # Held until t=3, then paced at the halved rate (2.5/s): one every 0.4 s, no burst.
    assert served == pytest.approx([3.0, 3.4, 3.8, 4.2])


def test_rate_limited_also_holds_waiters_already_asleep() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=1.0)
    served: list[float] = []

    async def one() -> None:
        await budget.acquire()
        served.append(round(time.now - 1000.0, 6))

    async def limiter() -> None:
        await time.sleep(0.1)
        budget.on_rate_limited(5.0)

    async def main() -> None:
        await time.gather(limiter(), *(one() for _ in range(3)))

    asyncio.run(main())
    assert served[0] == 0.0
    assert all(t >= 5.1 for t in served[1:])
    assert served[1:] == pytest.approx([5.1, 5.5])


def test_rate_limited_without_retry_after_pauses_one_interval() -> None:
    time = FakeTime()
    budget = time.budget(5.0, burst=1.0)

    async def main() -> float:
        await budget.acquire()
        budget.on_rate_limited(None)
        await budget.acquire()
        return time.now - 1000.0

    assert time.run(main) == pytest.approx(1 / 2.5)


def test_recovery_doubles_after_ten_quiet_seconds_up_to_the_configured_rate() -> None:
    time = FakeTime()
    budget = time.budget(4.0)
    for _ in range(3):
        budget.on_rate_limited(0.0)
    assert budget.rate == pytest.approx(0.5)
    assert RECOVER_AFTER == 10.0

    async def main() -> list[float]:
        rates = []
        for wait in (9.9, 0.1, 9.0, 1.0, 10.0, 10.0, 10.0):
            await time.sleep(wait)
            await budget.acquire()
            rates.append(budget.rate)
        return rates

    rates = time.run(main)
    # 9.9 s: not yet; 10 s: 1.0; 9 s after that: still 1.0; 10 s: 2.0; then 4.0, capped.
    assert rates == pytest.approx([0.5, 1.0, 1.0, 2.0, 4.0, 4.0, 4.0])


def test_a_new_429_restarts_the_recovery_clock() -> None:
    time = FakeTime()
    budget = time.budget(5.0)
    budget.on_rate_limited(0.0)

    async def main() -> float:
        await time.sleep(8.0)
        budget.on_rate_limited(0.0)
        await time.sleep(8.0)
        await budget.acquire()
        return budget.rate

    assert time.run(main) == pytest.approx(1.25)


def test_recovery_never_goes_above_the_configured_rate() -> None:
    time = FakeTime()
    budget = time.budget(3.0)
    budget.on_rate_limited(0.0)

    async def main() -> None:
        for _ in range(5):
            await time.sleep(RECOVER_AFTER)
            await budget.acquire()

    time.run(main)
    assert budget.rate == 3.0


# ---- unlimited -----------------------------------------------------------------------------


def test_rate_zero_never_waits() -> None:
    time = FakeTime()
    budget = time.budget(0.0)
    assert budget.unlimited
    times = time.run(lambda: acquire_times(budget, time, 500))
    assert times == [0.0] * 500
    assert time.slept == []
    assert budget.sent == 500


def test_rate_zero_still_honours_retry_after_and_stays_unlimited() -> None:
    time = FakeTime()
    budget = time.budget(0.0)

    async def main() -> list[float]:
        budget.on_rate_limited(2.0)
        return await acquire_times(budget, time, 3)

    assert time.run(main) == pytest.approx([2.0, 2.0, 2.0])
    assert budget.rate == 0.0
    assert budget.unlimited


# ---- interval_for --------------------------------------------------------------------------


def test_interval_for() -> None:
    budget = Budget(5.0)
    assert budget.interval_for(1) == pytest.approx(0.2)
    assert budget.interval_for(50) == pytest.approx(10.0)
    assert budget.interval_for(0) == 0.0
    assert budget.interval_for(-3) == 0.0
    assert Budget(0.5).interval_for(2) == pytest.approx(4.0)
    assert Budget(0).interval_for(1000) == 0.0


def test_interval_for_follows_the_current_rate() -> None:
    time = FakeTime()
    budget = time.budget(5.0)
    budget.on_rate_limited(0.0)
    assert budget.interval_for(10) == pytest.approx(4.0)


def test_a_429_without_retry_after_pauses_one_second_when_unlimited() -> None:
    time = FakeTime()
    budget = time.budget(rate=0)
    budget.on_rate_limited(None)
    time.run(budget.acquire)
    assert time.now == pytest.approx(1001.0)
