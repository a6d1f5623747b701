"""The Attachment Upload API: ``POST /{page_id}/message_attachments`` (and ``/me/message_attachments``).

An upload gives either a ``url`` in ``message.attachment.payload`` (the fake fetches it, as Facebook
does, so it can point at a file served by ``FakeGraph.add_file``) or the file itself as the
``filedata`` part of a ``multipart/form-data`` body, and answers ``{"attachment_id": "..."}``. A send
whose ``message.attachment.payload.attachment_id`` was not uploaded by the same page is refused with
``ATTACHMENT_NOT_OWNED``, as Facebook refuses an id it does not know or another page owns.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from .core import GraphCore
from .errors import (
    ATTACHMENT_FETCH_FAILED,
    ATTACHMENT_NOT_OWNED,
    ATTACHMENT_TOO_LARGE,
    ATTACHMENT_UPLOAD_FAILED,
    GraphError,
    fresh,
    missing_parameter,
    not_one_of,
    oauth_error,
)
from .nodes import Caller, Page
from .wire import Call, json_param

ATTACHMENT_TYPES = ("image", "video", "audio", "file")
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
"""The Send API's limit for an attachment (25 MB)."""
FETCH_TIMEOUT_S = 10.0
FETCH_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class AttachmentUpload:
    """One accepted upload."""

    attachment_id: str
    page_id: str
    type: str
    """``image``, ``video``, ``audio`` or ``file``."""
    sha256: str
    size: int
    content_type: str | None
    source: str
    """``url`` (fetched by the fake) or ``file`` (the ``filedata`` part)."""
    url: str | None
    filename: str | None
    is_reusable: bool


@dataclass(frozen=True)
class _Fetched:
    """What fetching an upload's ``url`` gave; ``status`` is None when the fetch itself failed."""

    status: int | None
    content_type: str | None = None
    content: bytes = b""
    too_large: bool = False


class Attachments(GraphCore):
    """Uploaded attachments, per page."""

    def _init_attachments_state(self) -> None:
        self._uploads: list[AttachmentUpload] = []
        self._attachments: dict[str, AttachmentUpload] = {}
        self.attachment_max_bytes = MAX_ATTACHMENT_BYTES
        """Uploads larger than this fail with ``ATTACHMENT_TOO_LARGE``; settable."""

    # --- scenario set-up ---

    def expire_attachment(self, attachment_id: str) -> None:
        """Forget an uploaded attachment, as Facebook does after 90 days: later sends with it fail."""
        with self._lock:
            self._attachments.pop(attachment_id, None)

    # --- recordings ---

    @property
    def attachment_uploads(self) -> list[AttachmentUpload]:
        """Every accepted upload, oldest first."""
        with self._lock:
            return list(self._uploads)

    # --- handlers ---

    async def _prefetch(self, call: Call) -> None:
        """Fetch the ``url`` of an upload before dispatch, outside the lock, as Facebook would."""
        if call.method != "POST" or not call.path.endswith("/message_attachments"):
            return
        try:
            message = json_param(call.params, "message")
        except GraphError:
            return
        attachment = message.get("attachment") if isinstance(message, dict) else None
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        url = payload.get("url") if isinstance(payload, dict) else None
        if not isinstance(url, str) or not url:
            return
        with self._lock:
            try:
                if not isinstance(self._authenticate(call.token), Page):
                    return
            except GraphError:
                return
            limit = self.attachment_max_bytes
        call.fetched = await _fetch(url, limit)

    def _upload_attachment(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        page = self._require_page_token(call, caller, page)
        message = json_param(call.params, "message")
        attachment = message.get("attachment") if isinstance(message, dict) else None
        if not isinstance(attachment, dict):
            raise missing_parameter("message")
        kind = attachment.get("type")
        if kind not in ATTACHMENT_TYPES:
            raise not_one_of("message[attachment][type]", ATTACHMENT_TYPES, kind)
        payload = attachment.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        url = payload.get("url")
        filedata = call.files.get("filedata")
        if bool(url) == (filedata is not None):
            # Wording of the live error, as reported in fchat.co's list of Messenger errors.
            raise oauth_error("(#100) An incorrect number of files uploaded. Must upload exactly one file")
        if filedata is not None:
            content, content_type = filedata.content, filedata.content_type
            if len(content) > self.attachment_max_bytes:
                raise fresh(ATTACHMENT_TOO_LARGE)
        else:
            fetched = call.fetched if isinstance(call.fetched, _Fetched) else _Fetched(status=None)
            if fetched.too_large:
                raise fresh(ATTACHMENT_TOO_LARGE)
            if fetched.status != 200:
                raise fresh(ATTACHMENT_FETCH_FAILED)
            content, content_type = fetched.content, fetched.content_type
        if not _type_matches(kind, content_type):
            raise fresh(ATTACHMENT_UPLOAD_FAILED)
        upload = AttachmentUpload(
            attachment_id=str(10**15 + secrets.randbelow(9 * 10**15)),
            page_id=page.id,
            type=kind,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            content_type=content_type,
            source="file" if filedata is not None else "url",
            url=url if filedata is None else None,
            filename=filedata.filename if filedata is not None else None,
            is_reusable=payload.get("is_reusable") in (True, "true", "1"),
        )
        self._uploads.append(upload)
        self._attachments[upload.attachment_id] = upload
        return {"attachment_id": upload.attachment_id}

    def _check_attachment_reference(self, page_id: str, message: Any) -> None:
        """A send's ``payload.attachment_id`` must be an upload of the same page."""
        attachment = message.get("attachment") if isinstance(message, dict) else None
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        if isinstance(payload, dict) and "attachment_id" in payload:
            upload = self._attachments.get(str(payload["attachment_id"]))
            if upload is None or upload.page_id != page_id:
                raise fresh(ATTACHMENT_NOT_OWNED)


async def _fetch(url: str, limit: int) -> _Fetched:
    """GET ``url``, reading at most ``limit`` bytes of it."""
    try:
        async with (
            httpx.AsyncClient(
                follow_redirects=True, max_redirects=FETCH_MAX_REDIRECTS, timeout=FETCH_TIMEOUT_S
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                return _Fetched(status=response.status_code)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    return _Fetched(status=200, too_large=True)
                chunks.append(chunk)
            return _Fetched(200, response.headers.get("content-type"), b"".join(chunks))
    except httpx.HTTPError:
        return _Fetched(status=None)


def _type_matches(kind: str, content_type: str | None) -> bool:
    """Facebook refuses an ``image`` upload whose file is not an image (and so on); ``file`` takes anything.

    Without a telling content type the fake gives the benefit of the doubt.
    """
    if kind == "file" or not content_type:
        return True
    main = content_type.split(";", 1)[0].strip().lower()
    if main in ("application/octet-stream", "binary/octet-stream"):
        return True
    return main.startswith(kind + "/")
