"""Conversations and messages, read side: ``conversations.*``, ``messages.list``, ``messages.info``."""

from __future__ import annotations

from starlette.requests import Request

from airy_actors import reading
from airy_actors.errors import BadRequest
from api.bodies import Body
from api.database import in_database
from api.responses import JSONResponse


async def conversations_list(request: Request) -> JSONResponse:
    body = await Body.of(request)
    filters = Body(body.optional_obj("filters") or {})
    unknown = set(filters.data) - {"channel_id", "display_name"}
    if unknown:
        raise BadRequest(f"filters.{sorted(unknown)[0]} is not a known filter (channel_id, display_name)")
    return JSONResponse(
        await in_database(
            reading.list_conversations,
            **body.page(),
            channel_id=_filter(filters, "channel_id"),
            display_name=_filter(filters, "display_name"),
        )
    )


def _filter(filters: Body, name: str) -> str | None:
    try:
        return filters.optional_string(name)
    except BadRequest as exc:
        raise BadRequest(f"filters.{exc.message}") from None


async def conversations_info(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(reading.conversation_info, body.string("conversation_id")))


async def conversations_read(request: Request) -> JSONResponse:
    body = await Body.of(request)
    await in_database(reading.mark_conversation_read, body.string("conversation_id"))
    return JSONResponse({}, status_code=202)


async def messages_list(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(
        await in_database(
            reading.list_messages,
            body.string("conversation_id"),
            **body.page(),
        )
    )


async def messages_info(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(reading.message_info, body.string("message_id")))
