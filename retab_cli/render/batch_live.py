"""The live batch display on a terminal's stderr: counts, credits, rate and ETA (docs/design.md §10)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from rich.console import Group
from rich.live import Live
from rich.text import Text

from retab_cli.render import Renderer
from retab_cli.render.cells import status_text
from retab_cli.render.console import make_console


class Counts(Protocol):
    """What the display reads (retab_cli.batch.progress.Progress)."""

    discovered: int
    hashed: int
    sending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    local_errors: int

    def line(self, now: float) -> str: ...


class BatchLive:
    """Two lines refreshed twice a second: documents by stage, then credits, rate, ETA."""

    def __init__(self, renderer: Renderer, progress: Counts,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._progress = progress
        self._clock = clock
        console = make_console(renderer.stderr, color=renderer.stderr_color, width=renderer.width)
        # stdout is data (-o jsonl events) and never touched; warnings written meanwhile
        # are printed above the display instead of tearing it.
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=2,
                          transient=True, redirect_stdout=False, redirect_stderr=True)

    def __enter__(self) -> BatchLive:
        self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._live.stop()

    def _render(self) -> Group:
        p = self._progress
        stages = Text("batch: ")
        stages.append(f"{p.discovered} found · {p.hashed} read · {p.sending} sending · "
                      f"{p.running} running · ")
        for count, status in ((p.completed, "completed"), (p.failed, "failed"),
                              (p.cancelled, "cancelled")):
            stages.append(f"{count} ")
            stages.append_text(status_text(status))
            stages.append(" · ")
        stages.append(f"{p.local_errors} refused")
        rest = p.line(self._clock()).split(" · ", 1)[1]
        return Group(stages, Text(rest))
