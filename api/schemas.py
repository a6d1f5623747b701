"""What each endpoint takes, described once, as data (what it answers: :mod:`api.answer_schemas`).

The request types are msgspec Structs that :func:`api.bodies.read_json` converts every JSON body into, so that
they validate the requests; :mod:`api.openapi` turns the same types into the OpenAPI document. Nothing else
describes a body, so the document cannot drift from what the endpoints enforce.

Lengths are those the endpoints have always allowed (an id 1024 characters unless its column is narrower, a
page or channel id 64, a URL 2048, a token 4096). Every string must say something and hold no NUL, which
PostgreSQL cannot store (:data:`TEXT_PATTERN`). Unknown top-level fields are ignored, as they always were:
clients that send more than an endpoint reads keep working. Unknown filters are refused (a misspelt filter
would silently select everything).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from msgspec import Meta, Struct

from airy_actors.models.integrations import EVENT_TYPES
from airy_actors.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page_size_from
from airy_actors.sending.acceptance import MESSAGING_TYPES

# Not blank and no NUL. msgspec searches with Python's re, OpenAPI tools with ECMA regexes: both read this alike.
TEXT_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
# A cursor may also be empty: the API's own "no such page", which asks for the first page.
CURSOR_PATTERN = r"^([^\x00]*[^\s\x00][^\x00]*)?$"

TEXT_LENGTH = 1024  # what a string field held unless its column is narrower
CHANNEL_ID_LENGTH = 64
URL_LENGTH = 2048
TOKEN_LENGTH = 4096
SOURCE_LENGTH = 32
EVENT_ID_LENGTH = 36  # FailedEvent.id
HANDOVER_ID_LENGTH = 255
HANDOVER_METADATA_LENGTH = 1000  # Facebook's limit on a handover's metadata string


def text(max_length: int = TEXT_LENGTH, description: str | None = None) -> Any:
    """A string type: not blank, no NUL, at most ``max_length`` characters."""
    return Annotated[str, Meta(max_length=max_length, pattern=TEXT_PATTERN, description=description)]


ChannelId = text(CHANNEL_ID_LENGTH, "A channel's id.")
ConversationId = text(description="A conversation's id.")
MessageId = text(description="A message's id.")
PageId = text(CHANNEL_ID_LENGTH, "The Facebook page's id.")
Token = text(TOKEN_LENGTH, "A Facebook access token. Never returned, never logged.")
Name = text(description="A display name.")
ImageUrl = text(URL_LENGTH, "The URL of a picture.")
Cursor = Annotated[
    str,
    Meta(
        max_length=TEXT_LENGTH,
        pattern=CURSOR_PATTERN,
        description="A page's `next_cursor` or `previous_cursor`, as an earlier answer gave it. "
        "Absent or empty: the first page.",
    ),
]
# Checked by airy_actors.pagination.page_size_from, whatever the JSON value: an integer of any size is clamped
# (orjson reads one past 64 bits as a float), and its refusals say "page_size must be ...".
PageSize = Annotated[
    Any,
    Meta(
        description=f"How many items a page holds: {DEFAULT_PAGE_SIZE} when absent; "
        f"more than {MAX_PAGE_SIZE}, however many, is {MAX_PAGE_SIZE}.",
        extra_json_schema={"type": ["integer", "null"], "minimum": 1},
    ),
]
AuthToken = text(TOKEN_LENGTH, "A Facebook user access token. Never returned, never logged.")
AccountId = text(CHANNEL_ID_LENGTH, "The Instagram professional account's id.")
JobId = text(CHANNEL_ID_LENGTH, "The id of a job that a synchronous endpoint answered with 202.")
ChannelSource = text(SOURCE_LENGTH, "Only the channels of this source: `facebook` or `instagram`.")
FilterChannelId = text(description="Only the conversations of this channel.")
DisplayName = text(description="Part of the contact's name.")
Tag = text(description="A message tag, e.g. `HUMAN_AGENT`, to send outside the 24-hour window.")
NotificationToken = text(description="A recurring notification token of the contact (from an optin).")
HandoverConversationId = text(HANDOVER_ID_LENGTH, "A conversation's id.")
TargetAppId = text(HANDOVER_ID_LENGTH, "The app that receives the thread.")
HandoverMetadata = text(HANDOVER_METADATA_LENGTH, "Passed on to the app that receives (or had) the thread.")
WebhookUrl = text(URL_LENGTH, "Where the events are posted: http or https, a host name or a public address.")
SignatureKey = text(description="Signs every delivery (X-Airy-Content-Signature). Never shown again.")
SubscriptionId = text(description="A webhook subscription's id.")
DeliveryId = text(description="A failed delivery's id.")
FailedEventId = text(EVENT_ID_LENGTH, "A failed event's id.")
# Checked by the domain (airy_actors.integrations.targets), which names the header that is wrong.
Headers = Annotated[
    dict[str, Any],
    Meta(
        description="Headers sent with every delivery, e.g. a receiver's credentials. Their values are never shown; "
        "connection headers and X-Airy-* are refused.",
        extra_json_schema={"additionalProperties": {"type": "string"}},
    ),
]
MessagingType = Literal[MESSAGING_TYPES]  # type: ignore[valid-type]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class Body(Struct, kw_only=True):
    """A request body: a JSON object. Fields it does not name are ignored."""


class Paged(Body, kw_only=True):
    """A request for one page of a list."""

    cursor: Cursor | None = None
    page_size: PageSize = None

    def page(self) -> dict[str, Any]:
        """``cursor`` and ``page_size`` as the keyword arguments of a list in the domain.

        ``cursor: ""`` is the API's own "no such page" of a first page: the first page, like no cursor.

        Raises:
          BadRequest: when page_size is not a positive integer.
        """
        return {"cursor": self.cursor or None, "page_size": page_size_from(self.page_size)}


class Nothing(Body):
    """No field is read; an empty body is an empty object."""


class FacebookConnect(Body):
    """Connects a Facebook page with its page token."""

    page_id: PageId
    page_token: Token
    name: Name | None = None
    image_url: ImageUrl | None = None


class FacebookExplore(Body):
    """Lists the pages that a user token manages."""

    auth_token: AuthToken


class ChannelRef(Body):
    """Names a channel."""

    channel_id: ChannelId


class InstagramConnect(Body):
    """Connects an Instagram professional account through the Facebook page it is linked to."""

    page_id: PageId
    page_token: Token
    account_id: AccountId
    name: Name | None = None
    image_url: ImageUrl | None = None


class JobsInfo(Body):
    job_id: JobId


class ChannelsList(Body):
    source: ChannelSource | None = None


class ChannelsUpdate(Body):
    channel_id: ChannelId
    name: Name | None = None
    image_url: ImageUrl | None = None


class ConversationFilters(Struct, forbid_unknown_fields=True, kw_only=True):
    """What a conversation list selects. An unknown filter is refused."""

    known_as: ClassVar[str] = "filter"

    channel_id: FilterChannelId | None = None
    display_name: DisplayName | None = None


class ConversationsList(Paged, kw_only=True):
    filters: ConversationFilters | None = None


class ConversationRef(Body):
    """Names a conversation."""

    conversation_id: ConversationId


class MessagesList(Paged, kw_only=True):
    conversation_id: ConversationId


class MessagesInfo(Body):
    message_id: MessageId


class MessagesSend(Body):
    """Sends a message into a conversation; it is answered at once, `pending`."""

    conversation_id: ConversationId
    message: Annotated[
        dict[str, Any],
        Meta(
            min_length=1,
            description='The Send API\'s `message`, forwarded as it is: `{"text"}`, or '
            '`{"attachment": {"type", "payload": {"media_id"}}}` for an uploaded file.',
            extra={"when_empty": "give it text or an attachment"},
        ),
    ]
    messaging_type: MessagingType | None = None
    tag: Tag | None = None
    notification_token: NotificationToken | None = None


class PassThreadControl(Body):
    conversation_id: HandoverConversationId
    target_app_id: TargetAppId
    metadata: HandoverMetadata | None = None


class TakeThreadControl(Body):
    conversation_id: HandoverConversationId
    metadata: HandoverMetadata | None = None


class WebhooksSubscribe(Body):
    """Subscribes a URL to the integrator events."""

    url: WebhookUrl
    headers: Headers | None = None
    events: Annotated[list[EventType], Meta(min_length=1, description="Absent: every event type.")] | None = None
    signature_key: SignatureKey | None = None


class SubscriptionRef(Body):
    """Names a webhook subscription."""

    id: SubscriptionId


class WebhooksDeliveries(Paged, kw_only=True):
    id: SubscriptionId


class WebhooksReplay(Body):
    delivery_id: DeliveryId


class EventsRetry(Body):
    id: FailedEventId


class FacebookWebhook(Struct):
    """Meta's webhook body, signed by Meta: stored as it is and processed by actors (Meta's format)."""

    object: str | None = None
    entry: list[dict[str, Any]] | None = None
