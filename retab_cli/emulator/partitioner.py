"""The deterministic partitioner: pages of text grouped by the value after a key phrase.

Rules (docs/design.md §6), with the choices this module makes where the design is silent:
- Text per page: PDFs through pypdf, plain text split on form feeds (a trailing form
  feed does not open an empty page); images are one page with no text.
- The key phrase matches case-insensitively with flexible whitespace, as whole
  words. When the key's last word is "number" (or no/nr/num/#), "No.", "Nr.", "#" and
  "Number" all match it, so key `invoice number` finds `Invoice No. 7`. After the
  phrase come an optional `number`/`No.`/`Nr.` word and an optional `:` or `#`, then
  the value (on the same line, unless after a `:` or `#`): the next token of
  `[A-Za-z0-9_./-]+`, with trailing `.`, `/`, `-` trimmed (so a value ending a
  sentence still matches itself later).
- A page without a value belongs to the chunk running when it starts; a value on a
  page starts (or resumes) its chunk from that page, and the page then belongs to
  that value's chunk, not to the one running before; leading pages without a value
  join the first chunk. With `allow_overlap` a page holding several values belongs to
  each of them; without it the first value on the page takes the page, and the last
  value on the page runs on from the next page. Chunks left with no page are dropped.
- Output order is the order of first appearance; pages are ascending and 1-based.
"""

from __future__ import annotations

import codecs
import io
import logging
import random
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from retab_cli.emulator.documents import DocumentFailure, sniff

Chunk = dict[str, Any]

TEXT_MIMES = ("application/json", "application/xml", "application/csv")
_BINARY = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f"  # control characters text never holds
_READ_SIZE = 1024 * 1024
_EOF_WINDOW = 64 * 1024
_NUMBER_WORDS = {"number", "no", "no.", "nr", "nr.", "num", "num.", "#"}
_NUMBER_ALTERNATIVES = r"(?:(?:number|num|nr|no)(?:\.|(?![A-Za-z0-9]))|\#)"
# The value stays on the phrase's line unless a `:` or `#` leads to the next one,
# so a heading "INVOICE" on its own line does not take the next line's first word.
_SEPARATOR = r"[ \t]*(?:(?:number|nr\.|no\.)[ \t]*)?(?:[:#]\s*){0,2}"
_VALUE = r"([A-Za-z0-9_./-]+)"

# pypdf reports recoverable damage through logging; the run's outcome says enough.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def page_texts(data: bytes, mime_type: str) -> list[str]:
    """The text of each page; raises DocumentFailure when there is nothing to read."""
    return read_pages(io.BytesIO(data), mime_type)


def read_pages(stream: BinaryIO, mime_type: str) -> list[str]:
    """`page_texts` from a file (a stored upload is never read whole into memory)."""
    kind = _kind(stream, mime_type)
    if kind == "pdf":
        return _pdf_texts(stream)
    if kind == "image":
        return [""]
    return list(_text_pages(stream))


def page_count(stream: BinaryIO, mime_type: str) -> int | None:
    """The number of pages, read as the partitioner reads them; None when unreadable."""
    try:
        kind = _kind(stream, mime_type)
        if kind == "pdf":
            return len(_pdf_reader(stream).pages)
        if kind == "image":
            return 1
        return sum(1 for _ in _text_pages(stream))
    except DocumentFailure:
        return None


def _kind(stream: BinaryIO, mime_type: str) -> str:
    """`pdf`, `image` or `text`, from the bytes first and the declared type next."""
    head = stream.read(16)
    stream.seek(0)
    if not head:
        raise DocumentFailure("empty_document", "the document is empty")
    sniffed = sniff(head)
    if sniffed is not None:
        return "pdf" if sniffed == "application/pdf" else "image"
    if mime_type == "application/pdf" or mime_type.startswith("image/"):
        raise DocumentFailure(
            "unreadable_document", f"the document is declared {mime_type} but its bytes are not"
        )
    if _is_text_type(mime_type) or not mime_type or mime_type == "application/octet-stream":
        return "text"
    raise DocumentFailure("unsupported_document", f"documents of type {mime_type} are not supported")


def _is_text_type(mime_type: str) -> bool:
    return mime_type.startswith("text/") or mime_type in TEXT_MIMES


def _text_pages(stream: BinaryIO) -> Iterator[str]:
    """Pages split on form feeds, decoded a piece at a time; a trailing form feed does
    not open an empty page."""
    current: list[str] = []
    pages = 0
    for piece in _decoded(stream):
        *done, rest = piece.split("\f")
        for part in done:
            current.append(part)
            pages += 1
            yield "".join(current)
            current = []
        current.append(rest)
    last = "".join(current)
    if pages == 0 or last.strip():
        yield last


def _decoded(stream: BinaryIO) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := stream.read(_READ_SIZE):
            text = decoder.decode(chunk)
            if any(ch in text for ch in _BINARY):
                raise DocumentFailure("unreadable_document", "the document looks binary, not text")
            yield text
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DocumentFailure(
            "unreadable_document", "the document is neither a PDF, an image nor UTF-8 text"
        ) from None


def _ends_like_a_pdf(stream: BinaryIO) -> bool:
    """A `%%EOF` marker in the last 64 KiB, where every readable PDF has one."""
    size = stream.seek(0, io.SEEK_END)
    stream.seek(max(0, size - _EOF_WINDOW))
    tail = stream.read()
    stream.seek(0)
    return b"%%EOF" in tail


def _pdf_texts(stream: BinaryIO) -> list[str]:
    reader = _pdf_reader(stream)
    try:
        return [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types on damaged files
        raise DocumentFailure("unreadable_document", f"the PDF could not be read: {exc}") from None


def _pdf_reader(stream: BinaryIO) -> Any:
    import pypdf

    if not _ends_like_a_pdf(stream):
        # pypdf would look for the marker line by line back to the first byte, with
        # the whole "line" in memory: minutes and a GiB for a big damaged upload.
        raise DocumentFailure("unreadable_document", "the PDF could not be read: no %%EOF marker at its end")
    try:
        reader = pypdf.PdfReader(stream)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentFailure("encrypted_document", "the PDF is encrypted")
        if not reader.pages:
            raise DocumentFailure("unreadable_document", "the PDF has no pages")
    except DocumentFailure:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise DocumentFailure("unreadable_document", f"the PDF could not be read: {exc}") from None
    return reader


def key_pattern(key: str) -> re.Pattern[str] | None:
    """The regular expression finding values of `key`; None for a blank key."""
    words = key.split()
    if not words:
        return None
    parts = [re.escape(word) for word in words]
    if len(words) > 1 and words[-1].lower() in _NUMBER_WORDS:
        parts[-1] = _NUMBER_ALTERNATIVES
    phrase = r"\s+".join(parts)
    start = r"(?<![A-Za-z0-9])" if words[0][0].isalnum() else ""
    whole_word = words[-1][-1].isalnum() and parts[-1] != _NUMBER_ALTERNATIVES
    end = r"(?![A-Za-z0-9])" if whole_word else ""
    return re.compile(start + phrase + end + _SEPARATOR + _VALUE, re.IGNORECASE)


def find_values(pattern: re.Pattern[str], text: str) -> list[str]:
    """Distinct values on one page, in reading order."""
    values: list[str] = []
    for match in pattern.finditer(text):
        value = match.group(1).rstrip("./-")
        if value and value not in values:
            values.append(value)
    return values


def partition(pages: list[str], key: str, allow_overlap: bool) -> list[Chunk]:
    pattern = key_pattern(key)
    if pattern is None:
        return []
    chunks: dict[str, list[int]] = {}
    leading: list[int] = []
    running: str | None = None
    for number, text in enumerate(pages, start=1):
        values = find_values(pattern, text)
        if not values:
            (chunks[running] if running is not None else leading).append(number)
            continue
        for value in values:
            chunks.setdefault(value, [])
        for value in values if allow_overlap else values[:1]:
            chunks[value].append(number)
        running = values[-1]
    if not chunks:
        return []
    first = next(iter(chunks))
    chunks[first] = leading + chunks[first]
    return [{"key": value, "pages": pages_} for value, pages_ in chunks.items() if pages_]


def consensus(output: list[Chunk], n_consensus: int, seed: str) -> dict[str, Any] | None:
    """Votes and likelihoods for n_consensus > 1; a minority of votes is perturbed."""
    if n_consensus <= 1:
        return None
    rng = random.Random(seed)
    votes = [_copy(output) for _ in range(n_consensus)]
    # Fewer than half the votes dissent (at least one from three votes up), so the
    # majority still agrees with the output while the likelihoods show some doubt.
    most = max(1, (n_consensus - 1) // 2)
    least = 1 if n_consensus >= 3 else 0
    dissenting = rng.sample(range(1, n_consensus), rng.randint(least, most))
    for index in dissenting:
        votes[index] = _perturb(output, rng)
    return {"choices": votes, "likelihoods": [_likelihood(chunk, votes) for chunk in output]}


def _copy(output: list[Chunk]) -> list[Chunk]:
    return [{"key": chunk["key"], "pages": list(chunk["pages"])} for chunk in output]


def _perturb(output: list[Chunk], rng: random.Random) -> list[Chunk]:
    vote = _copy(output)
    boundaries = [
        i
        for i in range(len(vote) - 1)
        if len(vote[i + 1]["pages"]) > 1 and vote[i]["pages"][-1] + 1 == vote[i + 1]["pages"][0]
    ]
    if boundaries:
        # Move the first page of the next chunk back into this one.
        i = rng.choice(boundaries)
        vote[i]["pages"].append(vote[i + 1]["pages"].pop(0))
        return vote
    renamable = [chunk for chunk in vote if chunk["key"].lower() != chunk["key"]]
    if renamable:
        chunk = rng.choice(renamable)
        chunk["key"] = chunk["key"].lower()
    return vote


def _likelihood(chunk: Chunk, votes: list[list[Chunk]]) -> dict[str, Any]:
    matching = [next((c for c in vote if c["key"] == chunk["key"]), None) for vote in votes]
    agreeing = [c for c in matching if c is not None]
    total = len(votes)
    return {
        "key": round(len(agreeing) / total, 4),
        "pages": [
            round(sum(1 for c in agreeing if page in c["pages"]) / total, 4) for page in chunk["pages"]
        ],
    }


TIER_MULTIPLIERS = {"retab-micro": 0.2, "retab-small": 1.0, "retab-large": 3.0}


def credits(pages: int, n_consensus: int, model: str) -> float:
    # Rounded so 7 x 0.2 reads 1.4, not 1.4000000000000001.
    return round(pages * n_consensus * TIER_MULTIPLIERS[model], 6)
