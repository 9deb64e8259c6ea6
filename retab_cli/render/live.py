"""The live watch table on a terminal's stderr (rich `Live`, refreshed twice a second)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from retab_cli.parsing import format_duration, parse_time
from retab_cli.render import Renderer, format_number, sanitize
from retab_cli.render.cells import status_text
from retab_cli.render.console import make_console
from retab_cli.render.watching import chunk_count, credits_of, filename_of
from retab_cli.statuses import ACTIVE_ORDER

ORDER = ACTIVE_ORDER[::-1]  # furthest along first


class RunView(Protocol):
    id: str
    status: str | None
    raw: dict[str, Any] | None
    started: float
    ended: float | None


class LiveView:
    """Active runs first, then the latest ends, cut to the terminal's height."""

    def __init__(self, renderer: Renderer, runs: Sequence[RunView],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._runs = runs
        self._clock = clock
        self._wall = wall
        # Before Live: its constructor already renders once.
        self._ended_order: list[str] = []
        self._console = make_console(renderer.stderr, color=renderer.stderr_color,
                                     width=renderer.width)
        # stdout is data and never touched. stderr is redirected: retry notices and
        # --debug lines written meanwhile are printed above the table instead of
        # tearing it (the renderer looks sys.stderr up at each write).
        self._live = Live(console=self._console, get_renderable=self._render,
                          refresh_per_second=2, transient=True, redirect_stdout=False,
                          redirect_stderr=True)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._live.stop()

    def ended(self, run_id: str) -> None:
        self._ended_order.append(run_id)

    def _render(self) -> Group:
        now, wall = self._clock(), self._wall()
        shown = self._shown(max(5, self._console.height - 4))
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for name in ("RUN", "FILE", "STATUS", "ELAPSED", "CHUNKS", "CREDITS"):
            table.add_column(name, no_wrap=True, overflow="ellipsis")
        for run in shown:
            table.add_row(*self._row(run, now, wall))
        return Group(table, Text(self._counts(len(shown))))

    def _shown(self, height: int) -> list[RunView]:
        """Rows in the order the runs were given, so none jumps as its status changes;
        when they do not all fit, the active runs and then the latest ends are kept."""
        if len(self._runs) <= height:
            return list(self._runs)
        by_id = {run.id: run for run in self._runs}
        active = [r for r in self._runs if r.ended is None]
        active.sort(key=lambda r: ORDER.index(r.status) if r.status in ORDER else len(ORDER))
        recent = [by_id[i] for i in reversed(self._ended_order) if i in by_id]
        kept = {id(run) for run in (active + recent)[:height]}
        return [run for run in self._runs if id(run) in kept]

    def _row(self, run: RunView, now: float, wall: datetime) -> list[Text | str]:
        chunks = chunk_count(run.raw) if run.status == "completed" else None
        credits = credits_of(run.raw)
        # Ended, but only the status-only view seen so far: the chunks are still coming.
        pending = run.ended is not None and run.status == "completed" and chunks is None
        return [
            run.id,
            Text(filename_of(run.raw)),
            status_text(sanitize(run.status or "…", single_line=True)),
            format_duration(_elapsed(run, now, wall)),
            "…" if pending else (str(chunks) if chunks is not None else ""),
            format_number(credits) if credits is not None else "",
        ]

    def _counts(self, shown: int) -> str:
        counts = Counter(run.status or "unknown" for run in self._runs)
        parts = ", ".join(f"{n} {sanitize(s, single_line=True)}" for s, n in counts.most_common())
        hidden = len(self._runs) - shown
        more = f" ({hidden} more not shown)" if hidden > 0 else ""
        noun = "run" if len(self._runs) == 1 else "runs"
        return f"{len(self._runs)} {noun}: {parts}{more}"


def _elapsed(run: RunView, now: float, wall: datetime) -> float:
    """Seconds since the run's created_at (to its end, once it ended), never negative;
    since the watch first saw it when created_at is missing or unreadable."""
    stop = run.ended if run.ended is not None else now
    created = parse_time(run.raw.get("created_at")) if run.raw else None
    if created is None:
        return max(0.0, stop - run.started)
    return max(0.0, (wall - created).total_seconds() - (now - stop))
