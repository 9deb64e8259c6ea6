"""Running a command's coroutine, with SIGINT/SIGTERM turned into an exit code (130/143).

On the first signal the main task is cancelled (its `finally` blocks and `async with`
exits run: live displays stop, clients close), then the command's interrupt hook is
awaited in the same event loop: reporting, or cancelling runs for
--cancel-on-interrupt, while the signal handlers are still in place, so a second
signal leaves at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from retab_cli import errors

OnInterrupt = Callable[[int], Coroutine[Any, Any, None]]
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; carries the exit code (130 / 143)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def interrupt_code(signum: int) -> int:
    return errors.SIGTERM if signum == signal.SIGTERM else errors.SIGINT


def _nothing() -> None:
    return None


def run_interruptible(main: Callable[[], Awaitable[int]], *,
                      on_interrupt: OnInterrupt | None = None,
                      before_exit: Callable[[], None] = _nothing) -> int:
    """asyncio.run of `main()`. A signal cancels it, awaits `on_interrupt(code)` and raises
    `Interrupted(code)`; a second signal calls `before_exit` and leaves with os._exit."""
    import asyncio  # not at import time: the boundary imports this module on every path

    try:
        return asyncio.run(_guarded(main, on_interrupt, before_exit))
    except KeyboardInterrupt:
        # Only when the loop's handlers could not be installed (off the main thread, off
        # POSIX): the loop is gone, so the hook gets a fresh one.
        if on_interrupt is not None:
            asyncio.run(on_interrupt(errors.SIGINT))
        raise Interrupted(errors.SIGINT) from None


async def _guarded(main: Callable[[], Awaitable[int]], on_interrupt: OnInterrupt | None,
                   before_exit: Callable[[], None]) -> int:
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:  # a second interrupt: leave now
            before_exit()
            os._exit(interrupt_code(received[0]))
        received.append(signum)
        if task is not None:
            task.cancel()

    for signum in _SIGNALS:
        # Not possible off the main thread (test runners) or off POSIX.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await main()
    except asyncio.CancelledError:
        if not received:
            raise
        code = interrupt_code(received[0])
        if task is not None:
            task.uncancel()  # the hook may await (cancels, timeouts) in this task
        if on_interrupt is not None:
            await on_interrupt(code)
        raise Interrupted(code) from None
    finally:
        for signum in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)

