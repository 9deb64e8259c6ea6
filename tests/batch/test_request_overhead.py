"""No request pays for an import search: httpcore asks for the optional `sniffio` at
every connection-pool lock (several times a request); where it is not installed, each
failed import searched sys.path again (about 0.13 ms, 2 ms a batch document)."""

from __future__ import annotations

import subprocess
import sys


def test_an_absent_sniffio_is_looked_for_once_not_per_request() -> None:
    probe = (
        "import importlib.util, sys\n"
        "absent = importlib.util.find_spec('sniffio') is None\n"
        "import retab_cli.client\n"
        "import httpcore._synchronization as s\n"
        "import importlib.machinery as m\n"
        "searches = []\n"
        "real = m.PathFinder.find_spec\n"
        "m.PathFinder.find_spec = classmethod(lambda c, n, *a, **k: searches.append(n) or "
        "real.__func__(c, n, *a, **k))\n"
        "for _ in range(50):\n"
        "    assert s.current_async_library() == 'asyncio'\n"
        "print(absent, sorted(set(searches)))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    absent, searched = result.stdout.split(" ", 1)
    assert searched.strip() == "[]", (absent, searched)
