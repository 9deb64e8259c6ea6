"""The output layer: the only code that writes to the terminal (docs/design.md §2, §8).

stdout carries data only; everything else goes to stderr. This module stays free of
rich at import time so the JSON path starts fast: tables live in `render.detail` and
`render.lists`,
imported when a table is drawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from retab_cli.errors import RetabError, UsageError, hint_for
from retab_cli.render.streams import StderrGuard, StdoutGuard

# Re-exported: the render modules and the commands take them from here.
from retab_cli.text import format_number as format_number
from retab_cli.text import sanitize as sanitize

if TYPE_CHECKING:
    from retab_cli.render.csv_rows import CsvWriter

MODES = ("auto", "table", "json", "jsonl", "ids", "csv")



def dumps(obj: Any, *, indent: int | None = None) -> str:
    """JSON as the contract says: standard library, ASCII-only, no NaN."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, indent=indent)


_MISSING = object()


def _at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def pick(obj: Any, path: str) -> Any:
    """The value at a dotted path, or None."""
    value = _at(obj, path)
    return None if value is _MISSING else value


def has_path(obj: Any, path: str) -> bool:
    """Whether the object holds the dotted path at all (a null value counts)."""
    return _at(obj, path) is not _MISSING


def narrow(obj: Any, fields: Sequence[str] | None) -> Any:
    """Keep only the dotted paths asked for, nested as in the original object."""
    if not fields or not isinstance(obj, Mapping):
        return obj
    result: dict[str, Any] = {}
    for path in fields:
        parts = path.split(".")
        value = pick(obj, path)
        target = result
        for part in parts[:-1]:
            inner = target.get(part, {})
            if not isinstance(inner, dict):
                break  # a shorter path asked for already shows this whole value
            # A copy: a value taken whole from `obj` must not be changed in place.
            inner = dict(inner)
            target[part] = inner
            target = inner
        else:
            target[parts[-1]] = value
    return result


class FieldsSeen:
    """Which --fields paths the objects shown had: a path none of them has is a typo
    worth one warning (it would only print as null or an empty column)."""

    def __init__(self) -> None:
        self.objects = 0
        self.top: dict[str, None] = {}  # top-level keys, in the order first seen
        self.found: set[str] = set()

    def add(self, obj: Any, fields: Sequence[str] | None) -> None:
        if not fields or not isinstance(obj, Mapping):
            return
        self.objects += 1
        self.top.update(dict.fromkeys(str(key) for key in obj))
        self.found.update(path for path in fields if has_path(obj, path))

    def warning(self, fields: Sequence[str] | None) -> str | None:
        missing = [path for path in fields or () if path not in self.found]
        if not self.objects or not missing:
            return None
        seen = ", ".join(sanitize(key, single_line=True) for key in self.top)
        return (f"warning: no object shown has {', '.join(missing)} (--fields); "
                f"top-level fields seen: {seen or 'none'}")


def parse_fields(text: str | None) -> list[str] | None:
    if text is None:
        return None
    fields = [f.strip() for f in text.split(",") if f.strip()]
    for field in fields:
        if not all(part.replace("_", "").isalnum() for part in field.split(".")):
            raise UsageError(f"invalid --fields entry {field!r}: use dotted names like file.filename")
    if not fields:
        raise UsageError("--fields needs at least one field name")
    return fields


def isatty(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def resolve_mode(
    output: str | None, json_flag: bool, quiet: bool, default: str | None, stdout: IO[str]
) -> tuple[str, bool]:
    """The output mode (table/json/jsonl/ids) and whether JSON was asked for explicitly."""
    chosen = [m for m, on in ((output, output is not None), ("json", json_flag),
                              ("ids", quiet)) if on]
    if len(set(chosen)) > 1:
        raise UsageError("conflicting output options: choose one of -o, --json and -q")
    from retab_cli.parsing import choose

    mode = choose((chosen[0] if chosen else None) or default or "auto", MODES, "output mode")
    explicit_json = bool(chosen) and mode in ("json", "jsonl")
    if mode == "auto":
        mode = "table" if isatty(stdout) else "json"
    return mode, explicit_json


def restore_cursor() -> None:
    """Show the cursor again on the real stderr (a live display hides it), before a hard exit."""
    # The real stream: during a live display sys.stderr is rich's buffer.
    real = sys.__stderr__
    if real is not None and isatty(real):
        guarded = StderrGuard(real)
        guarded.write("\x1b[?25h")
        guarded.flush()


def use_color(choice: str, stream: IO[str]) -> bool:
    if choice == "never":
        return False
    if choice == "always":
        return True
    return isatty(stream)


class Renderer:
    """Decides once how a command's output looks, then writes it."""

    def __init__(
        self,
        mode: str = "json",
        *,
        fields: Sequence[str] | None = None,
        color: str = "auto",
        explicit_json: bool = False,
        quiet: bool = False,
        progress: bool = True,
        width: int | None = None,
        now: datetime | None = None,
    ) -> None:
        self.mode = mode
        # Progress, change lines and live views on stderr (--no-progress turns them off;
        # errors and warnings are not progress). Every display checks it with `quiet`.
        self.progress = progress
        self.fields = list(fields) if fields else None
        self.color_choice = color
        self.explicit_json = explicit_json
        self.quiet = quiet or mode == "ids"
        self.width = width
        self._now = now
        self._stream_count = 0
        self._fields_seen = FieldsSeen()
        # Told of every error reported (the session forgets a recent id a 404 names).
        self.error_listeners: list[Callable[[RetabError], None]] = []
        self._csv_writer: CsvWriter | None = None
        self.reported: list[int] = []  # the exit codes of the errors shown so far

    # Streams are looked up at each write (test runners swap sys.stdout; a live display
    # redirects sys.stderr) and guarded: see render/streams.py.
    @property
    def stdout(self) -> IO[str]:
        return StdoutGuard(sys.stdout).as_io()

    @property
    def stderr(self) -> IO[str]:
        return StderrGuard(sys.stderr).as_io()

    @property
    def now(self) -> datetime:
        return self._now or datetime.now(UTC)

    @property
    def stdout_color(self) -> bool:
        return use_color(self.color_choice, self.stdout)

    @property
    def stderr_color(self) -> bool:
        return use_color(self.color_choice, self.stderr)

    @property
    def stderr_tty(self) -> bool:
        return isatty(self.stderr)

    @property
    def stdout_tty(self) -> bool:
        return isatty(self.stdout)

    # ---- stderr --------------------------------------------------------------

    def info(self, text: str) -> None:
        """Hints and summaries: silenced by -q."""
        if not self.quiet:
            self._err(text)

    def progress_line(self, text: str) -> None:
        """A step of work in progress (a watch's status change): silenced by -q and by
        --no-progress."""
        if self.progress:
            self.info(text)

    def warn(self, text: str) -> None:
        self._err(text)

    def notice(self, text: str) -> None:
        """Retry notices and similar: always shown, one line each."""
        self._err(text)

    def _err(self, text: str) -> None:
        # Every stderr line is one line: a server string or a file name holding a line
        # break (or a `::workflow-command::`) cannot start a line of its own.
        self._write_err(sanitize(text, single_line=True) + "\n")

    def _write_err(self, text: str) -> None:
        stream = self.stderr
        stream.write(text)
        stream.flush()

    def warn_unseen_fields(self) -> None:
        """Once, after the output: the --fields paths that no object shown had."""
        warning = self._fields_seen.warning(self.fields)
        if warning:
            self.warn(warning)

    def error(self, error: RetabError) -> None:
        """One line, the request id, a hint; and a JSON object when JSON was asked for."""
        self.reported.append(error.exit_code)
        for listener in self.error_listeners:
            listener(error)
        subject = error.partition_id or error.file
        message = error.message
        if subject and subject not in message:
            message = f"{subject}: {message}"
        line = f"error: {message}"
        if error.request_id:
            line += f" (request_id {error.request_id})"
        self._err(line)
        hint = hint_for(error)
        if hint:
            self._err(f"hint: {hint}")
        self.error_object(error)

    def error_object(self, error: RetabError) -> None:
        """Only the JSON error object, when JSON was asked for explicitly: run outcomes
        have their own text lines already (docs/design.md §2, §12)."""
        if self.explicit_json:
            self._write_err(dumps(error.to_json()) + "\n")

    # ---- stdout --------------------------------------------------------------

    def line(self, text: str) -> None:
        """A line of our own text on stdout (outside values in it already sanitised)."""
        stream = self.stdout
        stream.write(text + "\n")
        stream.flush()

    def id_line(self, ident: object) -> None:
        """An id on stdout (ids mode): server ids are outside text, so one safe line."""
        self.line(sanitize(ident, single_line=True))

    def _narrow(self, obj: Any) -> Any:
        self._fields_seen.add(obj, self.fields)
        return narrow(obj, self.fields)

    def json(self, obj: Any) -> None:
        self.stdout.write(dumps(self._narrow(obj), indent=2) + "\n")
        self.stdout.flush()

    def json_result(self, objs: Sequence[Any], *, single: bool) -> None:
        """One object when one was asked for (one id, one file), else an array."""
        if single and len(objs) == 1:
            self.json(objs[0])
        else:
            self.json_list(objs)

    def result_row(self, obj: Any, ident: str, word: str, note: str) -> None:
        """One result of a bulk command as it arrives: the object (jsonl), the id (ids), or
        a table line; under -o json the command prints the array at the end."""
        if self.mode == "jsonl":
            self.jsonl(obj)
        elif self.mode == "ids":
            self.id_line(ident)
        elif self.mode == "table":
            from retab_cli.render.lists import result_lines

            result_lines(self, [(ident, word, note)])

    def dry_run(self, requests: Sequence[str], would: str) -> None:
        """The requests a dry run did not send, one a line, then what it would have done."""
        for request in requests:
            self.line(sanitize(request, single_line=True))
        self.info(f"dry run: would {would}; nothing sent")

    def objects(self, objs: Sequence[Any], *, single: bool) -> None:
        """Objects as JSON lines under -o jsonl, else as JSON (see `json_result`)."""
        if self.mode == "jsonl":
            for obj in objs:
                self.jsonl(obj)
        else:
            self.json_result(objs, single=single)

    def json_list(self, objs: Iterable[Any]) -> None:
        self.stdout.write(dumps([self._narrow(o) for o in objs], indent=2) + "\n")
        self.stdout.flush()

    def jsonl(self, obj: Any) -> None:
        self.stdout.write(dumps(self._narrow(obj)) + "\n")
        self.stdout.flush()

    def partitions(self, raws: Sequence[dict[str, Any]], *, single: bool,
                   with_output: bool = True) -> None:
        """Show partition objects: one object when one was asked for, else an array."""
        if self.mode == "json":
            self.json_result(raws, single=single)
        elif self.mode == "jsonl":
            for raw in raws:
                self.jsonl(raw)
        elif self.mode == "ids":
            for raw in raws:
                self.id_line(raw.get("id", ""))
        elif self.mode == "csv":
            self._csv().write(raws)
        else:
            from retab_cli.render.detail import partition_views

            for raw in raws:
                self._fields_seen.add(raw, self.fields)
            partition_views(self, raws, with_output=with_output)

    # ---- streamed lists (constant memory) --------------------------------------

    def begin_list(self) -> None:
        self._stream_count = 0
        self._csv_writer = None

    def _csv(self) -> CsvWriter:
        """The one CSV writer of this output (its header written once)."""
        from retab_cli.render.csv_rows import CsvWriter

        if self._csv_writer is None:
            self._csv_writer = CsvWriter(self.stdout, self.fields)
        return self._csv_writer

    @contextlib.contextmanager
    def list_stream(self) -> Iterator[None]:
        """A streamed list (begin_list, list_items...): when it stops early (a page
        failed, a signal), a JSON array already begun is closed before the error
        travels on, so stdout stays one valid document; the exit code says it failed."""
        self.begin_list()
        try:
            yield
        except BaseException:
            if self.mode == "json" and self._stream_count:
                self._stream_count = 0
                # A stdout already gone must not replace the error (or the signal).
                with contextlib.suppress(OSError, RetabError):
                    self.line("\n]")
            raise

    def list_items(self, raws: Sequence[dict[str, Any]]) -> None:
        out = self.stdout
        if self.mode == "json":
            # The "[" waits for the first page, so a failed first request prints nothing.
            for raw in raws:
                sep = "," if self._stream_count else "["
                out.write(f"{sep}\n  " + dumps(self._narrow(raw)))
                self._stream_count += 1
        elif self.mode == "jsonl":
            for raw in raws:
                out.write(dumps(self._narrow(raw)) + "\n")
        elif self.mode == "ids":
            for raw in raws:
                out.write(sanitize(raw.get("id", ""), single_line=True) + "\n")
        elif self.mode == "csv":
            self._csv().write(raws)
        else:
            from retab_cli.render.lists import list_rows

            for raw in raws:
                self._fields_seen.add(raw, self.fields)
            list_rows(self, raws, first=self._stream_count == 0)
            self._stream_count += len(raws)
        out.flush()

    def end_list(self, counts: Mapping[str, int]) -> None:
        if self.mode == "json":
            self.line("\n]" if self._stream_count else "[]")
        elif self.mode == "csv":
            self._csv().write([])  # the header, even for no rows
        elif self.mode == "table":
            from retab_cli.render.lists import list_summary

            list_summary(self, counts)

    # ---- prompts ---------------------------------------------------------------

    def confirm(self, question: str) -> bool:
        """Ask on the terminal (stderr); anything but y/yes is a no."""
        self._write_err(f"{sanitize(question, single_line=True)} [y/N] ")
        try:
            answer = sys.stdin.readline()
        except (OSError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")
