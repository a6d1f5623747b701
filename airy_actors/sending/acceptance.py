"""Accepting a send: options, the messaging window, and storing the message ``pending``, many at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import peewee

from airy_actors import outbox
from airy_actors.db import execute, is_postgres, placeholders, write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.models import Conversation, Message, new_id
from airy_actors.sending.attachments import check_media
from airy_actors.timestamps import iso_ms, now_ms

logger = logging.getLogger(__name__)

MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
HUMAN_AGENT = "HUMAN_AGENT"
STANDARD_WINDOW_MS = 24 * 3_600_000
HUMAN_AGENT_WINDOW_MS = 7 * 24 * 3_600_000
# Batches: the most sends accepted together, and so delivered together.
MAX_BATCH = 32


@dataclass(frozen=True)
class SendRequest:
    """What ``messages.send`` asks for, validated by the endpoint."""

    conversation_id: str
    message: dict[str, Any]
    messaging_type: str | None = None
    tag: str | None = None
    notification_token: str | None = None  # a recurring notification message, allowed outside the window


def check_send_options(messaging_type: str | None, tag: str | None) -> str:
    """Validates ``messaging_type`` and ``tag`` together.

    Returns:
      The messaging type to send with: the given one, ``MESSAGE_TAG`` when only a tag is given (Facebook
      accepts tags with no other type), else ``RESPONSE``.

    Raises:
      BadRequest: naming the field.
    """
    if messaging_type is not None and messaging_type not in MESSAGING_TYPES:
        raise BadRequest(f"messaging_type must be one of {', '.join(MESSAGING_TYPES)}")
    if messaging_type == "MESSAGE_TAG" and tag is None:
        raise BadRequest("tag is required when messaging_type is MESSAGE_TAG")
    if tag is not None and messaging_type not in (None, "MESSAGE_TAG"):
        raise BadRequest("tag is only allowed with messaging_type MESSAGE_TAG")
    if tag is not None:
        return "MESSAGE_TAG"
    return messaging_type or "RESPONSE"


def check_window(last_contact_message_at: int | None, tag: str | None, now: int) -> None:
    """Refuses a send outside the messaging window, before Facebook is asked.

    The window is 24 hours after the contact's last message; with tag ``HUMAN_AGENT``, 7 days.

    Raises:
      BadRequest: saying that the window closed, and when.
    """
    if last_contact_message_at is None:
        raise BadRequest(
            "the messaging window is not open: the contact has not written in this conversation yet, "
            "and Facebook lets a page answer only within 24 hours of the contact's last message"
        )
    last = iso_ms(last_contact_message_at)
    if now <= last_contact_message_at + STANDARD_WINDOW_MS:
        return
    if tag == HUMAN_AGENT:
        if now <= last_contact_message_at + HUMAN_AGENT_WINDOW_MS:
            return
        closed = iso_ms(last_contact_message_at + HUMAN_AGENT_WINDOW_MS)
        raise BadRequest(
            f"the messaging window closed at {closed}: tag HUMAN_AGENT allows answers up to 7 days after the "
            f"contact's last message ({last})"
        )
    closed = iso_ms(last_contact_message_at + STANDARD_WINDOW_MS)
    raise BadRequest(
        f"the messaging window closed at {closed}, 24 hours after the contact's last message ({last}); "
        f"outside it only tag HUMAN_AGENT may answer, up to 7 days after"
    )


def check_notification_token(conversation_id: str, token: str, now: int) -> None:
    """Refuses a recurring notification send whose token the contact did not give, stopped, or let expire.

    Raises:
      BadRequest: saying which, before Facebook is asked.
    """
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    tokens = (conversation.metadata or {}).get("notification_tokens") if conversation is not None else None
    known = next((item for item in tokens or [] if isinstance(item, dict) and item.get("token") == token), None)
    if known is None:
        raise BadRequest("notification_token is not a token this contact gave by opting in")
    if known.get("status") != "active":
        raise BadRequest("notification_token was stopped by the contact: they no longer receive these messages")
    expires_at = known.get("expires_at")
    if isinstance(expires_at, str) and expires_at <= iso_ms(now):
        raise BadRequest(f"notification_token expired at {expires_at}; ask the contact to opt in again")


# The statements that every message runs (accepting it here; loading, claiming and recording its send below)
# are plain SQL: compiling Peewee's query trees and building models from joined rows took several times the CPU
# of the round trips themselves, and CPU is what bounds how many messages a second the web and the worker
# handle (bench/send.py). The rare paths stay in Peewee. ``{p}`` is the database's placeholder; both engines
# run the same SQL.
_CONVERSATIONS = """
SELECT c.id, c.last_contact_message_at, ch.id, ch.connected, ch.page_token, ch.source_channel_id
FROM conversation AS c
JOIN channel AS ch ON ch.id = c.channel_id
WHERE c.id IN ({ids})
"""
_INSERT_OUTBOUND = """
INSERT INTO message (id, conversation_id, channel_id, content, delivery_state, from_contact, sender_id, sent_at,
  metadata, created_at, updated_at, messaging_type, message_tag, notification_token)
VALUES {messages}
"""
_OUTBOUND_ROW = "({p}, {p}, {p}, {p}, 'pending', FALSE, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
# Each conversation's last message, as airy_actors.conversations.insert_message keeps it for a page's message:
# the newest by sent_at (a page's message changes neither the unread count nor the messaging window). The rows
# are (conversation id, message id, sent_at), one a conversation; VALUES names its columns column1.. on both
# engines.
_LAST_MESSAGES = """
UPDATE conversation SET
  last_message_id = CASE WHEN last_message_at <= v.column3 THEN v.column2 ELSE last_message_id END,
  last_message_at = CASE WHEN last_message_at <= v.column3 THEN v.column3 ELSE last_message_at END
FROM (VALUES {conversations}) AS v
WHERE conversation.id = v.column1
"""


def accept_send(request: SendRequest, now: int | None = None) -> Message:
    """Stores an outbound message ``pending``, after checking the channel and the messaging window.

    The caller enqueues the ``deliver_message`` actor after this returns (the write has committed).

    Raises:
      NotFound: when the conversation does not exist.
      BadRequest: when the channel is disconnected or the window is closed.
    """
    [accepted] = accept_sends([request], now)
    if isinstance(accepted, Exception):
        raise accepted
    return accepted


def accept_sends(requests: list[SendRequest], now: int | None = None) -> list[Message | Exception]:
    """Stores several outbound messages ``pending`` at once: one SELECT, one INSERT, one commit.

    Sends that arrive together (messages.send under load) so share the round trips and the commit, which cost
    far more than checking each. Each request is checked on its own, and a bad one fails alone.

    The caller enqueues the delivery of the accepted messages after this returns (the writes have committed).

    Returns:
      For each request, in order, its stored message or its error: NotFound when the conversation does not
      exist, BadRequest when its options are wrong, its channel is disconnected or its window is closed; when
      storing the batch failed and some request of it then fails alone, the database's error.
    """
    now = now_ms() if now is None else now
    try:
        return _accept_together(requests, now)
    except peewee.DatabaseError:
        if len(requests) == 1:
            raise
        logger.warning("could not store a batch of sends; storing each alone", exc_info=True)
    return [_accept_alone(request, now) for request in requests]


def _accept_alone(request: SendRequest, now: int) -> Message | Exception:
    try:
        return _accept_together([request], now)[0]
    except peewee.DatabaseError as error:
        return error


def _accept_together(requests: list[SendRequest], now: int) -> list[Message | Exception]:
    if is_postgres() and "message.created" not in outbox.subscribed_event_types():
        # No event to write with them: the messages and the conversations' last messages are one statement,
        # which is atomic by itself, with no transaction to open and commit around it.
        results = _outbound_messages(requests, now)
        messages = _accepted(results)
        if messages:
            rows, params = _inserted(messages)
            last_rows, last_params = _last_messages(messages)
            statement = f"WITH inserted AS ({_INSERT_OUTBOUND}) {_LAST_MESSAGES}"
            execute(statement, *params, *last_params, messages=rows, conversations=last_rows)
        return results
    with write_transaction():
        results = _outbound_messages(requests, now)
        messages = _accepted(results)
        if messages:
            rows, params = _inserted(messages)
            execute(_INSERT_OUTBOUND, *params, messages=rows)
            last_rows, last_params = _last_messages(messages)
            execute(_LAST_MESSAGES, *last_params, conversations=last_rows)
            # After the conversations' row locks, as insert_message does: events get outbox ids in commit order.
            for message in messages:
                outbox.message_created(message)
        return results


def _accepted(results: list[Message | Exception]) -> list[Message]:
    return [result for result in results if isinstance(result, Message)]


def _outbound_messages(requests: list[SendRequest], now: int) -> list[Message | Exception]:
    """The messages to store, each once its options, conversation, channel and window are checked."""
    conversation_ids = list(dict.fromkeys(request.conversation_id for request in requests))
    rows = execute(_CONVERSATIONS, *conversation_ids, ids=placeholders(len(conversation_ids))).fetchall()
    conversations = {row[0]: row[1:] for row in rows}
    results: list[Message | Exception] = []
    for request in requests:
        try:
            results.append(_outbound_message(request, conversations.get(request.conversation_id), now))
        except (BadRequest, NotFound) as error:
            results.append(error)
    return results


def _outbound_message(request: SendRequest, conversation: tuple[Any, ...] | None, now: int) -> Message:
    messaging_type = check_send_options(request.messaging_type, request.tag)
    if conversation is None:
        raise NotFound(f"conversation {request.conversation_id} does not exist")
    last_contact_message_at, channel_id, connected, page_token, page_id = conversation
    if not connected or not page_token:
        raise BadRequest(f"the channel {channel_id} of this conversation is disconnected; reconnect the page to send")
    if request.notification_token is None:
        check_window(last_contact_message_at, request.tag, now)
    else:
        check_notification_token(request.conversation_id, request.notification_token, now)
    check_media(request.message)
    return Message(
        id=new_id(),
        conversation=request.conversation_id,
        channel=channel_id,
        source_message_id=None,
        content=request.message,
        delivery_state="pending",
        from_contact=False,
        sender_id=page_id,
        sent_at=now,
        metadata={},
        messaging_type=messaging_type,
        message_tag=request.tag,
        notification_token=request.notification_token,
        created_at=now_ms(),
    )


def _inserted(messages: list[Message]) -> tuple[str, list[Any]]:
    """The rows of ``messages`` for :data:`_INSERT_OUTBOUND`, and their parameters."""
    params: list[Any] = []
    for message in messages:
        params += (
            message.id,
            message.conversation_id,
            message.channel_id,
            Message.content.db_value(message.content),
            message.sender_id,
            message.sent_at,
            Message.metadata.db_value(message.metadata),
            message.created_at,
            message.created_at,
            message.messaging_type,
            message.message_tag,
            message.notification_token,
        )
    return placeholders(len(messages), _OUTBOUND_ROW), params


def _last_messages(messages: list[Message]) -> tuple[str, list[Any]]:
    """The rows for :data:`_LAST_MESSAGES`: the batch's last message of each conversation (they share sent_at)."""
    last = {message.conversation_id: message for message in messages}
    params: list[Any] = []
    for message in last.values():
        params += (message.conversation_id, message.id, message.sent_at)
    return placeholders(len(last), "({p}, {p}, {p})"), params
