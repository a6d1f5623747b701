"""A fake Facebook Graph API server for the test suite.

``FakeGraph`` is a real HTTP server on 127.0.0.1 (a Starlette app served by uvicorn in a daemon
thread, on a port chosen by the OS) that speaks the formats of the Graph API endpoints the connector
uses: ``/me``, page, profile and Instagram nodes, ``/me/accounts`` with cursor paging,
``/{page_id}/subscribed_apps``, the Send API for Messenger, recurring notifications and Instagram,
the handover protocol and the Attachment Upload API. It also serves attachment files the way Meta's
CDN does. Errors use Facebook's envelope
``{"error": {"message", "type", "code", "error_subcode"?, "fbtrace_id"}}``.

Typical use::

    with FakeGraph() as fake:
        fake.add_page("1001", "Acme", token="PAGE-TOKEN")
        fake.add_contact("42", "Grace", "Hopper", "https://example.com/grace.jpg")
        fake.fail("POST", "/me/messages", error=USER_UNAVAILABLE)
        ...  # point FACEBOOK_GRAPH_URL at fake.url and exercise the product
        assert fake.sent_messages == []

All public methods are thread safe: tests may call them while the server is answering requests.

The package, one concern a module: ``errors`` (the envelope and ready-made errors), ``wire``
(request bodies and tokens), ``nodes`` (node data and ``fields``), ``core`` (identities and tokens),
``pages``, ``handover``, ``attachments``, ``messenger``, ``instagram``, ``files`` (the CDN), and
``server`` (``FakeGraph``: the HTTP server and the table of endpoints).
"""

from .attachments import AttachmentUpload
from .core import DEFAULT_APP_ID, DEFAULT_APP_NAME, PAGE_INBOX_APP_ID
from .errors import (
    APP_RATE_LIMITED,
    ATTACHMENT_FETCH_FAILED,
    ATTACHMENT_NOT_OWNED,
    ATTACHMENT_TOO_LARGE,
    ATTACHMENT_UPLOAD_FAILED,
    IG_ACCESS_DISABLED,
    IG_INVALID_MESSAGE,
    IG_NO_MATCHING_USER,
    IG_OUTSIDE_WINDOW,
    IG_PAGE_NOT_LINKED,
    IG_RATE_LIMITED,
    INVALID_PARAMETER,
    INVALID_TOKEN,
    MALFORMED_TOKEN,
    NO_MATCHING_USER,
    NOT_A_RECEIVER,
    NOT_THREAD_OWNER,
    NOTIFICATION_STOPPED,
    NOTIFICATION_TOKEN_EXPIRED,
    NOTIFICATION_TOKEN_INVALID,
    NOTIFICATION_TOO_SOON,
    OUTSIDE_WINDOW,
    PAGE_RATE_LIMITED,
    PAGE_TOKEN_REQUIRED,
    PERMISSION_DENIED,
    RATE_LIMITED,
    SECONDARY_RECEIVER_HIDDEN,
    THREAD_CONTROLLED_BY_ANOTHER_APP,
    TOKEN_EXPIRED,
    TRANSIENT,
    USER_UNAVAILABLE,
    GraphError,
)
from .messenger import MAX_TEXT_LENGTH, MESSAGING_TYPES, SENDER_ACTIONS, EchoDelivery
from .pages import DEFAULT_ACCOUNTS_LIMIT, WEBHOOK_FIELDS
from .server import FakeGraph
from .wire import DEFAULT_VERSION, RecordedRequest, UploadedFile

__all__ = [
    "APP_RATE_LIMITED",
    "ATTACHMENT_FETCH_FAILED",
    "ATTACHMENT_NOT_OWNED",
    "ATTACHMENT_TOO_LARGE",
    "ATTACHMENT_UPLOAD_FAILED",
    "DEFAULT_ACCOUNTS_LIMIT",
    "DEFAULT_APP_ID",
    "DEFAULT_APP_NAME",
    "DEFAULT_VERSION",
    "IG_ACCESS_DISABLED",
    "IG_INVALID_MESSAGE",
    "IG_NO_MATCHING_USER",
    "IG_OUTSIDE_WINDOW",
    "IG_PAGE_NOT_LINKED",
    "IG_RATE_LIMITED",
    "INVALID_PARAMETER",
    "INVALID_TOKEN",
    "MALFORMED_TOKEN",
    "MAX_TEXT_LENGTH",
    "MESSAGING_TYPES",
    "NOTIFICATION_STOPPED",
    "NOTIFICATION_TOKEN_EXPIRED",
    "NOTIFICATION_TOKEN_INVALID",
    "NOTIFICATION_TOO_SOON",
    "NOT_A_RECEIVER",
    "NOT_THREAD_OWNER",
    "NO_MATCHING_USER",
    "OUTSIDE_WINDOW",
    "PAGE_INBOX_APP_ID",
    "PAGE_RATE_LIMITED",
    "PAGE_TOKEN_REQUIRED",
    "PERMISSION_DENIED",
    "RATE_LIMITED",
    "SECONDARY_RECEIVER_HIDDEN",
    "SENDER_ACTIONS",
    "THREAD_CONTROLLED_BY_ANOTHER_APP",
    "TOKEN_EXPIRED",
    "TRANSIENT",
    "USER_UNAVAILABLE",
    "WEBHOOK_FIELDS",
    "AttachmentUpload",
    "EchoDelivery",
    "FakeGraph",
    "GraphError",
    "RecordedRequest",
    "UploadedFile",
]
