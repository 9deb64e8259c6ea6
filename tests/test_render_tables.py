"""Table views (render.detail, lists, progress): rendered at fixed widths, colour off unless said."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from retab_cli.errors import BadResponseError
from retab_cli.render import Renderer, format_number
from retab_cli.render.cells import age, format_credits, page_ranges, status_text
from retab_cli.render.console import make_console
from retab_cli.render.detail import partition_views
from retab_cli.render.lists import list_rows, list_summary, result_lines
from retab_cli.render.progress import UploadProgress

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "render"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def renderer(**kwargs: Any) -> Renderer:
    kwargs.setdefault("width", 80)
    kwargs.setdefault("color", "never")
    return Renderer("table", now=NOW, **kwargs)


def views(capsys: pytest.CaptureFixture[str], raws: list[dict[str, Any]], **kwargs: Any) -> str:
    partition_views(renderer(**kwargs), raws)
    out: str = capsys.readouterr().out
    return out


@pytest.fixture
def on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend stdout is a terminal (ages instead of ISO times)."""
    monkeypatch.setattr(Renderer, "stdout_tty", property(lambda self: True))


def big_partition(chunks: int, pages_per_chunk: int = 2) -> dict[str, Any]:
    raw = load("completed")
    raw["output"] = [
        {"key": f"INV-{i:05d}",
         "pages": list(range(i * pages_per_chunk + 1, (i + 1) * pages_per_chunk + 1))}
        for i in range(chunks)
    ]
    return raw


# ---- small formatters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        ([1, 2, 3, 5], "1-3, 5"),
        ([5, 3, 2, 1, 2, 3], "1-3, 5"),
        ([], "—"),
        ([7], "7"),
        ([1, 3, 5], "1, 3, 5"),
        ([10, 11, 1, 2, 20], "1-2, 10-11, 20"),
    ],
)
def test_page_ranges(pages: list[int], expected: str) -> None:
    assert page_ranges(pages) == expected


@pytest.mark.parametrize(
    ("credits", "expected"),
    [
        (7, "7 credits ($0.07)"),
        (7.0, "7 credits ($0.07)"),
        (1.4, "1.4 credits ($0.014)"),
        (1, "1 credit ($0.01)"),
        (150, "150 credits ($1.50)"),
        (0.1 + 0.2, "0.3 credits ($0.003)"),
    ],
)
def test_format_credits(credits: float, expected: str) -> None:
    assert format_credits(credits) == expected


def test_format_number_drops_trailing_zeros() -> None:
    assert [format_number(v) for v in (3, 3.0, 1.40, 0.25)] == ["3", "3", "1.4", "0.25"]


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2024-05-01T11:59:48Z", "12s ago"),
        ("2024-05-01T11:57:00Z", "3m ago"),
        ("2024-05-01T10:00:00Z", "2h ago"),
        ("2024-04-26T12:00:00Z", "5d ago"),
        ("2022-04-01T12:00:00Z", "2y ago"),
        ("2024-05-01T12:00:30Z", "just now"),
        ("2024-05-01T15:00:00Z", "in 3h"),
    ],
)
def test_age(created: str, expected: str) -> None:
    assert age(NOW, datetime.fromisoformat(created)) == expected


def test_status_text_styles_and_unknown_status() -> None:
    assert status_text("completed").style == "green"
    assert status_text("in_progress").style == "yellow"
    assert status_text("queued").style == "dim"
    assert status_text("failed").style == "red"
    assert status_text("cancelled").style == "magenta"
    unknown = status_text("paused\x1b[31m")
    assert unknown.style == ""
    assert unknown.plain == "paused\\x1b[31m"


def test_make_console_without_colour_is_plain_and_fixed_width() -> None:
    console = make_console(io.StringIO(), color=False, width=None)
    assert console.width == 100
    assert console.color_system is None
    coloured = make_console(io.StringIO(), color=True, width=60)
    assert coloured.width == 60
    assert coloured.color_system in ("standard", "truecolor")


# ---- full partition views --------------------------------------------------------------

COMPLETED_80 = """\
id            prtn_7Hq2mZ0aB3cD4eF5gH6iJ
status        completed
file          invoices-2024-q1.pdf  application/pdf  file_9f86d081884c7d65
model         retab-small
key           invoice number
instructions  Split the document into one chunk per invoice number.
consensus     1 vote, overlap allowed
created       2024-05-01T11:57:00Z
credits       6 credits ($0.06)
pages         6
chunks        3

#  KEY           PAGES  COUNT
─────────────────────────────
1  INV-2024-001  1-3        3
2  INV-2024-002  4-5        2
3  INV-2024-003  6          1

page map
1  1 1 1 2 2 3
cells show the chunk #
"""

QUEUED_80 = """\
id            prtn_Qu3u3dRun000000000001
status        queued
file          contracts.pdf  application/pdf  file_0123456789abcdef
model         retab-small
key           contract id
instructions  Split by contract id.
consensus     1 vote, no overlap
created       3m ago
credits       —

output appears when the run completes
"""


def test_completed_view_exact(capsys: pytest.CaptureFixture[str]) -> None:
    assert views(capsys, [load("completed")]) == COMPLETED_80


def test_queued_view_exact_with_age_on_a_tty(
    capsys: pytest.CaptureFixture[str], on_a_tty: None
) -> None:
    raw = load("queued")
    raw["created_at"] = "2024-05-01T11:57:00Z"
    assert views(capsys, [raw]) == QUEUED_80


def test_several_partitions_are_separated_by_a_blank_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = views(capsys, [load("completed"), load("queued")])
    assert out == COMPLETED_80 + "\n" + QUEUED_80.replace("3m ago", "2024-05-01T11:59:58Z")


def test_consensus_confidence_and_overlapping_pages(capsys: pytest.CaptureFixture[str]) -> None:
    lines = views(capsys, [load("consensus")]).splitlines()
    assert "#  KEY       PAGES  COUNT      CONFIDENCE" in lines
    assert "1  ACC-1001  1-4        4  100% (min 67%)" in lines
    assert "2  ACC-1002  4-6        3  100% (min 67%)" in lines
    assert "3  ACC-1003  8-9        2             67%" in lines
    # Page 4 is in two chunks, page 7 in none.
    assert "1  1 1 1 * 2 2 · 3 3" in lines
    assert "cells show the chunk #, * = page in several chunks, · = page in no chunk" in lines
    assert "instructions  Group pages by bank account number. …" in lines
    assert "created       2024-05-01T10:00:00.123456+00:00" in lines
    assert "consensus     3 votes, overlap allowed" in lines


def test_confidence_column_only_with_likelihoods(capsys: pytest.CaptureFixture[str]) -> None:
    assert "CONFIDENCE" not in views(capsys, [load("completed")])


def test_failed_run_shows_the_error_and_no_chunks(capsys: pytest.CaptureFixture[str]) -> None:
    out = views(capsys, [load("failed")])
    lines = out.splitlines()
    assert lines[1] == "status        failed"
    assert "credits       —" in lines
    assert lines[-2:] == ["error: document_unreadable: the document could not be read",
                          'details: {"page": 1}']
    assert "KEY" not in out
    assert "page map" not in out


def test_failed_run_with_large_details_points_to_json(capsys: pytest.CaptureFixture[str]) -> None:
    raw = load("failed")
    raw["error"]["details"] = {"pages": list(range(500))}
    assert views(capsys, [raw]).splitlines()[-1] == "details: (long; see -o json)"


def test_completed_without_chunks(capsys: pytest.CaptureFixture[str]) -> None:
    raw = load("completed")
    raw["output"] = []
    out = views(capsys, [raw])
    assert out.endswith("\nno chunks: the key was not found in the document\n")
    assert "page map" not in out


def test_completed_fetched_without_output(capsys: pytest.CaptureFixture[str]) -> None:
    raw = load("completed")
    raw["output"] = []
    partition_views(renderer(), [raw], with_output=False)
    out = capsys.readouterr().out
    assert out.endswith("\nchunks not fetched: run without --no-output to see them\n")


def test_in_progress_and_cancelled_notes(capsys: pytest.CaptureFixture[str]) -> None:
    running = {**load("queued"), "status": "in_progress"}
    cancelled = {**load("queued"), "status": "cancelled"}
    out = views(capsys, [running, cancelled])
    assert "output appears when the run completes" in out
    assert "no output: the run was cancelled" in out


def test_unknown_status_and_fields_do_not_crash(capsys: pytest.CaptureFixture[str]) -> None:
    raw = load("completed")
    raw.update(status="archived", priority={"level": 3}, tags=["a", "b"])
    raw["file"]["pages"] = 6
    raw["output"][0]["label"] = "first"
    raw["consensus"] = {"choices": [], "likelihoods": [{"key": None, "pages": []}],
                        "votes": 3}
    raw["usage"]["model_credits"] = {"retab-small": 6}
    lines = views(capsys, [raw]).splitlines()
    assert "status        archived" in lines
    # The chunks still show; the missing likelihoods show as a dash.
    assert any(line.startswith("1  INV-2024-001") and line.endswith("—") for line in lines)
    assert any(line.startswith("3  INV-2024-003") and line.endswith("—") for line in lines)


def test_sparse_partition_with_only_an_id(capsys: pytest.CaptureFixture[str]) -> None:
    lines = views(capsys, [{"id": "prtn_minimal"}]).splitlines()
    assert lines[0] == "id            prtn_minimal"
    assert "file          —" in lines
    assert "created       —" in lines
    assert lines[-1] == "output appears when the run completes"


@pytest.mark.parametrize("raw", [[], "nope", {"status": "completed"}, {"id": "x", "output": 3}])
def test_unusable_objects_raise_bad_response(raw: Any) -> None:
    with pytest.raises(BadResponseError):
        partition_views(renderer(), [raw])


HOSTILE = "[red]x[/red] :smile: \x1b[2J\r\u202eevil\x07"
HOSTILE_SHOWN = "[red]x[/red] :smile: \\x1b[2J\\r\\u202eevil\\x07"


def hostile_partition() -> dict[str, Any]:
    raw = load("failed")
    raw.update(id="prtn_Hostile", key=HOSTILE, instructions=HOSTILE, model=HOSTILE,
               status=HOSTILE)
    raw["file"]["filename"] = HOSTILE
    raw["error"] = {"code": HOSTILE, "message": HOSTILE, "details": {"x": HOSTILE}}
    return raw


@pytest.mark.parametrize("color", ["never", "always"])
def test_hostile_strings_are_shown_escaped_and_literal(
    capsys: pytest.CaptureFixture[str], color: str
) -> None:
    completed = load("completed")
    completed["output"][0]["key"] = HOSTILE
    out = views(capsys, [hostile_partition(), completed], color=color, width=120)
    plain = ANSI.sub("", out)
    # Only our own SGR colour codes may reach the terminal: no server control bytes.
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e]", plain)
    assert plain.count(HOSTILE_SHOWN) >= 6
    assert f"status        {HOSTILE_SHOWN}" in plain.splitlines()
    assert "😄" not in out


def test_hostile_strings_in_lists_and_results(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer(width=200)
    list_rows(r, [hostile_partition()], first=True)
    result_lines(r, [(HOSTILE, HOSTILE, HOSTILE)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert HOSTILE_SHOWN in out


def test_600_pages_show_a_summary_instead_of_cells(capsys: pytest.CaptureFixture[str]) -> None:
    raw = big_partition(3, pages_per_chunk=200)
    raw["output"][1]["pages"].append(1)  # one overlap
    raw["output"][2]["pages"] = [*raw["output"][2]["pages"][:-10], 700]
    lines = views(capsys, [raw]).splitlines()
    assert lines[-1] == ("page map: 700 pages, 3 chunks, 1 overlapping page, "
                         "109 unassigned pages")
    assert "pages         700" in lines
    assert "page map" not in lines


def test_page_map_wraps_at_tens(capsys: pytest.CaptureFixture[str]) -> None:
    raw = big_partition(12, pages_per_chunk=10)
    lines = views(capsys, [raw]).splitlines()
    start = lines.index("page map")
    assert lines[start + 1] == "  1   " + "  ".join(["1"] * 10) + "  " + "  ".join(["2"] * 10)
    assert lines[start + 6].startswith("101  11 11")
    assert all(len(line) <= 80 for line in lines)


def test_5000_chunks_render_as_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    raw = big_partition(5000)
    raw["consensus"] = {"choices": [],
                        "likelihoods": [{"key": 0.5, "pages": [0.5, 0.25]}] * 5000}
    lines = views(capsys, [raw], width=120).splitlines()
    header = lines.index("   #  KEY        PAGES       COUNT     CONFIDENCE")
    assert lines[header + 1] == "   1  INV-00000  1-2             2  50% (min 25%)"
    assert lines[header + 5000] == "5000  INV-04999  9999-10000      2  50% (min 25%)"
    assert lines[-1] == ("page map: 10000 pages, 5000 chunks, 0 overlapping pages, "
                         "0 unassigned pages")
    assert len(lines) == header + 5000 + 3
    assert "─" not in "\n".join(lines)  # not a rich Table


# ---- widths ---------------------------------------------------------------------------


@pytest.mark.parametrize("width", [40, 80, 120])
def test_every_view_fits_the_width(capsys: pytest.CaptureFixture[str], width: int) -> None:
    raws = [load(n) for n in ("completed", "consensus", "failed", "queued")]
    raws.append(big_partition(300))
    raws.append(hostile_partition())
    r = renderer(width=width)
    partition_views(r, raws)
    list_rows(r, raws, first=True)
    out = capsys.readouterr().out
    assert all(len(line) <= width for line in out.splitlines())
    assert "prtn_7Hq2mZ0aB3cD4eF5gH6iJ" in out


# ---- --fields ----------------------------------------------------------------------------


def test_fields_table_for_views(capsys: pytest.CaptureFixture[str]) -> None:
    raws = [load("completed"), load("failed")]
    raws[0]["extra"] = {"nested": [1, 2]}
    out = views(capsys, raws, width=120, fields=["id", "status", "file.filename",
                                                 "usage.credits", "extra", "allow_overlap"])
    assert out == (
        "ID                          STATUS     FILE.FILENAME         USAGE.CREDITS"
        "  EXTRA" + " " * 15 + "ALLOW_OVERLAP\n"
        "prtn_7Hq2mZ0aB3cD4eF5gH6iJ  completed  invoices-2024-q1.pdf  6"
        "              {\"nested\": [1, 2]}  true\n"
        "prtn_F41LedRun000000000001  failed     scan.tiff             -"
        "              -" + " " * 19 + "true\n"
    )


# ---- partitions list ----------------------------------------------------------------------

LIST_HEADER_120 = ("ID                          STATUS       CHUNKS  CREDITS  CREATED"
                   "               FILE")


def test_list_rows_with_and_without_header(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer(width=120)
    list_rows(r, [load("completed"), load("failed")], first=True)
    list_rows(r, [load("queued")], first=False)
    assert capsys.readouterr().out == (
        f"{LIST_HEADER_120}\n"
        "prtn_7Hq2mZ0aB3cD4eF5gH6iJ  completed         3        6  2024-05-01T11:57:00Z"
        "  invoices-2024-q1.pdf\n"
        "prtn_F41LedRun000000000001  failed            -        -  2024-04-26T12:00:00Z"
        "  scan.tiff\n"
        "prtn_Qu3u3dRun000000000001  queued            -        -  2024-05-01T11:59:58Z"
        "  contracts.pdf\n"
    )


def test_an_empty_list_draws_no_header(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer(width=120)
    r.begin_list()
    r.list_items([])
    r.list_items([load("completed")])
    r.end_list({"completed": 1})
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == LIST_HEADER_120
    assert len(captured.out.splitlines()) == 2


def test_list_rows_on_a_terminal_show_ages(
    capsys: pytest.CaptureFixture[str], on_a_tty: None
) -> None:
    raw = load("consensus")
    raw["file"]["filename"] = "bank-statements-2024-first-quarter.pdf"
    list_rows(renderer(width=80), [raw], first=True)
    header, row = capsys.readouterr().out.splitlines()
    assert header == "ID                          STATUS       CHUNKS  CREDITS  CREATED   FILE"
    assert row == "prtn_Kp3vX9wL2mN8qR4tY6uZ1  completed         3       81  1h ago    bank-statem…"


def test_list_rows_drop_columns_when_narrow(capsys: pytest.CaptureFixture[str]) -> None:
    list_rows(renderer(width=40), [load("completed")], first=True)
    assert capsys.readouterr().out.splitlines() == [
        "ID                          STATUS",
        "prtn_7Hq2mZ0aB3cD4eF5gH6iJ  completed",
    ]


def test_list_rows_tolerate_odd_items(capsys: pytest.CaptureFixture[str]) -> None:
    odd = {"id": "prtn_odd", "status": 7, "usage": {"credits": "many"}, "output": None,
           "created_at": "yesterday", "file": None}
    list_rows(renderer(width=120), [odd], first=False)
    assert capsys.readouterr().out.split() == ["prtn_odd", "7", "-", "-", "yesterday", "-"]


def test_list_rows_with_fields(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer(width=80, fields=["id", "status", "model", "file.filename"])
    list_rows(r, [load("completed")], first=True)
    list_rows(r, [load("failed")], first=False)
    assert capsys.readouterr().out.splitlines() == [
        "ID                          STATUS       MODEL        FILE.FILENAME",
        "prtn_7Hq2mZ0aB3cD4eF5gH6iJ  completed    retab-small  invoices-2024-q1.pdf",
        "prtn_F41LedRun000000000001  failed       retab-micro  scan.tiff",
    ]


def test_list_summary(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer()
    list_summary(r, {"failed": 2, "completed": 9, "in_progress": 1, "queued": 0})
    list_summary(r, {"completed": 1})
    list_summary(r, {})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "12 partitions: 9 completed, 2 failed, 1 in_progress",
        "1 partition: 1 completed",
        "no partitions match",
    ]


def test_result_lines_stay_aligned_one_call_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer()
    for row in [("prtn_aaaaaaaaaaaaaaaaaaaaa", "cancelled", "already ended; unchanged"),
                ("prtn_bbbbbbbbbbbbbbbbbbbbb", "in_progress", "cancel requested")]:
        result_lines(r, [row])
    first, second = capsys.readouterr().out.splitlines()
    assert first.index("already") == second.index("cancel requested")


def test_result_lines(capsys: pytest.CaptureFixture[str]) -> None:
    result_lines(renderer(), [
        ("prtn_x", "cancelled", ""),
        ("prtn_yyyy", "completed", "already terminal, unchanged"),
        ("prtn_z", "deleted", ""),
    ])
    assert capsys.readouterr().out == (
        "prtn_x     cancelled\n"
        "prtn_yyyy  completed    already terminal, unchanged\n"
        "prtn_z     deleted\n"
    )


# ---- colour -------------------------------------------------------------------------------


def test_colour_on_marks_status_words(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer(color="always", width=120)
    partition_views(r, [load("completed"), load("failed")])
    list_rows(r, [load("queued"), load("consensus")], first=True)
    result_lines(r, [("prtn_x", "cancelled", "")])
    list_summary(r, {"in_progress": 1})
    captured = capsys.readouterr()
    assert "\x1b[32mcompleted\x1b[0m" in captured.out
    assert "\x1b[31mfailed\x1b[0m" in captured.out
    assert "\x1b[2mqueued\x1b[0m" in captured.out
    assert "\x1b[35mcancelled\x1b[0m" in captured.out
    assert "\x1b[31merror: document_unreadable" in captured.out
    assert "\x1b[33min_progress\x1b[0m" in captured.err
    # Chunk cells of the page map carry their chunk's colour.
    assert "\x1b[37;44m1\x1b[0m" in captured.out
    assert ANSI.sub("", captured.out).count("completed") == 2


def test_colour_off_writes_no_escape_codes(capsys: pytest.CaptureFixture[str]) -> None:
    r = renderer(color="never", width=120)
    partition_views(r, [load(n) for n in ("completed", "consensus", "failed", "queued")])
    list_rows(r, [load("completed")], first=True)
    result_lines(r, [("prtn_x", "cancelled", "")])
    list_summary(r, {"completed": 1})
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err


def test_colour_off_even_when_the_environment_forces_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    partition_views(renderer(color="never"), [load("completed")])
    assert "\x1b" not in capsys.readouterr().out


# ---- upload progress ------------------------------------------------------------------------


def test_upload_progress_is_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with UploadProgress(renderer(color="always"), total=3) as progress:
        for name in ("a.pdf", "b.pdf", "c.pdf"):
            progress.advance(name)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_upload_progress_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Renderer, "stderr_tty", property(lambda self: True))
    with UploadProgress(renderer(color="always"), total=2) as progress:
        progress.advance("[bold]a.pdf\x1b[2J")
        progress.advance("b.pdf")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "\x1b[2J" not in captured.err


def test_upload_progress_respects_quiet(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Renderer, "stderr_tty", property(lambda self: True))
    with UploadProgress(renderer(quiet=True), total=1) as progress:
        progress.advance("a.pdf")
    assert capsys.readouterr().err == ""


def test_renderer_reaches_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """The Renderer's lazy import calls these functions with their expected signatures."""
    r = renderer(width=120)
    r.partitions([load("completed")], single=True)
    r.begin_list()
    r.list_items([load("completed")])
    r.list_items([load("failed")])
    r.end_list({"completed": 1, "failed": 1})
    captured = capsys.readouterr()
    assert captured.out.count("ID  ") == 1
    assert captured.err == "2 partitions: 1 completed, 1 failed\n"
