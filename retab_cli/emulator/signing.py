"""Signed storage URLs, as a cloud bucket hands them out: no API key needed, an HMAC
over the method, the file id and the expiry, with a secret made fresh per process
(so URLs signed before a restart stop working, as short-lived URLs may)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlencode

_EXPIRES = re.compile(r"[0-9]{1,20}")  # epoch microseconds; ASCII digits only


class UrlSigner:
    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def sign(self, method: str, file_id: str, expires_us: int) -> str:
        message = f"{method}\n{file_id}\n{expires_us}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, method: str, file_id: str, expires_us: int) -> str:
        return urlencode({"expires": expires_us, "signature": self.sign(method, file_id, expires_us)})

    def problem(
        self, method: str, file_id: str, expires: str | None, signature: str | None, now_us: int
    ) -> str | None:
        """Why the URL's signature does not allow this request, or None when it does."""
        if not expires or not signature:
            return "the URL is not signed (expires and signature are required)"
        if not _EXPIRES.fullmatch(expires):
            return "the URL's signature does not match"
        if not hmac.compare_digest(signature.encode(), self.sign(method, file_id, int(expires)).encode()):
            return "the URL's signature does not match"
        if int(expires) <= now_us:
            return "the signed URL has expired"
        return None
