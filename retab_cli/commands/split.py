"""`retab partitions split ID --document FILE --out-dir DIR`: one file per chunk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import complete_ids
from retab_cli.errors import UsageError
from retab_cli.statuses import TERMINAL

if TYPE_CHECKING:
    from retab_cli.session import Env


@command(options=("output", "json", "quiet"))
def split(
    env: Env,
    partition_id: Annotated[str, typer.Argument(
        metavar="ID", help="A completed partition run.", autocompletion=complete_ids)],
    document: Annotated[str, typer.Option(
        metavar="FILE", help="The document the run partitioned (PDF or text).  [required]")] = "",
    out_dir: Annotated[str, typer.Option(
        metavar="DIR", help="Where to write one file per chunk and manifest.json.  [required]")] = "",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace files already in DIR.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Split even if the document is not the one the run saw.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the run to end first.")] = False,
) -> int:
    """Write each chunk of a completed run as its own file, plus manifest.json
    ({partition_id, document, chunks: [{key, pages, file, sha256}]})."""
    from retab_cli.chunks import write_chunks
    from retab_cli.client import validate_id

    validate_id(partition_id)
    source, target = _check_paths(document, out_dir)
    try:
        content = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {document}: {exc.strerror}", file=document) from None

    async def main() -> int:
        async with env.client() as client:
            raw = (await client.get(partition_id)).data
            if wait and str(raw.get("status")) not in TERMINAL:
                from retab_cli.watch_ui import watch_until_terminal

                code = await watch_until_terminal(env, client, [raw], None, single=True)
                if code != errors.OK:
                    return code
                raw = (await client.get(partition_id)).data
        manifest = write_chunks(raw, source, content, target, overwrite=overwrite, force=force)
        _show(env, manifest, target)
        return errors.OK

    return env.run(main)


def _check_paths(document: str, out_dir: str) -> tuple[Path, Path]:
    if not document:
        raise UsageError("--document FILE is required: the document the run partitioned")
    if not out_dir:
        raise UsageError("--out-dir DIR is required")
    source = Path(document)
    if not source.is_file():
        raise UsageError(f"{document} is not a regular file", file=document)
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{out_dir} exists and is not a directory")
    return source, target


def _show(env: Env, manifest: dict[str, Any], target: Path) -> None:
    from retab_cli.chunks import MANIFEST

    renderer = env.renderer
    if renderer.mode in ("json", "jsonl"):
        renderer.json(manifest) if renderer.mode == "json" else renderer.jsonl(manifest)
        return
    for entry in manifest["chunks"]:
        path = str(target / entry["file"])
        if renderer.mode == "ids":
            renderer.line(path)
        else:
            from retab_cli.render import sanitize

            pages = ", ".join(str(p) for p in entry["pages"])
            renderer.line(f"{sanitize(path, single_line=True)}  pages {pages}")
    renderer.info(f"wrote {len(manifest['chunks'])} file(s) and {MANIFEST} to {target}")
