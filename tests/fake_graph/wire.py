"""How a Graph API request reaches the handlers: its body, its token, its parameters."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from .errors import GraphError, oauth_error

DEFAULT_VERSION = "v25.0"


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a ``multipart/form-data`` body."""

    name: str
    """The form field, e.g. ``filedata``."""
    filename: str | None
    content_type: str | None
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, recorded before any failure injection or validation."""

    method: str
    path: str
    """Path relative to the version, e.g. ``/me/messages``."""
    query: dict[str, str]
    json: Any
    """The parsed JSON body, or None when the body was empty or not JSON."""
    token: str | None
    """The access token, from the query string, the ``Authorization`` header or the body."""
    form: dict[str, str] = field(default_factory=dict)
    """The url-encoded form body, or the text fields of a ``multipart/form-data`` body."""
    version: str = DEFAULT_VERSION
    files: dict[str, UploadedFile] = field(default_factory=dict)
    """The file parts of a ``multipart/form-data`` body, by field name."""


@dataclass
class Body:
    """A parsed request body."""

    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    error: GraphError | None = None
    """The error to answer with when the body is malformed."""


@dataclass
class Call:
    """A request as the handlers see it."""

    method: str
    path: str
    version: str
    query: dict[str, str]
    params: dict[str, Any]
    """Query, form and JSON body merged (body wins), without ``access_token``."""
    token: str | None
    origin: str = ""
    """``http://host:port`` of the request, for the links an answer carries (paging)."""
    files: dict[str, UploadedFile] = field(default_factory=dict)
    fetched: Any = None
    """What was fetched for this call before dispatch (see ``Attachments._prefetch``), if anything."""


def parse_body(content_type: str, raw: bytes) -> Body:
    """Parse a JSON, url-encoded or ``multipart/form-data`` body."""
    if not raw:
        return Body()
    if "application/x-www-form-urlencoded" in content_type:
        return Body(form=dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)))
    if "multipart/form-data" in content_type:
        return _parse_multipart(content_type, raw)
    try:
        return Body(json=json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        return Body(error=oauth_error("(#100) The request body could not be parsed as JSON"))


def _parse_multipart(content_type: str, raw: bytes) -> Body:
    # python-multipart is not a dependency of the project; the stdlib MIME parser reads form-data.
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return Body(error=oauth_error("(#100) The request body could not be parsed"))
    body = Body()
    for part in message.iter_parts():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        content = part.get_payload(decode=True)
        content = content if isinstance(content, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            body.form[name] = content.decode(part.get_content_charset() or "utf-8", "replace")
        else:
            part_type = part.get("content-type")
            body.files[name] = UploadedFile(name, filename, str(part_type) if part_type else None, content)
    return body


def extract_token(request: Request, query: dict[str, str], form: dict[str, str], body: Any) -> str | None:
    """The access token, from the query string, the ``Authorization`` header or the body."""
    if query.get("access_token"):
        return query["access_token"]
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and credentials.strip():
        return credentials.strip()
    if form.get("access_token"):
        return form["access_token"]
    if isinstance(body, dict) and isinstance(body.get("access_token"), str):
        return body["access_token"]
    return None


def json_param(params: dict[str, Any], name: str) -> Any:
    """A parameter which form or query callers pass as a JSON string (``recipient``, ``message``)."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise oauth_error(f"(#100) param {name} must be a JSON object.") from exc
    return value
