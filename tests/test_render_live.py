"""The live watch table (render/live.py), rendered with fake clocks: no terminal, no sleeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retab_cli.render import Renderer
from retab_cli.render.live import LiveView

WALL = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
NOW = 1000.0  # the monotonic clock at WALL


@dataclass
class Run:
    id: str
    status: str | None
    raw: dict[str, Any] | None
    started: float = NOW
    ended: float | None = None


def raw(run_id: str, status: str, *, ago: float = 0.0, **extra: Any) -> dict[str, Any]:
    created = (WALL - timedelta(seconds=ago)).isoformat().replace("+00:00", "Z")
    return {"id": run_id, "status": status, "created_at": created,
            "file": {"filename": f"{run_id}.pdf"}, **extra}


def screen(runs: list[Run], capsys: pytest.CaptureFixture[str],
           ended: tuple[str, ...] = ()) -> list[list[str]]:
    view = LiveView(Renderer("table", width=120), runs, clock=lambda: NOW, wall=lambda: WALL)
    for run_id in ended:
        view.ended(run_id)
    view._console.print(view._render())
    return [line.split() for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_one_run_is_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    lines = screen([Run("prtn_a", "queued", raw("prtn_a", "queued"))], capsys)
    assert lines[-1] == ["1", "run:", "1", "queued"]


def test_elapsed_counts_from_created_at_never_negative(capsys: pytest.CaptureFixture[str]) -> None:
    runs = [
        # created 90 s before the watch started; the watch saw it only now
        Run("prtn_old", "in_progress", raw("prtn_old", "in_progress", ago=90)),
        # the server's clock ahead of ours: created "in the future"
        Run("prtn_ahead", "queued", raw("prtn_ahead", "queued", ago=-30)),
        # ended 10 s ago, 40 s after it was created
        Run("prtn_done", "cancelled", raw("prtn_done", "cancelled", ago=50), ended=NOW - 10),
        # no created_at: since the watch first saw it
        Run("prtn_bare", "queued", {"id": "prtn_bare", "status": "queued"}, started=NOW - 5),
    ]
    rows = {line[0]: line for line in screen(runs, capsys) if line[0].startswith("prtn_")}
    assert rows["prtn_old"][3] == "1m30s"
    assert rows["prtn_ahead"][3] == "0s"
    assert rows["prtn_done"][3] == "40s"
    assert rows["prtn_bare"][2] == "5s"  # no file column text for it


def test_ended_run_shows_an_ellipsis_for_chunks_until_its_full_object(
        capsys: pytest.CaptureFixture[str]) -> None:
    status_only = Run("prtn_a", "completed", raw("prtn_a", "completed"), ended=NOW)
    full = Run("prtn_b", "completed", raw("prtn_b", "completed", output=[{}, {}, {}]), ended=NOW)
    rows = {line[0]: line for line in screen([status_only, full], capsys)
            if line[0].startswith("prtn_")}
    assert rows["prtn_a"][4] == "…"
    assert rows["prtn_b"][4] == "3"


def test_rows_keep_their_order_as_statuses_change(capsys: pytest.CaptureFixture[str]) -> None:
    runs = [Run("prtn_1", "queued", raw("prtn_1", "queued")),
            Run("prtn_2", "in_progress", raw("prtn_2", "in_progress")),
            Run("prtn_3", "completed", raw("prtn_3", "completed", output=[]), ended=NOW),
            Run("prtn_4", "pending", raw("prtn_4", "pending"))]
    order = [line[0] for line in screen(runs, capsys, ended=("prtn_3",))
             if line[0].startswith("prtn_")]
    assert order == ["prtn_1", "prtn_2", "prtn_3", "prtn_4"]


@pytest.mark.parametrize(("progress", "live"), [(True, True), (False, False)])
def test_no_progress_means_no_live_view(monkeypatch: pytest.MonkeyPatch, progress: bool,
                                        live: bool) -> None:
    from types import SimpleNamespace

    from retab_cli import watch_ui

    renderer = Renderer("table", width=120)
    renderer.progress = progress
    monkeypatch.setattr(Renderer, "stderr_tty", property(lambda self: True))
    opened = watch_ui._open_view(SimpleNamespace(renderer=renderer),  # type: ignore[arg-type]
                                 SimpleNamespace(runs=[]))  # type: ignore[arg-type]
    assert (opened is not None) == live
    if opened is not None:
        opened.__exit__(None, None, None)
