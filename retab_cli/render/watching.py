"""What a watch shows without a live display: one line per change, the summary, CI output.

No rich here: a watch piped to a log or run in CI never loads it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from retab_cli.parsing import format_duration
from retab_cli.render import Renderer, format_number, pick, sanitize
from retab_cli.statuses import ACTIVE_ORDER, KNOWN_STATUSES

# Ended runs first, then the active ones furthest along first.
ORDER = (*KNOWN_STATUSES[len(ACTIVE_ORDER):], *ACTIVE_ORDER[::-1])
_FINAL_WORDS = {
    "gone": "no longer exists (404)",
    "not_found": "not found (404)",
    "gave_up": "gave up",
    "timeout": "still running at --timeout",
    "stopped": "not waited for (--fail-fast)",
    "stopped_by_error": "not waited for (the watch stopped on an error)",
}


def clock(wall: datetime) -> str:
    return wall.strftime("%H:%M:%SZ")


def filename_of(raw: Mapping[str, Any] | None) -> str:
    name = pick(raw, "file.filename") if raw else None
    return sanitize(name, single_line=True) if isinstance(name, str) else ""


def change_line(wall: datetime, run_id: str, old: str | None, new: str | None,
                raw: Mapping[str, Any] | None, elapsed: float) -> str:
    """`12:00:03Z prtn_... queued→in_progress invoices.pdf (12s)`."""
    arrow = f"{sanitize(old or '', single_line=True)}→" if old else ""
    status = sanitize(new or "?", single_line=True)
    name = filename_of(raw)
    parts = [clock(wall), run_id, f"{arrow}{status}"]
    if name:
        parts.append(name)
    parts.append(f"({format_duration(elapsed)})")
    return " ".join(parts)


def end_note(kind: str, error: str | None) -> str:
    word = _FINAL_WORDS.get(kind, kind)
    return f"{word}: {sanitize(error, single_line=True)}" if error else word


def chunk_count(raw: Mapping[str, Any] | None) -> int | None:
    output = raw.get("output") if raw else None
    return len(output) if isinstance(output, list) else None


def credits_of(raw: Mapping[str, Any] | None) -> float | None:
    value = pick(raw, "usage.credits") if raw else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summary_line(statuses: Sequence[str], credits: float, elapsed: float) -> str:
    """`3 runs: 2 completed, 1 failed · 14 credits · 32s`."""
    counts = Counter(statuses)
    known = [s for s in ORDER if counts[s]]
    others = sorted(s for s in counts if s not in ORDER)
    parts = ", ".join(f"{counts[s]} {sanitize(s, single_line=True)}" for s in known + others)
    noun = "run" if len(statuses) == 1 else "runs"
    return (f"{len(statuses)} {noun}: {parts} · {format_number(credits)} credits · "
            f"{format_duration(elapsed)}")


# ---- GitHub Actions ---------------------------------------------------------------------


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def escape_command(text: str) -> str:
    """Workflow command data: %, CR and LF must be escaped or the command is cut."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_command(text).replace(":", "%3A").replace(",", "%2C")


def escape_cell(text: str) -> str:
    """A Markdown table cell: no pipes, backticks or line breaks from the server."""
    flat = " ".join(sanitize(text, single_line=True).split())
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def error_annotation(run_id: str, raw: Mapping[str, Any] | None, note: str, *,
                     level: str = "error") -> str:
    name = filename_of(raw)
    title = escape_property(f"partition run {note}")
    where = f"{run_id} ({name})" if name else run_id
    code = pick(raw, "error.code") if raw else None
    message = pick(raw, "error.message") if raw else None
    detail = ": ".join(str(x) for x in (code, message) if isinstance(x, str) and x)
    text = f"{where} {note}" + (f": {detail}" if detail else "")
    return f"::{level} title={title}::{escape_command(text)}"


def step_summary(rows: Sequence[Mapping[str, Any]], line: str) -> str:
    """The Markdown appended to $GITHUB_STEP_SUMMARY."""
    out = [f"### retab: {escape_cell(line)}", "",
           "| run | file | status | chunks | credits | elapsed |",
           "|---|---|---|---|---|---|"]
    for row in rows:
        out.append("| `{}` | {} | {} | {} | {} | {} |".format(
            escape_cell(row["id"]), escape_cell(row["file"]), escape_cell(row["status"]),
            row["chunks"] if row["chunks"] is not None else "–",
            format_number(row["credits"]) if row["credits"] is not None else "–",
            format_duration(row["elapsed"])))
    return "\n".join(out) + "\n\n"


def write_step_summary(renderer: Renderer, markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    except OSError as exc:
        renderer.warn(f"warning: cannot write the GitHub step summary: {exc.strerror}")
