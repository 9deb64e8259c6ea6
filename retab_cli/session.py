"""One invocation of a command: its renderer, settings and client, and its run boundary.

`Env` is what a command gets: the output decided once (docs/design.md §2), the settings and a
client made on demand (through `connect`, the one client factory), and `run`, which
turns every way a command's coroutine can end into an exit code. No Typer here: the
command layer builds the Env from the parsed options.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from retab_cli import errors
from retab_cli.errors import RetabError, UsageError
from retab_cli.render import Renderer, isatty, parse_fields, resolve_mode
from retab_cli.settings import GlobalOptions, Settings, color_choice, resolve, show_progress

if TYPE_CHECKING:
    from retab_cli.client import Client

OnInterrupt = Callable[[int], Coroutine[Any, Any, None]]


class Env:
    """The global options, the renderer, and settings and client on demand."""

    def __init__(self, opts: GlobalOptions | None = None, *, quiet: bool = False,
                 creating: bool = False) -> None:
        self.opts = opts or GlobalOptions()
        self.creating = creating  # `auth login`: the profile named may not exist yet
        color = color_choice(self.opts.color, os.environ)
        self.renderer = Renderer("json", color=color, quiet=quiet,
                                 progress=show_progress(self.opts.no_progress, os.environ))
        self._settings: Settings | None = None
        self.renderer.error_listeners.append(self._forget_missing)

    def choose_output(self, output: str | None = None, json: bool = False,
                      quiet: bool = False, fields: str | None = None) -> None:
        """Decide the output mode from -o/--json/-q/--fields and RETAB_OUTPUT."""
        mode, explicit = resolve_mode(output, json, quiet, os.environ.get("RETAB_OUTPUT"),
                                      sys.stdout)
        # Set before --fields is checked: a bad --fields under --json is a JSON error too.
        self.renderer.explicit_json = explicit
        self.renderer.fields = parse_fields(fields)
        self.renderer.mode = mode
        self.renderer.quiet = quiet or mode == "ids"

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve(self.opts, os.environ, warn=self.renderer.warn,
                                     creating=self.creating)
        return self._settings

    def base_url(self) -> str:
        """The configured base URL, checked (https, or http on loopback only)."""
        from retab_cli.connect import checked_base_url

        return checked_base_url(self.settings, warn=self.renderer.warn)

    def client(self, *, base_url: str | None = None, key: str | None = None,
               max_attempts: int | None = None, request_timeout: float | None = None) -> Client:
        from retab_cli.connect import open_client

        return open_client(self.settings, notice=self.renderer.notice,
                           base_url=base_url or self.base_url(), key=key,
                           max_attempts=max_attempts, request_timeout=request_timeout)

    def _forget_missing(self, error: RetabError) -> None:
        """A 404 for an id: shell completion stops offering it (a typo, or deleted)."""
        if isinstance(error, errors.NotFoundError) and error.partition_id and self._settings:
            from retab_cli.recent import forget

            forget([error.partition_id], self._settings)

    def fail(self, error: RetabError) -> int:
        """Report an error; its exit code."""
        if isinstance(error, NothingToDo):
            self.renderer.info(error.message)
            return errors.OK
        self.renderer.error(error)
        return error.exit_code

    def run(self, main: Callable[[], Awaitable[int]], *, on_interrupt: OnInterrupt | None = None,
            on_broken_pipe: Callable[[], int] | None = None) -> int:
        """Run a command's coroutine; every way it ends becomes an exit code."""
        from retab_cli.render import restore_cursor
        from retab_cli.render.streams import silence
        from retab_cli.running import Interrupted, run_interruptible

        try:
            return run_interruptible(main, on_interrupt=on_interrupt or self._interrupted,
                                     before_exit=restore_cursor)
        except Interrupted as stop:
            return stop.code
        except RetabError as exc:
            return self.fail(exc)
        except BrokenPipeError:  # stdout's reader went away (stderr's never ends a command)
            silence(sys.stdout)
            if on_broken_pipe is not None:
                return on_broken_pipe()
            # A read-only command ends quietly, but an error it already showed stays its
            # code: with `2>&1 | head -1` the reader saw the error, then left.
            return errors.worst(self.renderer.reported)

    async def _interrupted(self, code: int) -> None:
        if self.renderer.explicit_json:
            self.renderer.error(errors.InterruptError("interrupted", exit_code=code))
        else:
            self.renderer.warn("interrupted")


# ---- input ---------------------------------------------------------------------------


class NothingToDo(RetabError):
    """`-` read no ids (`list -q | cancel -` with nothing listed): a note, exit 0, not an
    error (docs/design.md §12)."""

    def __init__(self) -> None:
        super().__init__("no ids given; nothing to do", exit_code=errors.OK)


def read_ids(args: Sequence[str], *, stdin: Any = None) -> list[str]:
    """Ids from arguments, or `-` for stdin: blanks and # comments skipped, de-duplicated
    in order, every one validated before anything is sent."""
    from retab_cli.client import validate_id

    if not args:
        raise UsageError("no partition ids given (pass ids, or - to read them from stdin)")
    raw: list[str] = []
    for arg in args:
        if arg == "-":
            raw.extend(_stdin_ids(stdin or sys.stdin))
        else:
            raw.append(arg)
    seen: dict[str, None] = {}
    for value in raw:
        seen.setdefault(validate_id(value), None)
    if not seen:
        raise NothingToDo()
    return list(seen)


def _stdin_ids(stream: Any) -> list[str]:
    if isatty(stream):
        raise UsageError("'-' reads ids from stdin, but stdin is a terminal",
                         hint="pipe ids in, e.g. retab partitions list -q | ...")
    try:
        text = stream.read()
    except UnicodeDecodeError:  # a PDF piped in by mistake: not a list of ids
        raise UsageError("'-' reads ids from stdin, but stdin is not text (not UTF-8)",
                         hint="pipe ids in, one a line, e.g. retab partitions list -q | ...") from None
    ids = []
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            ids.append(value)
    return ids


def stdin_is_tty() -> bool:
    return isatty(sys.stdin)


def confirm_destructive(env: Env, question: str, yes: bool, *, declined: str) -> None:
    """Ask on a terminal; without one, refuse unless --yes (docs/design.md §1)."""
    if yes:
        return
    if not stdin_is_tty():
        raise UsageError("refusing to go on without --yes: stdin is not a terminal, so "
                         "there is no one to confirm", hint="add --yes to confirm")
    if not env.renderer.confirm(question):
        raise RetabError(declined, exit_code=errors.ERROR, hint=None)
