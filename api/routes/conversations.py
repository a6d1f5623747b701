"""Conversations and messages, read side: ``conversations.*``, ``messages.list``, ``messages.info``."""

from __future__ import annotations

from starlette.requests import Request

from airy_actors import reading
from api import answer_schemas, schemas
from api.database import in_database
from api.operations import operation
from api.responses import JSONResponse


@operation(
    "Conversations, newest activity first",
    body=schemas.ConversationsList,
    answers={200: answer_schemas.ConversationPage},
    description="Paginated; `filters` selects by channel and by part of the contact's name.",
)
async def conversations_list(request: Request, body: schemas.ConversationsList) -> JSONResponse:
    filters = body.filters or schemas.ConversationFilters()
    return JSONResponse(
        await in_database(
            reading.list_conversations,
            **body.page(),
            channel_id=filters.channel_id,
            display_name=filters.display_name,
        )
    )


@operation("A conversation", body=schemas.ConversationRef, answers={200: answer_schemas.Conversation}, errors=(404,))
async def conversations_info(request: Request, body: schemas.ConversationRef) -> JSONResponse:
    return JSONResponse(await in_database(reading.conversation_info, body.conversation_id))


@operation(
    "Mark a conversation read (its unread count becomes 0)",
    body=schemas.ConversationRef,
    answers={202: answer_schemas.Empty},
    errors=(404,),
)
async def conversations_read(request: Request, body: schemas.ConversationRef) -> JSONResponse:
    await in_database(reading.mark_conversation_read, body.conversation_id)
    return JSONResponse({}, status_code=202)


@operation(
    "A conversation's messages, newest first",
    body=schemas.MessagesList,
    answers={200: answer_schemas.MessagePage},
    errors=(404,),
)
async def messages_list(request: Request, body: schemas.MessagesList) -> JSONResponse:
    return JSONResponse(await in_database(reading.list_messages, body.conversation_id, **body.page()))


@operation("A message", body=schemas.MessagesInfo, answers={200: answer_schemas.Message}, errors=(404,))
async def messages_info(request: Request, body: schemas.MessagesInfo) -> JSONResponse:
    return JSONResponse(await in_database(reading.message_info, body.message_id))
