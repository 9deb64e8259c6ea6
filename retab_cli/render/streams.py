"""stdout and stderr when their readers go away (docs/exit-codes.md, "Closed pipes").

- stderr never decides an exit code: a write it cannot take (EPIPE, a closed stream,
  a full disk) points its descriptor at /dev/null and is dropped, with every later
  one (`StderrGuard`).
- stdout carries the data: EPIPE stays a `BrokenPipeError` for the boundary
  (`Env.run`) to turn into a quiet 0 for a read-only command, or a report and 1 for a
  mutating one; any other write failure (a full disk) is one error line
  (`StdoutGuard`).
- A stream closed before the process started (`>&-`, `2>&-`) is None in `sys`:
  `stand_in_closed_streams` puts /dev/null on its descriptor (so no file or socket
  opened later lands on fd 1 or 2) and a stand-in that fails as a closed pipe would.

No rich here: the JSON path uses these too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import IO, Any, cast

from retab_cli.errors import UsageError


class ClosedStream:
    """Stands in for a stream closed before start: every write is a broken pipe."""

    closed = False
    encoding = "utf-8"
    errors = "strict"

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "the stream was closed before the command started")

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd  # /dev/null, put there by stand_in_closed_streams


def stand_in_closed_streams() -> None:
    """At start-up: give a closed fd 1 or 2 /dev/null and its `sys` stream a stand-in."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            _point_at_devnull(fd)
            setattr(sys, name, ClosedStream(fd))


def _point_at_devnull(fd: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:  # the lowest free descriptor: fd itself when it was closed
        os.dup2(devnull, fd)
        os.close(devnull)


def silence(stream: Any) -> None:
    """Point a stream's descriptor at /dev/null, so its pending bytes and the
    interpreter's last flush go nowhere instead of failing again."""
    # No descriptor (a test runner's buffer): nothing will flush to it.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        _point_at_devnull(stream.fileno())


def flush_quietly(stream: Any) -> None:
    """Flush before a hard exit; a reader gone by now changes nothing."""
    StderrGuard(stream).flush()


class _Guard:
    """A stream's attributes, with write and flush wrapped by the subclass."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        if name == "rich_proxied_file":
            # rich unwraps its own proxies (a live display's); the guard stays on.
            return type(self)(getattr(self._stream, name))
        return getattr(self._stream, name)

    def as_io(self) -> IO[str]:
        return cast(IO[str], self)


class StderrGuard(_Guard):
    """stderr that cannot fail a command: a lost write is dropped, and so is the rest."""

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except (OSError, ValueError):
            silence(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            silence(self._stream)


class StdoutGuard(_Guard):
    """stdout: EPIPE stays a BrokenPipeError; any other failure is one usage-type error
    (as a config file that cannot be written is), with the stream silenced."""

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> UsageError:
        silence(self._stream)
        return UsageError(f"cannot write to stdout: {exc.strerror or exc}", hint=None)


def escape_unencodable() -> None:
    """At start-up: a character stdout's or stderr's encoding cannot hold (a server's `é`
    under an ASCII or Latin-1 locale) is written as a backslash escape, not a traceback."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(errors="backslashreplace")
