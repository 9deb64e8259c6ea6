"""`auth status` and `auth list` as lines: plain aligned text, no rich (docs/design.md §8).

Names, URLs and problems come from a config file anyone may edit or from a server, so
every cell is sanitised to one line before it is aligned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from retab_cli.text import sanitize

if TYPE_CHECKING:
    from retab_cli.render import Renderer
    from retab_cli.settings import ProfileList


def show_status(renderer: Renderer, info: Mapping[str, Any], key: str) -> None:
    """The status object in the chosen mode; `key` is the described (masked) key."""
    if renderer.mode == "json":
        renderer.json(info)
        return
    if renderer.mode == "jsonl":
        renderer.jsonl(info)
        return
    rows = [
        ("profile", f"{info['profile']}  (from {info['profile_source']})"),
        ("base url", f"{info['base_url']}  (from {info['base_url_source']})"),
        ("api key", key),
        ("config", info["config_file"]),
        ("key works", "yes" if info["key_works"] else f"no: {info['problem']}"),
    ]
    for name, value in rows:
        renderer.line(f"{name:<10} {one_line(value)}")


def show_profiles(renderer: Renderer, profiles: ProfileList) -> None:
    """The profiles as JSON, or a table whose first column marks the active one."""
    if renderer.mode in ("json", "jsonl"):
        renderer.json(profiles.as_json())
        return
    rows = [[" ", "NAME", "BASE URL", "API KEY"]]
    rows += [["*" if p.active else " ", p.name, p.base_url, p.key] for p in profiles.profiles]
    for line in aligned([[one_line(cell) for cell in row] for row in rows]):
        renderer.line(line)
    renderer.info(f"active: {one_line(profiles.active)} (from {profiles.active_source})")


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def one_line(value: object) -> str:
    return sanitize(value, single_line=True)
