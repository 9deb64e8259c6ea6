"""The upload bar of `create`: bytes sent and rate of each document going through the files
API, beside the count of runs created (several files) or the wait for one run."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from retab_cli.render import Renderer, sanitize
from retab_cli.render.console import make_console

if TYPE_CHECKING:
    from retab_cli.creating import Creates
    from retab_cli.render.progress import UploadProgress

BYTES = "bytes"  # the kind of an upload's row; other rows count runs or wait for one
MIB = 1024 * 1024


class _Amount(ProgressColumn):
    """Bytes sent of the total for an upload ("12.0/30.0 MiB"), runs created of the total
    for the count row, nothing for the wait."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._bytes = DownloadColumn(binary_units=True)

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") == BYTES:
            return self._bytes.render(task)
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class _Pace(ProgressColumn):
    """The rate of an upload (in MiB/s, as its sizes are in MiB); the time elapsed for
    the other rows."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._elapsed = TimeElapsedColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") != BYTES:
            return self._elapsed.render(task)
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed / MIB:.1f} MiB/s"
        return Text(shown, style="progress.data.speed")


class UploadBars:
    """A transient display on stderr: one row per document being uploaded (its name, a
    bar, bytes sent of its size, the rate), and `status` (say "waiting for the run") as a
    row counting `total` runs (or, for one, the time waited).

    Drawn only on a terminal, without -q or --no-progress; otherwise every call does
    nothing, so a redirected stderr or CI log never gets a live display.
    """

    def __init__(self, r: Renderer, *, status: str | None = None, total: int = 1) -> None:
        self._status = status
        self._total = total
        self._status_row: TaskID | None = None
        self._rows: dict[int, TaskID] = {}
        self._uploads = 0
        self._progress: Progress | None = None
        if r.stderr_tty and not r.quiet and r.progress:
            console = make_console(r.stderr, color=r.stderr_color, width=r.width)
            self._progress = Progress(
                # A long name gives way (cut with …), never the figures.
                TextColumn("{task.description}", markup=False,
                           table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                BarColumn(bar_width=24), _Amount(), _Pace(), console=console, transient=True,
                # stdout carries data: the display must not capture it.
                redirect_stdout=False, redirect_stderr=False)

    @property
    def live(self) -> bool:
        return self._progress is not None

    def __enter__(self) -> UploadBars:
        if self._progress is not None:
            self._progress.start()
            if self._status is not None:
                total = self._total if self._total > 1 else None
                self._status_row = self._progress.add_task(self._status, total=total)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, filename: str) -> None:
        """One more run created (the count row)."""
        if self._progress is not None and self._status_row is not None:
            self._progress.advance(self._status_row)

    def tracker(self, label: str) -> Callable[[int, int], None]:
        """The `progress(sent, total)` of one upload: its row appears with the first call,
        starts over when the upload does (sent 0) and goes once every byte is sent."""
        self._uploads += 1
        key = self._uploads
        name = "uploading " + sanitize(label, single_line=True)

        def update(sent: int, total: int) -> None:
            progress = self._progress
            if progress is None:
                return
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = progress.add_task(name, total=total, kind=BYTES)
            elif sent == 0:
                progress.reset(row, total=total)
            progress.update(row, completed=sent)
            if sent >= total:
                progress.remove_task(self._rows.pop(key))

        return update


def create_progress(r: Renderer, creates: Creates) -> UploadProgress | UploadBars | None:
    """The display on stderr while `create` sends: with an upload, the bytes and rate
    (its retry notices on stderr too); otherwise the count of files or the wait."""
    from retab_cli.render.progress import create_spinner

    plan, delivery = creates.plan, creates.delivery
    synchronous, total = not plan.options.background, len(plan.documents)
    if "upload" not in plan.transports:
        return create_spinner(r, synchronous=synchronous, total=total)
    bars = upload_bars(r, synchronous=synchronous, total=total)
    delivery.progress = lambda document: bars.tracker(document.filename)
    delivery.notice = r.notice
    return bars


def upload_bars(r: Renderer, *, synchronous: bool, total: int) -> UploadBars:
    """The display of a `create` that uploads: byte rows in any output mode (they are on
    stderr), and under the table output the count of runs created (several documents)
    or, for one synchronous create, the time waited for the run."""
    status = None
    if r.mode == "table" and (total > 1 or synchronous):
        status = "created" if total > 1 else "waiting for the run"
    return UploadBars(r, status=status, total=total)
