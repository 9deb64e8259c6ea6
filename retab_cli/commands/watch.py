"""`retab partitions watch ID... | -` (alias `wait`). Filled in with the watch engine."""

from __future__ import annotations

from typing import Any

import typer


def watch(ctx: typer.Context) -> None:
    """Watch runs until they end."""
    raise typer.Exit(1)


async def watch_until_terminal(env: Any, client: Any, finals: list[dict[str, Any]],
                               timeout: float | None, *, single: bool = False) -> int:
    raise NotImplementedError
