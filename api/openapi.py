"""The OpenAPI 3.1 document of every route, built from the operations that the endpoints declare
(:mod:`api.operations`) and the schemas that validate their bodies (:mod:`api.schemas`)."""

from __future__ import annotations

import http
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route

from api import answer_schemas
from api.bodies import MAX_BODY_BYTES
from api.operations import Operation, Text, operation_of

TITLE = "airy-actors"
DESCRIPTION = (
    "The Facebook Messenger (and Instagram) source of a conversational platform. Every endpoint but the "
    "webhook, /health and signed media URLs needs `Authorization: Bearer <AIRY_SYSTEM_TOKEN>` when that token "
    'is set. Errors are `{"message"}` naming the field, or the token that made the body unreadable. Unknown '
    "top-level fields of a body are ignored."
)
ERRORS = {
    400: "Bad input: the message names the field (or the token, such as NaN, when the body cannot be read).",
    401: "The system token is missing or wrong (when AIRY_SYSTEM_TOKEN is set).",
    403: "The signature or the verify token does not match.",
    404: "The id is not known.",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes (an upload: than AIRY_MEDIA_MAX_BYTES).",
    415: "The file is of a type that Facebook cannot send (or has no Content-Type).",
    503: "A dependency (the database, the broker, Facebook) is down, or the Facebook source is not configured.",
}
SECURITY_SCHEME = "systemToken"
REF_TEMPLATE = "#/components/schemas/{name}"


class MissingOperation(LookupError):
    """A route whose endpoint declares no operation: the document would not cover it."""


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``: each route's methods, bodies, answers and errors.

    Mounts (static files) are not API endpoints and are left out; HEAD is GET's twin.

    Raises:
      MissingOperation: naming a route whose endpoint declares no operation.
    """
    operations: list[tuple[str, str, Operation]] = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        declared = operation_of(route.endpoint)
        if declared is None:
            raise MissingOperation(f"{route.path} declares no operation (api.operations)")
        operations += [(route.path, method, declared) for method in sorted((route.methods or set()) - {"HEAD"})]

    types = _schema_types(operations)
    references, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    schema_of = dict(zip(types, references, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for path, method, declared in operations:
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, declared, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": _version(), "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "AIRY_SYSTEM_TOKEN"}
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }


def _schema_types(operations: list[tuple[str, str, Operation]]) -> list[Any]:
    """Every msgspec type that the document refers to, once each, in a stable order."""
    found: dict[Any, None] = {answer_schemas.Error: None}
    for _, _, declared in operations:
        for kind in (declared.body, *declared.answers.values()):
            if kind is not None and not isinstance(kind, Text | dict):
                found[kind] = None
    return list(found)


def _operation(path: str, method: str, declared: Operation, schema_of: dict[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in sorted(declared.answers.items()):
        responses[str(status)] = {"description": http.HTTPStatus(status).phrase}
        if answer is not None:  # None: an answer without a body
            responses[str(status)]["content"] = _content(answer, schema_of)
    has_body = declared.body is not None or declared.request_content is not None
    # Any endpoint may find the database or the broker down.
    errors = {*declared.errors, 503} | ({400, 413} if has_body else set()) | (set() if declared.public else {401})
    for status in sorted(errors - set(declared.answers)):
        responses[str(status)] = {"description": ERRORS[status], "content": _content(answer_schemas.Error, schema_of)}
    described: dict[str, Any] = {
        "operationId": f"{method.lower()}_{path.strip('/').replace('.', '_').replace('/', '_') or 'root'}",
        "summary": declared.summary,
        "tags": [path.strip("/").split(".")[0].split("/")[0]],
        "responses": responses,
    }
    if declared.description:
        described["description"] = declared.description
    if declared.parameters:
        described["parameters"] = [dict(parameter) for parameter in declared.parameters]
    if declared.request_content is not None:
        described["requestBody"] = {"required": True, "content": dict(declared.request_content)}
    elif declared.body is not None:
        described["requestBody"] = {
            "required": bool(_required_fields(declared.body)),
            "content": {"application/json": {"schema": schema_of[declared.body]}},
        }
    if declared.public:
        described["security"] = []
    return described


def _content(answer: Any, schema_of: dict[Any, Any]) -> dict[str, Any]:
    if isinstance(answer, Text):
        return {answer.media_type: {"schema": dict(answer.schema)}}
    return {"application/json": {"schema": answer if isinstance(answer, dict) else schema_of[answer]}}


def _required_fields(kind: Any) -> list[str]:
    info = msgspec.inspect.type_info(kind)
    return [field.name for field in getattr(info, "fields", ()) if field.required]


def _version() -> str:
    try:
        return metadata.version("airy-actors")
    except metadata.PackageNotFoundError:
        return "0.0.0"
