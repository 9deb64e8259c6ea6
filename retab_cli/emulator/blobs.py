"""Uploaded bytes on disk, beside the database (`<db>-files/`; a temporary directory
for `:memory:`), never whole in memory.

- `parts/<file id>.<token>`: a PUT in progress, written as it arrives (hashed on
  the way); removed if the PUT fails or goes over the limit;
- `blobs/<sha256>`: the bytes of a PUT that arrived whole, named by their digest, so
  a later PUT to the same session or a complete never moves bytes another request
  is reading. Files with identical bytes share one blob.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FLUSH_BYTES = 1024 * 1024  # written (and hashed) in a worker thread this much at a time


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is over {limit} bytes, the emulator's --max-upload")
        self.limit = limit


@dataclass(frozen=True)
class Received:
    size: int
    sha256: str


class Blobs:
    """The directory is made on first use: an emulator that never sees an upload
    leaves nothing behind, even when killed."""

    def __init__(self, db: str) -> None:
        self._temporary = db == ":memory:"
        path = Path(db).expanduser()
        self._beside_db = None if self._temporary else path.with_name(path.name + "-files")
        self._root: Path | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        with self._lock:
            if self._root is None:
                if self._beside_db is None:
                    self._root = Path(tempfile.mkdtemp(prefix="retab-emulator-files-"))
                else:
                    self._root = self._beside_db
                    shutil.rmtree(self._root / "parts", ignore_errors=True)  # a crash's leftovers
                self._make_dirs(self._root)
            return self._root

    @staticmethod
    def _make_dirs(root: Path) -> None:
        for directory in (root, root / "parts", root / "blobs"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    async def receive(self, file_id: str, chunks: AsyncIterator[bytes], limit: int) -> Received:
        """Stream a PUT's body to its blob; UploadTooLarge past `limit` bytes."""
        part = self.root / "parts" / f"{file_id}.{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        with part.open("xb") as out:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLarge(limit)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= FLUSH_BYTES:
                        await asyncio.to_thread(_write, out, digest, pending)
                        pending, pending_size = [], 0
                await asyncio.to_thread(_write, out, digest, pending)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        received = Received(size=size, sha256=digest.hexdigest())
        os.replace(part, self.blob_path(received.sha256))  # the same bytes, if it exists
        return received

    def discard(self, digests: list[str]) -> None:
        for sha256 in digests:
            self.blob_path(sha256).unlink(missing_ok=True)

    def reset(self) -> None:
        if self._root is None:
            return
        for name in ("parts", "blobs"):
            shutil.rmtree(self._root / name, ignore_errors=True)
        self._make_dirs(self._root)

    def close(self) -> None:
        if self._temporary and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


def _write(out: IO[bytes], digest: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)
        digest.update(chunk)
