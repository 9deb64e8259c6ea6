"""`--split-to DIR`: a completed run's chunks under `DIR/<relative path>/`, all or nothing.

The files and manifest are written by `retab_cli.chunks` exactly as `partitions split`
writes them, into a hidden directory beside the target, which then takes the target's
place with a rename: a process killed at any instant leaves either the old output or
the new one, never half of it (leftovers of a killed run are cleared the next time).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from retab_cli.batch.hashing import LocalError
from retab_cli.chunks import MANIFEST, write_chunks
from retab_cli.errors import RetabError

SPLIT_FAILED = "split_failed"


def target_dir(root: Path, relpath: str) -> Path:
    """Where a document's chunks go; relative paths from the walk never leave `root`."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"not a relative path inside the output directory: {relpath!r}")
    return root.joinpath(*parts)


def is_split(split_dir: str | None, target: Path) -> bool:
    """The journal says this document was split into `target`, and its manifest is there."""
    return split_dir is not None and Path(split_dir) == target and (target / MANIFEST).is_file()


def split_document(raw: dict[str, Any], source: Path, sha256: str, target: Path,
                   relpath: str) -> str | LocalError:
    """Write the chunks of `source` (the bytes `sha256` names) for its completed run `raw`;
    the manifest's sha256, or why it could not be done."""
    try:
        content = source.read_bytes()
    except OSError as exc:
        return LocalError(SPLIT_FAILED, f"cannot read {relpath} to split it: "
                                        f"{exc.strerror or exc}")
    if hashlib.sha256(content).hexdigest() != sha256:
        return LocalError(SPLIT_FAILED, f"{relpath} changed after it was sent; run the batch "
                                        "again to send the new version")
    partial = _sibling(target, "partial")
    _clear(target)
    try:
        write_chunks(raw, source, content, partial, overwrite=False, force=False)
    except RetabError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return LocalError(SPLIT_FAILED, f"cannot split {relpath}: {exc.message}")
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return LocalError(SPLIT_FAILED, f"cannot write the chunks of {relpath}: "
                                        f"{exc.strerror or exc}")
    return _swap_in(partial, target)


def _swap_in(partial: Path, target: Path) -> str:
    digest = hashlib.sha256((partial / MANIFEST).read_bytes()).hexdigest()
    old = _sibling(target, "old")
    if target.exists():
        os.replace(target, old)
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)
    return digest


def _sibling(target: Path, what: str) -> Path:
    return target.with_name(f".{target.name}.{what}")


def _clear(target: Path) -> None:
    """Leftovers of a run killed mid-split; a lost target comes back from `.old`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = _sibling(target, "old")
    if old.exists() and not target.exists():
        os.replace(old, target)
    for what in ("partial", "old"):
        shutil.rmtree(_sibling(target, what), ignore_errors=True)
