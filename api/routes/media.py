"""``GET /media/<key>?sig=...`` serves kept files (the signature is the capability); ``POST /media.upload``."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import IO

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from airy_actors.config import get_settings
from airy_actors.errors import BadRequest, NotFound, PayloadTooLarge
from airy_actors.media import RangeNotSatisfiable, byte_range, verify
from airy_actors.media.configured import get_media_store, media_secret, signed_url
from airy_actors.media.store import CHUNK_BYTES, is_media_key
from airy_actors.media.uploads import media_json, upload
from api import answer_schemas
from api.database import in_database
from api.operations import Operation, Text, documented
from api.responses import JSONResponse

IMMUTABLE = "public, max-age=31536000, immutable"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SPOOL_IN_MEMORY_BYTES = 1024 * 1024  # an upload larger than this waits on disk, not in memory


@documented(
    Operation(
        "A kept file, by its signed URL",
        answers={200: Text("*/*", {}), 206: Text("*/*", {}), 416: None},
        errors=(404,),
        public=True,
        description="The bytes with their Content-Type; `Range` is served (206), and the answer caches as "
        "immutable; a range outside the file is 416, without a body, with `Content-Range: bytes */<size>`. The "
        "signature is the capability: no system token. A wrong signature is 404.",
        parameters=(
            {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
        ),
    )
)
async def media_file(request: Request) -> Response:
    key = request.path_params["key"]
    signature = request.query_params.get("sig", "")
    if not is_media_key(key) or not verify(key, signature, media_secret()):
        raise NotFound("no such media")
    start, end = _range(request.headers.get("range"))
    store = get_media_store()
    try:
        opened = await run_in_threadpool(store.open, key, start, end)
    except RangeNotSatisfiable as error:
        size = getattr(error, "size", 0)
        return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
    headers = {"cache-control": IMMUTABLE, "etag": f'"{key}"', "accept-ranges": "bytes"}
    if start is None and end is None:
        headers["content-length"] = str(opened.size)
        return StreamingResponse(opened.chunks, media_type=opened.content_type, headers=headers)
    first, past_last = byte_range(start, end, opened.size)
    headers["content-range"] = f"bytes {first}-{past_last - 1}/{opened.size}"
    headers["content-length"] = str(past_last - first)
    return StreamingResponse(opened.chunks, status_code=206, media_type=opened.content_type, headers=headers)


def _range(header: str | None) -> tuple[int | None, int | None]:
    """``[start, end)`` of a single-range ``Range`` header; (None, None) for none or one we do not serve."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or not (match.group(1) or match.group(2)):
        return None, None
    first, last = match.group(1), match.group(2)
    if not first:
        return -int(last), None  # the last N bytes
    return int(first), (int(last) + 1 if last else None)


@documented(
    Operation(
        "Upload a file to send",
        answers={200: answer_schemas.Media},
        errors=(400, 413, 415, 503),
        description="The file as the raw body with its Content-Type, or `multipart/form-data` with a part named "
        "`file`; at most AIRY_MEDIA_MAX_BYTES (25 MiB).",
        request_content={
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}},
        },
    )
)
async def media_upload(request: Request) -> JSONResponse:
    limit = get_settings().media_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4, max_part_size=1024)
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise BadRequest("file is required: a multipart part named file")
        file, file_type = part.file, part.content_type or ""
    else:
        file, file_type = await _spooled(request, limit), content_type
    store = get_media_store()
    # With a connection of its own, handed back afterwards: a thread of the pool must not keep one.
    media = await in_database(upload, _chunks(file, limit), content_type=file_type, store=store, max_bytes=limit)
    return JSONResponse(media_json(media, signed_url(media.key)))


async def _spooled(request: Request, limit: int) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            spool.close()
            raise PayloadTooLarge(f"the file is larger than {limit} bytes")
        spool.write(chunk)
    spool.seek(0)
    return spool


def _chunks(file: IO[bytes], limit: int) -> Iterator[bytes]:
    file.seek(0)
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


ROUTES: list[Route] = [
    Route("/media/{key}", media_file, methods=["GET", "HEAD"]),
    Route("/media.upload", media_upload, methods=["POST"]),
]
