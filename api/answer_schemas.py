"""What each endpoint answers, as msgspec Structs that :mod:`api.openapi` turns into the document's schemas.

They describe the answers for the document only: the domain builds them (airy_actors.representations and
friends), and tests/api/test_openapi.py checks real answers, and Schemathesis every answer, against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from airy_actors.models import SOURCES
from api.schemas import EventType

Timestamp = Annotated[str, Meta(description="ISO-8601 UTC with milliseconds: 2021-02-02T10:00:00.000Z")]
Source = Literal[SOURCES]  # type: ignore[valid-type]


class Error(Struct):
    """Every error: what is wrong, naming the field (or the token that made the body unreadable)."""

    message: str


class Empty(Struct):
    """Nothing to say: the request was accepted."""


class Received(Struct):
    """The webhook request is stored; it will be processed."""

    status: Literal["received"]


class Channel(Struct):
    id: str
    name: str | None
    image_url: str | None
    source: Source
    source_channel_id: str
    connected: bool
    webhook_subscribed: bool
    token_valid: bool


class ChannelList(Struct):
    data: list[Channel]


class JobPending(Struct):
    """The work goes on past AIRY_SYNC_TIMEOUT_MS: poll `jobs.info` with this id."""

    job_id: str
    status: Literal["pending"]


class JobInfo(Struct):
    job_id: str
    status: Literal["pending", "succeeded", "failed"]
    result: Annotated[dict[str, Any], Meta(description="What the synchronous call would have answered.")] | None = None
    error: Annotated[str, Meta(description="Why it failed.")] | None = None


class ExploredPage(Struct):
    page_id: str
    name: str | None
    connected: bool
    image_url: str | None = None
    instagram_account_id: str | None = None


class ExploredPages(Struct):
    data: list[ExploredPage]


class Sender(Struct):
    id: str | None


class Message(Struct):
    id: str
    content: Annotated[
        dict[str, Any],
        Meta(description="Inbound: Meta's messaging event as received. Outbound: the `message` that was sent."),
    ]
    delivery_state: Literal["pending", "delivered", "failed"]
    from_contact: bool
    sender: Sender
    source: Source
    sent_at: Timestamp
    metadata: dict[str, Any]


class Contact(Struct):
    display_name: str
    avatar_url: str | None


class Conversation(Struct):
    id: str
    channel: Channel
    created_at: Timestamp
    contact: Contact
    last_message: Message | None
    unread_message_count: int
    metadata: Annotated[
        dict[str, Any], Meta(description="Referrals, notification tokens, the thread's owner; `{}` when none.")
    ]


class ResponseMetadata(Struct):
    previous_cursor: Annotated[str, Meta(description="Empty when there is no such page.")]
    next_cursor: Annotated[str, Meta(description="Empty when there is no such page.")]
    filtered_total: int
    total: int


class ConversationPage(Struct):
    data: list[Conversation]
    response_metadata: ResponseMetadata


class MessagePage(Struct):
    data: list[Message]
    response_metadata: ResponseMetadata


class Subscription(Struct):
    id: str
    url: Annotated[str, Meta(description="With any user:password masked.")]
    headers: Annotated[dict[str, str], Meta(description="Header names; their values are masked.")]
    events: list[EventType]
    signature_key_set: bool
    created_at: Timestamp
    consecutive_failures: int


class SubscriptionList(Struct):
    data: list[Subscription]


class Delivery(Struct):
    id: str
    subscription_id: str
    event_id: str
    type: EventType
    ordering_key: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    http_status: int | None
    error: str | None
    created_at: Timestamp
    last_attempt_at: Timestamp | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None


class DeliveryPage(Struct):
    data: list[Delivery]
    response_metadata: ResponseMetadata


class FailedEvent(Struct):
    id: str
    webhook_request_id: int
    page_id: str | None
    kind: str
    error: str
    attempts: int
    received_at: Timestamp


class FailedEventPage(Struct):
    data: list[FailedEvent]
    response_metadata: ResponseMetadata


class Media(Struct):
    """An uploaded file, to send with `{"attachment": {"type", "payload": {"media_id"}}}`."""

    media_id: str
    url: Annotated[str, Meta(description="The service's own signed URL of the file.")]
    content_type: str
    size: int


class Spool(Struct):
    bytes: int | None
    spooling: bool


class Health(Struct):
    """`ok` when the database and the broker answer and a live worker serves every queue."""

    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    broker: Literal["ok", "unavailable"]
    spool: Spool
    queues: Annotated[dict[str, int], Meta(description="Live worker processes per queue.")] | None = None
    message: Annotated[str, Meta(description="What is missing.")] | None = None
