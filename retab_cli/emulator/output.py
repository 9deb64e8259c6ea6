"""The emulator's own output: plain lines on stdout and stderr.

The emulator must not import rich or the tool's render module (it ships as an
optional extra and starts in a fresh process), so it writes through these two
helpers and nothing else.
"""

from __future__ import annotations

import sys


def out(line: str) -> None:
    """Write one line of data to stdout and flush it (tests read it through a pipe)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def err(line: str) -> None:
    """Write one line of diagnostics to stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
