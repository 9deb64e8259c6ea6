"""`--shard I/N`: N processes split one document set by a hash of the relative path."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from retab_cli.errors import UsageError


@dataclass(frozen=True)
class Shard:
    index: int   # 1-based, as the user writes it
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, relpath: str) -> bool:
        return shard_of(relpath, self.count) == self.index - 1


WHOLE = Shard(1, 1)


def parse_shard(text: str) -> Shard:
    """`2/3` -> Shard(2, 3); anything else, or I outside 1..N, is a usage error."""
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", text)
    if match:
        index, count = int(match.group(1)), int(match.group(2))
        if 1 <= index <= count:
            return Shard(index, count)
    raise UsageError(f"invalid --shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/3")


def shard_of(relpath: str, count: int) -> int:
    """0-based shard of a path: its sha256's first 8 bytes, big-endian, modulo count."""
    digest = hashlib.sha256(relpath.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count
