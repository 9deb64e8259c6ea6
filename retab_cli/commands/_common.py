"""What every command shares: output options, settings, the client, ids, the boundary."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.errors import RetabError, UsageError
from retab_cli.render import Renderer, isatty, parse_fields, resolve_mode
from retab_cli.settings import GlobalOptions, Settings, color_choice, resolve

if TYPE_CHECKING:
    from retab_cli.client import Client

OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="MODE", show_default=False,
    help="Output: auto, table, json, jsonl or ids [env: RETAB_OUTPUT]. auto is a table on a "
         "terminal, JSON otherwise.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print ids only (-o ids) and no progress.")]
FieldsOpt = Annotated[str | None, typer.Option(
    metavar="FIELDS", show_default=False,
    help="Comma-separated fields (dotted paths, e.g. id,status,file.filename) to keep in JSON "
         "or show as table columns.")]


def _interrupt_code(signum: int) -> int:
    return errors.SIGTERM if signum == signal.SIGTERM else errors.SIGINT


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; carries the exit code (130 / 143)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Env:
    """One invocation: the global options, the renderer, settings and client on demand."""

    def __init__(
        self,
        ctx: typer.Context,
        *,
        output: str | None = None,
        json: bool = False,
        quiet: bool = False,
        fields: str | None = None,
    ) -> None:
        root = ctx.find_root()
        self.opts: GlobalOptions = root.obj if isinstance(root.obj, GlobalOptions) \
            else GlobalOptions()
        color = color_choice(self.opts.color, os.environ)
        self.renderer = Renderer("json", color=color, quiet=quiet)
        try:
            mode, explicit = resolve_mode(output, json, quiet, os.environ.get("RETAB_OUTPUT"),
                                          sys.stdout)
            self.renderer.explicit_json = explicit
            self.renderer.fields = parse_fields(fields)
        except RetabError as exc:
            self.fail(exc)
        self.renderer.mode = mode
        self.renderer.quiet = quiet or mode == "ids"
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve(self.opts, os.environ, warn=self.renderer.warn)
        return self._settings

    def base_url(self) -> str:
        """The configured base URL, checked (https, or http on loopback only)."""
        from retab_cli.urls import normalize_base_url

        return normalize_base_url(
            self.settings.base_url,
            allow_insecure=os.environ.get("RETAB_ALLOW_INSECURE_HTTP") == "1",
            warn=self.renderer.warn,
        )

    def client(self, *, request_timeout: float | None = None) -> Client:
        from retab_cli.budget import Budget
        from retab_cli.client import REQUEST_TIMEOUT, Client

        settings = self.settings
        base_url = self.base_url()
        key = settings.require_key()
        return Client(
            base_url,
            key,
            budget=Budget(settings.max_rps),
            notice=self.renderer.notice,
            debug=self.renderer.notice if settings.debug else None,
            request_timeout=request_timeout or REQUEST_TIMEOUT,
        )

    def fail(self, error: RetabError) -> typer.Exit:
        self.renderer.error(error)
        raise typer.Exit(error.exit_code)

    def run(self, main: Callable[[], Awaitable[int]], *, on_interrupt: Callable[[int], None]
            | None = None, on_broken_pipe: Callable[[], int] | None = None) -> None:
        """Run a command's coroutine; turn every outcome into an exit code (typer.Exit)."""
        code = self._run(main, on_interrupt, on_broken_pipe)
        raise typer.Exit(code)

    def _run(self, main: Callable[[], Awaitable[int]],
             on_interrupt: Callable[[int], None] | None,
             on_broken_pipe: Callable[[], int] | None) -> int:
        try:
            return run_interruptible(main)
        except Interrupted as stop:
            if on_interrupt:
                on_interrupt(stop.code)
            elif self.renderer.explicit_json:
                self.renderer.error(errors.InterruptError("interrupted", exit_code=stop.code))
            else:
                self.renderer.warn("interrupted")
            return stop.code
        except RetabError as exc:
            self.renderer.error(exc)
            return exc.exit_code
        except BrokenPipeError:
            silence_stdout()
            return on_broken_pipe() if on_broken_pipe else errors.OK


def run_interruptible(main: Callable[[], Awaitable[int]]) -> int:
    """asyncio.run with SIGINT/SIGTERM turned into `Interrupted` (the main task cancelled)."""

    import asyncio

    async def runner() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            if received:  # a second interrupt: leave now, restoring the cursor first
                # The real stream: during a live display sys.stderr is rich's buffer.
                real = sys.__stderr__
                if real is not None and isatty(real):
                    real.write("\x1b[?25h")
                    real.flush()
                os._exit(_interrupt_code(received[0]))
            received.append(signum)
            if task is not None:
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            # Not possible off the main thread (test runners) or off POSIX.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await main()
        except asyncio.CancelledError:
            if received:
                raise Interrupted(_interrupt_code(received[0])) from None
            raise
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signum)

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        raise Interrupted(errors.SIGINT) from None


def silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass




# ---- ids ---------------------------------------------------------------------------


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
        raise UsageError("no partition ids on stdin")
    return list(seen)


def _stdin_ids(stream: Any) -> list[str]:
    if isatty(stream):
        raise UsageError("'-' reads ids from stdin, but stdin is a terminal",
                         hint="pipe ids in, e.g. retab partitions list -q | ...")
    ids = []
    for line in stream.read().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            ids.append(text)
    return ids


def stdin_is_tty() -> bool:
    return isatty(sys.stdin)


# ---- the process boundary (Typer's own usage errors) -------------------------------


def run_app(app: typer.Typer, args: list[str]) -> int:
    from typer import Abort
    from typer._click.exceptions import ClickException
    from typer._click.exceptions import UsageError as ClickUsageError

    renderer = Renderer("json", explicit_json=_asks_json(args))
    try:
        result = app(args=args, prog_name="retab", standalone_mode=False)
    except ClickUsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "retab"
        renderer.error(UsageError(exc.format_message(),
                                  hint=f"run '{where} --help' for usage"))
        return errors.USAGE
    except RetabError as exc:
        renderer.error(exc)
        return exc.exit_code
    except (Abort, KeyboardInterrupt, Interrupted) as exc:
        renderer.warn("interrupted")
        return exc.code if isinstance(exc, Interrupted) else errors.SIGINT
    except ClickException as exc:
        renderer.error(UsageError(exc.format_message()))
        return errors.USAGE
    except BrokenPipeError:
        silence_stdout()
        return errors.OK
    return result if isinstance(result, int) else errors.OK


def _asks_json(args: Sequence[str]) -> bool:
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--json" or arg in ("-ojson", "-ojsonl", "--output=json", "--output=jsonl"):
            return True
        if arg in ("-o", "--output") and i + 1 < len(args) and args[i + 1] in ("json", "jsonl"):
            return True
    return False


@dataclass
class Outcome:
    item: Any
    value: Any = None
    error: RetabError | None = None


FATAL = (errors.AuthError,)


async def ordered(
    items: Sequence[Any],
    worker: Callable[[Any], Awaitable[Any]],
    emit: Callable[[Outcome], None],
    *,
    limit: int = 16,
) -> None:
    """Run `worker` over items, at most `limit` at once; `emit` results in input order as
    soon as each prefix is done.

    An auth error stops the rest (they are not attempted) and is raised once, after every
    finished outcome has been emitted, so a caller can say exactly what was done.
    """
    import asyncio

    results: dict[int, Outcome] = {}
    next_emit = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(items)):
        queue.put_nowait(index)
    stop: list[RetabError] = []

    def flush() -> None:
        nonlocal next_emit
        while next_emit in results:
            emit(results.pop(next_emit))
            next_emit += 1

    async def one() -> None:
        while not stop and not queue.empty():
            index = queue.get_nowait()
            try:
                results[index] = Outcome(items[index], value=await worker(items[index]))
            except FATAL as exc:
                exc.partition_id = None  # about the key, not about this id
                stop.append(exc)
                return
            except RetabError as exc:
                results[index] = Outcome(items[index], error=exc)
            flush()

    workers = [asyncio.create_task(one()) for _ in range(min(limit, len(items)) or 1)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if stop:
        for index in sorted(results):  # finished after the failed one: still reported
            emit(results.pop(index))
        raise stop[0]


def one_id(ids: Sequence[str] | None) -> bool:
    """One id given on the command line (not `-`): the output is one object, not an array."""
    return bool(ids) and len(ids or ()) == 1 and (ids or [""])[0] != "-"


@dataclass
class Tally:
    """What a bulk command got back, in input order, and the exit codes so far."""

    values: list[Any] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    stopped: bool = False  # an auth error ended it before every item was tried

    @property
    def code(self) -> int:
        return errors.worst(self.codes)

    def failed(self, renderer: Renderer, error: RetabError) -> None:
        renderer.error(error)
        self.codes.append(error.exit_code)


async def bulk(env: Env, verb: str, wanted: Sequence[str], worker: Callable[[str], Awaitable[Any]],
               show: Callable[[Any], None], done: list[str]) -> Tally:
    """Cancel or delete each id: results shown in input order as they come, errors per id,
    and on an auth error, the list of what was already done (`done` is kept up to date for
    an interrupt handler)."""
    tally = Tally()

    def emit(outcome: Outcome) -> None:
        if outcome.error is not None:
            tally.failed(env.renderer, outcome.error)
            return
        done.append(outcome.item)
        tally.values.append(outcome.value)
        show(outcome.value)

    try:
        await ordered(wanted, worker, emit)
    except RetabError as exc:
        tally.failed(env.renderer, exc)
        report_partial(env, verb, done, wanted)
        tally.stopped = True
    return tally


def partial_on_broken_pipe(env: Env, verb: str, done: Sequence[str],
                           wanted: Sequence[str]) -> Callable[[], int]:
    """For a mutating bulk command: a closed stdout stops it, says what was done, exits 1."""

    def on_broken_pipe() -> int:
        report_partial(env, verb, done, wanted, reason="stdout was closed")
        return errors.ERROR

    return on_broken_pipe


def confirm_destructive(env: Env, question: str, yes: bool, *, declined: str) -> None:
    """Ask on a terminal; without one, refuse unless --yes (DESIGN §1)."""
    if yes:
        return
    if not stdin_is_tty():
        raise UsageError("refusing to go on without --yes: stdin is not a terminal, so "
                         "there is no one to confirm", hint="add --yes to confirm")
    if not env.renderer.confirm(question):
        raise RetabError(declined, exit_code=errors.ERROR, hint=None)


def report_partial(env: Env, verb: str, done: Sequence[str], wanted: Sequence[str], *,
                   interrupted: bool = False, reason: str | None = None) -> None:
    """Say exactly which ids a stopped bulk operation already handled."""
    if len(done) == len(wanted):
        if reason:
            env.renderer.warn(f"{verb} all {len(wanted)}; {reason}")
        return
    why = "interrupted" if interrupted else (reason or "stopped")
    env.renderer.warn(f"{why}: {verb} {len(done)} of {len(wanted)}")
    for partition_id in done:
        env.renderer.warn(f"  {verb}: {partition_id}")
    handled = set(done)
    left = [i for i in wanted if i not in handled]
    if left:
        env.renderer.warn(f"  not {verb} ({len(left)}): " + " ".join(left[:20])
                          + (" …" if len(left) > 20 else ""))
