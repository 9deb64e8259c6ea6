"""The four /v1/files endpoints, and the signed storage URLs they hand out.

`POST /v1/files/upload` reserves a file and returns a signed `PUT` URL on the
emulator itself (under /_storage/, standing in for a cloud bucket: no API key, an
HMAC signature and an expiry instead); the bytes stream to disk; `complete`
checks their size and sha256 and returns the durable MIMEData
`{filename, url: <base>/_storage/files/<id>}`, which a create may send as its
`document`. Partitions read stored files from disk, never over HTTP.

Where the spec and CONTRACT.md are silent, the emulator answers:
- file ids are `file_` + 16 random hex digits: an id is handed out before any byte
  arrives, so it cannot be the bytes' BLAKE2b as inline documents' ids are. Two
  uploads of identical bytes are two files (two ids, each with its own filename),
  sharing one blob on disk;
- a file exists (GET, download-link, documents) once completed; before, 404;
- `size_bytes` over `--max-upload` is a 422 at `["body", "size_bytes"]`; a PUT over
  it is refused with 413 while streaming;
- the PUT must carry the signed `Content-Type` (`uploadHeaders`) and no API key
  (403 and 400); a URL with a bad, tampered or expired signature is 403;
- `complete` past the session's expiry is 410 (the bytes are dropped; start over);
  no PUT yet, or a size or sha256 that differs from the declared ones, is 422 with
  a structured `{code, message, details}` naming both values; `complete` of a
  completed file answers its MIMEData again;
- the upload session lasts 15 minutes and a download link an hour, both divided by
  `--speed`.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import secrets
import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPBearer
from starlette.requests import ClientDisconnect

from retab_cli.emulator import partitioner
from retab_cli.emulator.blobs import UploadTooLarge
from retab_cli.emulator.config import url_host
from retab_cli.emulator.documents import (
    GENERIC_MIME,
    DocumentFailure,
    RemoteUrl,
    StoredDocument,
    reported_mime,
)
from retab_cli.emulator.lifecycle import format_time, now_us
from retab_cli.emulator.middleware import OWNER_KEY, STORAGE_PREFIX, declared_length
from retab_cli.emulator.responses import error_response, json_response, plain_error, value_error
from retab_cli.emulator.schemas import (
    CompleteFileUploadRequest,
    CreateFileUploadResponse,
    File,
    FileLink,
    MIMEData,
    UploadFileRequest,
)
from retab_cli.emulator.state import EmulatorState
from retab_cli.emulator.store import FileRecord

UPLOAD_TTL_S = 15 * 60
DOWNLOAD_TTL_S = 60 * 60
FILE_NOT_FOUND = "File not found"
SESSION_NOT_FOUND = "Upload session not found"
_STORED_PATH = re.compile(re.escape(STORAGE_PREFIX) + r"files/(file_[0-9a-f]{16})")
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(?:[ \t]*;[^\x00-\x1f\x7f]*)?", re.ASCII)


def new_file_id() -> str:
    return "file_" + secrets.token_hex(8)


def build_files_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(
        prefix="/v1/files", tags=["Files"], dependencies=[Depends(HTTPBearer(auto_error=False))]
    )

    @router.post(
        "/upload", response_model=CreateFileUploadResponse, operation_id="upload_file", summary="Upload File"
    )
    async def upload_file(body: UploadFileRequest, request: Request) -> Response:
        """Start a file upload.

        Reserves a file record for the given `filename`, `content_type`, and
        `size_bytes`, and returns a short-lived signed `upload_url` the client uses
        to `PUT` the file content directly. Call the complete-upload endpoint with
        the returned `file_id` once the bytes have been uploaded.
        """
        _check_upload(body, state.settings.max_upload)
        now = now_us()
        await asyncio.to_thread(_forget_expired, state, now)
        record = FileRecord(
            id=new_file_id(),
            owner=request.scope[OWNER_KEY],
            filename=body.filename,
            content_type=body.content_type or mimetypes.guess_type(body.filename)[0] or GENERIC_MIME,
            size_bytes=body.size_bytes,
            sha256=body.sha256.lower() if body.sha256 else None,
            created_us=now,
            expires_us=now + _scaled_us(state, UPLOAD_TTL_S),
        )
        state.store.insert_file(record)
        base = own_base(request)
        query = state.signer.query("PUT", record.id, record.expires_us)
        return json_response(
            {
                "fileId": record.id,
                "uploadUrl": f"{base}{STORAGE_PREFIX}uploads/{record.id}?{query}",
                "uploadMethod": "PUT",
                "uploadHeaders": {"Content-Type": record.content_type},
                "mimeData": mime_data(base, record),
                "expiresAt": format_time(record.expires_us),
            }
        )

    @router.post(
        "/upload/{file_id}/complete",
        response_model=MIMEData,
        operation_id="complete_upload_file",
        summary="Complete Upload File",
    )
    async def complete_upload_file(
        file_id: str, body: CompleteFileUploadRequest, request: Request
    ) -> Response:
        """Finalize a file upload.

        Confirms that the content for `file_id` has been uploaded, verifying the
        object's size and optional `sha256` checksum against the upload session,
        and marks the file ready. Returns a durable reference to the stored file.
        Responds with `404` if the upload session is unknown, `410` if it has
        expired, and `422` if the size or checksum does not match.
        """
        owner = request.scope[OWNER_KEY]
        # One complete at a time per file: a retry racing the first finds it done.
        async with state.idempotency.hold(("complete", file_id)):
            record = state.store.file(file_id, owner)
            if record is None:
                return plain_error(404, SESSION_NOT_FOUND)
            refusal = _refusal(state, record, body.sha256.lower() if body.sha256 else None)
            if refusal is not None:
                return refusal
            if record.completed_us is None:
                try:
                    record = await asyncio.to_thread(_complete, state, record)
                except OSError:  # its bytes went (a reset, a hand) between the PUT and now
                    message = f"the uploaded bytes of {file_id} are gone; upload them again"
                    return error_response(422, "upload_missing", message, {"file_id": file_id})
        return json_response(mime_data(own_base(request), record))

    @router.get(
        "/{file_id}/download-link",
        response_model=FileLink,
        operation_id="download_link",
        summary="Download Link",
    )
    async def download_link(file_id: str, request: Request) -> Response:
        """Get a temporary download link for a file.

        Returns a short-lived signed `download_url` for the file identified by
        `file_id`, along with its `filename` and expiration. Responds with `404`
        if no matching file exists.
        """
        record = _completed(state, file_id, request.scope[OWNER_KEY])
        if record is None:
            return plain_error(404, FILE_NOT_FOUND)
        ttl_us = _scaled_us(state, DOWNLOAD_TTL_S)
        base = own_base(request)
        query = state.signer.query("GET", record.id, now_us() + ttl_us)
        return json_response(
            {
                "download_url": f"{base}{STORAGE_PREFIX}files/{record.id}?{query}",
                "expires_in": f"{ttl_us / 1_000_000:g}s",
                "filename": record.filename,
                "mime_data": mime_data(base, record),
            }
        )

    @router.get("/{file_id}", response_model=File, operation_id="get_file", summary="Get File")
    async def get_file(file_id: str, request: Request) -> Response:
        """Retrieve a file.

        Returns metadata for the file identified by `file_id`, including its
        `filename`, `page_count`, and timestamps. Responds with `404` if no
        matching file exists.
        """
        record = _completed(state, file_id, request.scope[OWNER_KEY])
        if record is None:
            return plain_error(404, FILE_NOT_FOUND)
        return json_response(file_object(record))

    return router


def build_storage_router(state: EmulatorState) -> APIRouter:
    """The signed URLs: "another host", so no API key and no place in the schema."""
    router = APIRouter(prefix=STORAGE_PREFIX.rstrip("/"), include_in_schema=False)

    @router.put("/uploads/{file_id}")
    async def put_upload(file_id: str, request: Request) -> Response:
        record = state.store.file(file_id)
        refusal = _put_refusal(state, request, file_id, record)
        if refusal is not None:
            return refusal
        try:
            received = await state.blobs.receive(file_id, request.stream(), state.settings.max_upload)
        except UploadTooLarge as exc:
            return _upload_too_large(exc)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody reads it: the client has gone
        except FileNotFoundError:  # the control API reset the storage meanwhile
            return plain_error(404, SESSION_NOT_FOUND)
        except OSError as exc:  # a full disk, say: the client may try again later
            message = f"the emulator could not store the upload: {exc.strerror}"
            return error_response(507, "storage_failed", message)
        replaced = state.store.file_uploaded(file_id, received.size, received.sha256)
        if replaced is not None:
            await asyncio.to_thread(_discard_unreferenced, state, [replaced])
        return json_response({"file_id": file_id, "size_bytes": received.size, "sha256": received.sha256})

    @router.get("/files/{file_id}")
    async def download(file_id: str, request: Request) -> Response:
        problem = _signature_problem(state, request, "GET", file_id)
        if problem is not None:
            return error_response(403, "invalid_signature", problem)
        record = _completed(state, file_id, None)
        if record is None:
            return plain_error(404, FILE_NOT_FOUND)
        path = state.blobs.blob_path(record.uploaded_sha256 or "")
        if not path.is_file():  # its storage was reset (or removed by hand) since
            return plain_error(404, FILE_NOT_FOUND)
        return FileResponse(path, media_type=record.mime_type or GENERIC_MIME)

    return router


def stored_document(
    state: EmulatorState, owner: str, remote: RemoteUrl, own_port: int | None
) -> StoredDocument | DocumentFailure | None:
    """The stored file a document URL names (its durable MIMEData URL, or a signed
    download link), read from disk; None when the URL is not one of them."""
    parts = urllib.parse.urlsplit(remote.url)
    match = _STORED_PATH.fullmatch(parts.path)
    if not remote.loopback or match is None:
        return None
    record = state.store.file(match[1])
    if record is None and remote.port != own_port:
        return None  # another server's URL that looks like ours: fetch it
    query = dict(urllib.parse.parse_qsl(parts.query))
    if "signature" in query or "expires" in query:
        args = ("GET", match[1], query.get("expires"), query.get("signature"), now_us())
        problem = state.signer.problem(*args)
        if problem is not None:
            return DocumentFailure("remote_fetch_failed", f"fetching the document gave HTTP 403: {problem}")
    elif record is not None and record.owner != owner:
        record = None
    if record is None or record.completed_us is None:
        return DocumentFailure("file_not_found", f"no completed file {match[1]} for this API key")
    path = state.blobs.blob_path(record.uploaded_sha256 or "")
    return StoredDocument(path=path, mime_type=record.content_type, file_id=record.id)


def own_port(request: Request) -> int | None:
    """The port this request came in on: a document URL there is the emulator itself."""
    server = _own_address(request)
    return server[1] if server else None


def own_base(request: Request) -> str:
    """The emulator's own URL, from the address this connection reached (never
    from the Host header, which the client writes)."""
    server = _own_address(request)
    if server is None:
        return str(request.base_url).rstrip("/")
    return f"http://{url_host(server[0])}:{server[1]}"


def _own_address(request: Request) -> tuple[str, int] | None:
    server = request.scope.get("server")
    return (str(server[0]), int(server[1])) if server and server[1] is not None else None


def mime_data(base: str, record: FileRecord) -> dict[str, str]:
    return {"filename": record.filename, "url": f"{base}{STORAGE_PREFIX}files/{record.id}"}


def file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "object": "file",
        "id": record.id,
        "filename": record.filename,
        "mime_type": record.mime_type,
        "created_at": format_time(record.created_us),
        "updated_at": format_time(record.completed_us or record.created_us),
        "page_count": record.page_count,
    }


def _check_upload(body: UploadFileRequest, max_upload: int) -> None:
    if body.size_bytes > max_upload:
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("body", "size_bytes"),
                    "msg": f"Input should be less than or equal to {max_upload} (--max-upload)",
                    "input": body.size_bytes,
                    "ctx": {"le": max_upload},
                }
            ]
        )
    if body.content_type is not None and not _MEDIA_TYPE.fullmatch(body.content_type):
        raise value_error(("body", "content_type"), "content_type must be a MIME type", body.content_type)


def _scaled_us(state: EmulatorState, seconds: float) -> int:
    return round(seconds / state.settings.speed * 1_000_000)


def _completed(state: EmulatorState, file_id: str, owner: str | None) -> FileRecord | None:
    record = state.store.file(file_id, owner)
    return record if record is not None and record.completed_us is not None else None


def _refusal(state: EmulatorState, record: FileRecord, sha256: str | None) -> Response | None:
    """Why `complete` cannot mark this file ready (None: it can, or it is already)."""
    if record.completed_us is None and now_us() >= record.expires_us:
        _forget_expired(state, now_us())
        details = {"file_id": record.id, "expired_at": format_time(record.expires_us)}
        message = "the upload session has expired; start a new upload"
        return error_response(410, "upload_expired", message, details)
    if record.uploaded_size is None:
        message = f"no bytes were uploaded for {record.id}"
        return error_response(422, "upload_missing", message, {"file_id": record.id})
    return _mismatch(record, sha256 or record.sha256)


def _mismatch(record: FileRecord, sha256: str | None) -> Response | None:
    received: dict[str, Any]
    if record.uploaded_size != record.size_bytes:
        received = {"expected": record.size_bytes, "received": record.uploaded_size}
        message = f"the upload is {record.uploaded_size} bytes; the session declared {record.size_bytes}"
        return error_response(422, "size_mismatch", message, received)
    if sha256 is not None and sha256 != record.uploaded_sha256:
        received = {"expected": sha256, "received": record.uploaded_sha256}
        message = f"the uploaded bytes have sha256 {record.uploaded_sha256}, not {sha256}"
        return error_response(422, "checksum_mismatch", message, received)
    return None


def _complete(state: EmulatorState, record: FileRecord) -> FileRecord:
    """Mark the file ready: its MIME type and page count, from the stored bytes."""
    path = state.blobs.blob_path(record.uploaded_sha256 or "")
    with path.open("rb") as stream:
        head = stream.read(16)
        stream.seek(0)
        pages = partitioner.page_count(stream, record.content_type)
    mime = reported_mime(record.content_type, head, record.filename)
    now = now_us()
    state.store.file_completed(record.id, now, mime, pages)
    return FileRecord(**{**vars(record), "completed_us": now, "mime_type": mime, "page_count": pages})


def _put_refusal(
    state: EmulatorState, request: Request, file_id: str, record: FileRecord | None
) -> Response | None:
    problem = _signature_problem(state, request, "PUT", file_id)
    if problem is not None:
        return error_response(403, "invalid_signature", problem)
    if record is None:
        return plain_error(404, SESSION_NOT_FOUND)
    if record.completed_us is not None:
        message = f"{file_id} is complete; start a new upload to change it"
        return error_response(409, "upload_completed", message)
    if any(name in request.headers for name in ("authorization", "api-key")):
        message = "a signed URL takes no API key: send only the uploadHeaders"
        return error_response(400, "credentials_not_allowed", message)
    sent = request.headers.get("content-type")
    if sent != record.content_type:
        message = f"Content-Type must be {record.content_type!r} as signed (uploadHeaders), not {sent!r}"
        return error_response(403, "invalid_signature", message)
    if (declared_length(request.scope) or 0) > state.settings.max_upload:
        return _upload_too_large(UploadTooLarge(state.settings.max_upload))
    return None


def _upload_too_large(exc: UploadTooLarge) -> Response:
    # Closing the connection stops the rest of the body; nothing more is read.
    response = error_response(413, "upload_too_large", str(exc), {"limit": exc.limit})
    response.headers["connection"] = "close"
    return response


def _signature_problem(state: EmulatorState, request: Request, method: str, file_id: str) -> str | None:
    query = request.query_params
    return state.signer.problem(method, file_id, query.get("expires"), query.get("signature"), now_us())


def _forget_expired(state: EmulatorState, now: int) -> None:
    _discard_unreferenced(state, state.store.drop_expired_uploads(now))


def _discard_unreferenced(state: EmulatorState, digests: list[str]) -> None:
    state.blobs.discard(state.store.unreferenced(digests))
