"""The upload progress bar of `create` with several files."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from retab_cli.render import Renderer, sanitize
from retab_cli.render.console import make_console


class UploadProgress:
    """A transient progress bar on stderr while `create` uploads several files.

    Drawn only on a terminal, without -q or --no-progress; otherwise every call does nothing, so
    forced colour or a redirected stderr never gets a live display.
    """

    COLUMNS: tuple[ProgressColumn, ...] = ()

    def __init__(self, r: Renderer, *, total: int) -> None:
        self._total = total
        self._task: TaskID | None = None
        self._progress: Progress | None = None
        if r.stderr_tty and not r.quiet and r.progress:
            console = make_console(r.stderr, color=r.stderr_color, width=r.width)
            self._progress = Progress(
                *(self.COLUMNS or (TextColumn("uploading", markup=False), BarColumn(),
                                   MofNCompleteColumn(), TimeElapsedColumn(),
                                   TextColumn("{task.fields[name]}", markup=False))),
                console=console,
                transient=True,
                # stdout carries data: the progress display must not capture it.
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> UploadProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("uploading", total=self._total, name="")
        return self

    def advance(self, filename: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1,
                                  name=sanitize(filename, single_line=True))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


def upload_progress(r: Renderer, total: int) -> UploadProgress | None:
    """A bar for several uploads under the table output; none for one, or for data output."""
    if total < 2 or r.mode != "table":
        return None
    return UploadProgress(r, total=total)


class CreateSpinner(UploadProgress):
    """A synchronous create on a terminal: a spinner and the time waited, on stderr."""

    COLUMNS = (SpinnerColumn(), TextColumn("waiting for the run", markup=False),
               TimeElapsedColumn())


def create_spinner(r: Renderer, *, synchronous: bool, total: int) -> UploadProgress | None:
    """The upload bar for several files; for one synchronous create, a spinner."""
    if r.mode != "table":
        return None
    if total >= 2:
        return UploadProgress(r, total=total)
    return CreateSpinner(r, total=1) if synchronous else None
