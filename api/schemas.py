"""What each endpoint takes and answers, described once, as data: msgspec types that validate the requests
(airy_actors.strict_json decodes a body into them) and that api.openapi turns into the OpenAPI document.

Sizes follow the columns that keep the values (airy_actors/models): an id is 36 characters, a page id 64, a
source 32; the text columns hold what the old endpoints allowed (a name 1024, a URL 2048, a token 4096).
Every string must say something and hold no NUL (``TEXT_PATTERN``). Request bodies refuse unknown fields, so
a misspelt field is a 400 naming it rather than silently ignored.

The answers are described for the document only: the domain builds them (airy_actors.representations and
friends), and tests/api/test_openapi.py checks real answers against these descriptions.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from airy_actors import strict_json
from airy_actors.errors import BadRequest
from airy_actors.models.integrations import EVENT_TYPES
from airy_actors.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page_size_from

# --- fields ---------------------------------------------------------------------------------------------


def text(max_length: int, description: str) -> Any:
    """A string type: not blank, no NUL, at most ``max_length`` characters (what its column holds)."""
    return Annotated[
        str, Meta(min_length=1, max_length=max_length, pattern=strict_json.TEXT_PATTERN, description=description)
    ]


ID_LENGTH = 36  # every id column: CharField(max_length=36)
PAGE_ID_LENGTH = 64  # Channel.source_channel_id
SOURCE_LENGTH = 32  # Channel.source
NAME_LENGTH = 1024
URL_LENGTH = 2048
TOKEN_LENGTH = 4096
CURSOR_LENGTH = 512  # the cursors this API makes are under 120 characters

ChannelId = text(ID_LENGTH, "A channel's id.")
ConversationId = text(ID_LENGTH, "A conversation's id.")
MessageId = text(ID_LENGTH, "A message's id.")
JobId = text(ID_LENGTH, "The id of a job that a synchronous endpoint answered with 202.")
SubscriptionId = text(ID_LENGTH, "A webhook subscription's id.")
DeliveryId = text(ID_LENGTH, "A webhook delivery's id.")
PageId = text(PAGE_ID_LENGTH, "The Facebook page's id.")
Token = text(TOKEN_LENGTH, "A Facebook access token. Never returned, never logged.")
Name = text(NAME_LENGTH, "A display name.")
ImageUrl = text(URL_LENGTH, "The URL of a picture.")
Cursor = Annotated[
    str,
    Meta(
        max_length=CURSOR_LENGTH,
        description="A page's `next_cursor` or `previous_cursor`, as an earlier answer gave it. "
        "Absent or empty: the first page.",
    ),
]
# Decoded by hand (see Paged.page): any integer, however large, is clamped, and converting one of a million
# digits would cost seconds; msgspec keeps it as raw JSON text.
PageSize = Annotated[
    Raw,
    Meta(
        description=f"How many items a page holds: {DEFAULT_PAGE_SIZE} when absent; "
        f"more than {MAX_PAGE_SIZE}, however many, is {MAX_PAGE_SIZE}.",
        extra_json_schema={"type": ["integer", "null"], "minimum": 1},
    ),
]
Source = text(SOURCE_LENGTH, "A source of channels, e.g. `facebook`.")
WebhookUrl = text(URL_LENGTH, "Where the events are posted: http or https, a host name or a public address.")
SignatureKey = text(NAME_LENGTH, "The key that signs every delivery (X-Airy-Content-Signature). Never shown again.")
Headers = Annotated[
    dict[str, Any],
    Meta(
        max_length=32,
        description="Headers sent with every delivery, e.g. a receiver's credentials. Their values are never shown.",
        extra_json_schema={"additionalProperties": {"type": "string", "maxLength": 8192}},
    ),
]
AttachmentType = text(32, "`image`, `video`, `audio`, `file`, `template`...")
MessagingType = Literal["RESPONSE", "UPDATE", "MESSAGE_TAG"]
MessageTag = Literal[
    "HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "CUSTOMER_FEEDBACK"
]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: a JSON object whose fields are all known."""


class Paged(Body):
    """A request for one page of a list."""

    cursor: Cursor | None = None
    page_size: PageSize = None  # type: ignore[assignment]

    def page(self) -> dict[str, Any]:
        """``cursor`` and ``page_size`` as the keyword arguments of a list in the domain.

        Raises:
          BadRequest: when page_size is not a positive integer.
        """
        return {"cursor": self.cursor or None, "page_size": page_size_of(self.page_size)}


_LONG_INTEGER = re.compile(rb"\s*(-?)[1-9][0-9]{3,}\s*")


def page_size_of(raw: Raw | None) -> int:
    """The page size that a request's raw ``page_size`` asks for: default, clamped, or refused (BadRequest)."""
    if raw is None:
        return page_size_from(None)
    text = bytes(raw)
    long_integer = _LONG_INTEGER.fullmatch(text)
    if long_integer:  # more digits than any page: no need to convert them
        return page_size_from(-1 if long_integer[1] else MAX_PAGE_SIZE)
    try:
        value = strict_json.loads(text)
    except BadRequest:
        raise BadRequest("page_size: expected an integer") from None
    return page_size_from(value)


# --- requests -------------------------------------------------------------------------------------------


class FacebookConnect(Body):
    """Connects a Facebook page with its page token."""

    page_id: PageId
    page_token: Token
    name: Name | None = None
    image_url: ImageUrl | None = None


class FacebookDisconnect(Body):
    channel_id: ChannelId


class FacebookExplore(Body):
    auth_token: Annotated[Token, Meta(description="A Facebook user access token.")]


class JobsInfo(Body):
    job_id: JobId


class ChannelsList(Body):
    source: Source | None = None


class ChannelsInfo(Body):
    channel_id: ChannelId


class ChannelsUpdate(Body):
    channel_id: ChannelId
    name: Name | None = None
    image_url: ImageUrl | None = None


class ConversationFilters(Body):
    channel_id: ChannelId | None = None
    display_name: Annotated[Name, Meta(description="Part of the contact's name.")] | None = None


class ConversationsList(Paged, kw_only=True):
    filters: ConversationFilters | None = None


class ConversationsInfo(Body):
    conversation_id: ConversationId


class ConversationsRead(Body):
    conversation_id: ConversationId


class MessagesList(Paged, kw_only=True):  # kw_only: required fields after Paged's
    conversation_id: ConversationId


class MessagesInfo(Body):
    message_id: MessageId


class Attachment(Struct):
    type: AttachmentType
    payload: dict[str, Any] | None = None


class OutboundMessage(Struct):
    """The Send API's ``message``, forwarded as it is: the fields that Facebook knows are checked for their
    types; Facebook checks the rest (its limits, such as 2000 characters of text, come back as its reason)."""

    text: str | None = None
    attachment: Attachment | None = None
    quick_replies: list[dict[str, Any]] | None = None
    metadata: str | None = None


class MessagesSend(Body):
    conversation_id: ConversationId
    message: Annotated[
        dict[str, Any],
        Meta(min_length=1, extra_json_schema={"$ref": "#/components/schemas/OutboundMessage"}),
    ]
    messaging_type: MessagingType | None = None
    tag: MessageTag | None = None

    def __post_init__(self) -> None:
        try:
            msgspec.convert(self.message, OutboundMessage)
        except msgspec.ValidationError as error:
            # msgspec wraps this one without a path: the message names the field itself.
            raise ValueError(strict_json.describe(error, OutboundMessage, at="message")) from None


class WebhooksSubscribe(Body):
    url: WebhookUrl
    headers: Headers | None = None
    events: Annotated[list[EventType], Meta(min_length=1)] | None = None
    signature_key: SignatureKey | None = None


class WebhooksId(Body):
    id: SubscriptionId


class WebhooksList(Body):
    pass


class WebhooksDeliveries(Paged, kw_only=True):
    id: SubscriptionId


class WebhooksReplay(Body):
    delivery_id: DeliveryId


class FacebookWebhook(Struct):
    """Meta's webhook body as Meta signs it: stored as it is, whatever its fields, and processed by actors."""

    object: str | None = None
    entry: list[dict[str, Any]] | None = None


# --- answers --------------------------------------------------------------------------------------------

Timestamp = Annotated[str, Meta(description="ISO-8601 UTC with milliseconds: 2021-02-02T10:00:00.000Z")]


class Error(Struct):
    """Every error: what is wrong, naming the field."""

    message: str


class Empty(Struct):
    """Nothing to say: the request was accepted."""


class Received(Struct):
    status: Literal["received"]


class Channel(Struct):
    id: str
    name: str | None
    image_url: str | None
    source: str
    source_channel_id: str
    connected: bool
    webhook_subscribed: bool
    token_valid: bool


class ChannelList(Struct):
    data: list[Channel]


class JobPending(Struct):
    """The work goes on past AIRY_SYNC_TIMEOUT_MS: poll ``jobs.info`` with this id."""

    job_id: str
    status: Literal["pending"]


class JobInfo(Struct):
    job_id: str
    status: Literal["pending", "succeeded", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


class ExploredPage(Struct):
    page_id: str
    name: str
    connected: bool
    image_url: str | None = None
    instagram_account_id: str | None = None


class ExploredPages(Struct):
    data: list[ExploredPage]


class Sender(Struct):
    id: str


class Message(Struct):
    id: str
    content: dict[str, Any]
    delivery_state: Literal["pending", "delivered", "failed"]
    from_contact: bool
    sender: Sender
    source: str
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
    url: str
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


class Health(Struct):
    status: Literal["ok", "unavailable"]
    database: str
    broker: str
    message: str | None = None
