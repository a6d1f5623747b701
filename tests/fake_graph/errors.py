"""Facebook's error envelope and the ready-made errors the fake answers with.

Every error is the ``error`` object of Facebook's envelope
``{"error": {"message", "type", "code", "error_subcode"?, "fbtrace_id"}}``. Pass a ready-made one to
``FakeGraph.fail(error=...)``; the fake also answers with them by itself when a scenario calls for it
(an invalidated token, a stopped notification token, another app owning a thread, ...).

Codes, subcodes and wording come from Meta's "Common Error Codes" table of the Messenger Platform
(developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes) unless a
comment names another page. Where the table gives a message without the ``(#code)`` prefix that the
Graph API puts in front of it, the prefix is added, as for the errors this module always had.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

GRAPH_DOCS = "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"

# --- tokens ---

INVALID_TOKEN: dict[str, Any] = {
    "message": "Error validating access token: The session has been invalidated because the user changed "
    "their password or Facebook has changed the session for security reasons.",
    "type": "OAuthException",
    "code": 190,
    "error_subcode": 460,
    "fbtrace_id": "AQh5N1kQ0vWq9Yx2m3TfZ1c",
}
TOKEN_EXPIRED: dict[str, Any] = {
    "message": "Error validating access token: Session has expired on Tuesday, 01-Jul-25 10:00:00 PDT. "
    "The current time is Wednesday, 02-Jul-25 09:12:41 PDT.",
    "type": "OAuthException",
    "code": 190,
    "error_subcode": 463,
    "fbtrace_id": "A7pRkq2Xw0bN4sL9dE1uYhT",
}
MALFORMED_TOKEN: dict[str, Any] = {
    "message": "Invalid OAuth access token - Cannot parse access token",
    "type": "OAuthException",
    "code": 190,
    "fbtrace_id": "AZx0cV3bN8mQ2wE5rT7yU1i",
}

# --- Send API ---

USER_UNAVAILABLE: dict[str, Any] = {
    "message": "(#551) This person isn't available right now.",
    "type": "OAuthException",
    "code": 551,
    "error_subcode": 1545041,
    "fbtrace_id": "AbG4hJ6kL8zX0cV2bN4mQ6w",
}
OUTSIDE_WINDOW: dict[str, Any] = {
    "message": "(#10) This message is sent outside of allowed window. Learn more about the new policy here: "
    "https://developers.facebook.com/docs/messenger-platform/policy-overview",
    "type": "OAuthException",
    "code": 10,
    "error_subcode": 2018278,
    "fbtrace_id": "A1sD3fG5hJ7kL9zX1cV3bN5",
}
NO_MATCHING_USER: dict[str, Any] = {
    "message": "(#100) No matching user found",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018001,
    "fbtrace_id": "AmQ8wE0rT2yU4iO6pA8sD0f",
}

# --- throttling and transient failures ---

RATE_LIMITED: dict[str, Any] = {
    "message": "(#613) Calls to this api have exceeded the rate limit.",
    "type": "OAuthException",
    "code": 613,
    "fbtrace_id": "AgH2jK4lZ6xC8vB0nM2qW4e",
}
APP_RATE_LIMITED: dict[str, Any] = {
    "message": "(#4) Application request limit reached",
    "type": "OAuthException",
    "is_transient": True,
    "code": 4,
    "fbtrace_id": "ArT6yU8iO0pA2sD4fG6hJ8k",
}
PAGE_RATE_LIMITED: dict[str, Any] = {
    "message": "(#32) Page request limit reached",
    "type": "OAuthException",
    "code": 32,
    "fbtrace_id": "AlZ0xC2vB4nM6qW8eR0tY2u",
}
TRANSIENT: dict[str, Any] = {
    "message": "An unexpected error has occurred. Please retry your request later.",
    "type": "OAuthException",
    "is_transient": True,
    "code": 2,
    "fbtrace_id": "AvB8nM0qW2eR4tY6uI8oP0a",
}

# --- parameters and permissions ---

INVALID_PARAMETER: dict[str, Any] = {
    "message": "(#100) Invalid parameter",
    "type": "OAuthException",
    "code": 100,
    "fbtrace_id": "AiO4pA6sD8fG0hJ2kL4zX6c",
}
PERMISSION_DENIED: dict[str, Any] = {
    "message": "(#200) Permissions error",
    "type": "OAuthException",
    "code": 200,
    "fbtrace_id": "AsD2fG4hJ6kL8zX0cV2bN4m",
}
PAGE_TOKEN_REQUIRED: dict[str, Any] = {
    "message": "(#210) A page access token is required to request this resource.",
    "type": "OAuthException",
    "code": 210,
    "fbtrace_id": "AqW6eR8tY0uI2oP4aS6dF8g",
}

# --- handover protocol ---

THREAD_CONTROLLED_BY_ANOTHER_APP: dict[str, Any] = {
    # The table lists 2018300 in its code column; the API answers it as code 10 with that subcode
    # and this "(#10)" wording, as client code that classifies the live error records.
    "message": "(#10) Message failed to send because another app is controlling this thread now.",
    "type": "OAuthException",
    "code": 10,
    "error_subcode": 2018300,
    "fbtrace_id": "AtH8jK0lZ2xC4vB6nM8qW0e",
}
NOT_THREAD_OWNER: dict[str, Any] = {
    "message": "(#100) The action is invalid since it's not the thread owner.",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2534037,
    "fbtrace_id": "AkL2zX4cV6bN8mQ0wE2rT4y",
}
NOT_A_RECEIVER: dict[str, Any] = {
    # The table lists 2018171 in its code column with no subcode and no "(#...)" prefix; nothing
    # documents another shape, so the fake answers exactly that.
    "message": "Only available to Primary and Secondary Receivers.",
    "type": "OAuthException",
    "code": 2018171,
    "fbtrace_id": "AuI6oP8aS0dF2gH4jK6lZ8x",
}
SECONDARY_RECEIVER_HIDDEN: dict[str, Any] = {
    # Verbatim from "Get Thread Owner" (developers.facebook.com/docs/messenger-platform/handover-protocol/
    # get-thread-owner): a secondary receiver asking about a thread another secondary receiver owns.
    "message": "(#100) Denying visibility of any secondary receiver to another secondary receiver other than itself.",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018234,
    "fbtrace_id": "PsvaD93Ges2",
}

# --- recurring notifications (marketing messages) ---

NOTIFICATION_TOKEN_INVALID: dict[str, Any] = {
    # The table lists "notification_messages_token is invalid" under code 100, without a subcode.
    "message": "(#100) notification_messages_token is invalid",
    "type": "OAuthException",
    "code": 100,
    "fbtrace_id": "AcV0bN2mQ4wE6rT8yU0iO2p",
}
NOTIFICATION_TOKEN_EXPIRED: dict[str, Any] = {
    "message": "(#100) notification_messages_token has expired",
    "type": "OAuthException",
    "code": 100,
    "fbtrace_id": "AyU4iO6pA8sD0fG2hJ4kL6z",
}
NOTIFICATION_STOPPED: dict[str, Any] = {
    "message": "(#10) This user has currently stopped notification messages for this topic",
    "type": "OAuthException",
    "code": 10,
    "error_subcode": 1893015,
    "fbtrace_id": "AeR8tY0uI2oP4aS6dF8gH0j",
}
NOTIFICATION_TOO_SOON: dict[str, Any] = {
    # The table words it "Marketing Messages – There has to be a minimum delay between 2 notifications
    # for the given notification"; the first words name the feature, the rest is the message.
    "message": "(#4) There has to be a minimum delay between 2 notifications for the given notification",
    "type": "OAuthException",
    "code": 4,
    "error_subcode": 2018354,
    "fbtrace_id": "AwE2rT4yU6iO8pA0sD2fG4h",
}

# --- Attachment Upload API and attachments in sends ---

ATTACHMENT_FETCH_FAILED: dict[str, Any] = {
    "message": "(#100) Failed to fetch the file from the url. Check that the URL is valid, with a valid SSL "
    "certificate, valid file size, and that the server is responding fast enough to avoid timeouts.",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018008,
    "fbtrace_id": "AhJ6kL8zX0cV2bN4mQ6wE8r",
}
ATTACHMENT_UPLOAD_FAILED: dict[str, Any] = {
    # The table adds "A common way to trigger this error is that the provided media type does not
    # match type of file provided in the URL" to the message, as advice; the message is the first
    # sentence.
    "message": "(#100) Upload attachment failure.",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018047,
    "fbtrace_id": "AnM0qW2eR4tY6uI8oP0aS2d",
}
ATTACHMENT_NOT_OWNED: dict[str, Any] = {
    "message": "(#100) Possible invalid ID or you do not own the attachment.",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018074,
    "fbtrace_id": "AfG4hJ6kL8zX0cV2bN4mQ6w",
}
ATTACHMENT_TOO_LARGE: dict[str, Any] = {
    "message": "(#100) Attachment size exceeds allowable limit",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018109,
    "fbtrace_id": "AoP8aS0dF2gH4jK6lZ8xC0v",
}

# --- Instagram Messaging (through the linked Facebook Page) ---

IG_OUTSIDE_WINDOW: dict[str, Any] = {
    "message": "(#10) This message is sent outside of allowed window.",
    "type": "OAuthException",
    "code": 10,
    "error_subcode": 2534022,
    "fbtrace_id": "AbN6mQ8wE0rT2yU4iO6pA8s",
}
IG_NO_MATCHING_USER: dict[str, Any] = {
    "message": "(#100) No matching Instagram user",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2534014,
    "fbtrace_id": "AdF0gH2jK4lZ6xC8vB0nM2q",
}
IG_PAGE_NOT_LINKED: dict[str, Any] = {
    "message": "(#100) The page is not linked to an Instagram account",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2534013,
    "fbtrace_id": "AxC4vB6nM8qW0eR2tY4uI6o",
}
IG_INVALID_MESSAGE: dict[str, Any] = {
    "message": "(#100) Invalid message data",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2534015,
    "fbtrace_id": "ApA2sD4fG6hJ8kL0zX2cV4b",
}
IG_ACCESS_DISABLED: dict[str, Any] = {
    "message": "(#200) The account owner has disabled access to instagram direct messages.",
    "type": "OAuthException",
    "code": 200,
    "error_subcode": 2534041,
    "fbtrace_id": "AgH6jK8lZ0xC2vB4nM6qW8e",
}
IG_RATE_LIMITED: dict[str, Any] = {
    "message": "(#613) Calls to this api have exceeded the rate limit.",
    "type": "OAuthException",
    "code": 613,
    "error_subcode": 2534040,
    "fbtrace_id": "AzX0cV2bN4mQ6wE8rT0yU2i",
}


class GraphError(Exception):
    """An error answer: raised by the request handlers, turned into Facebook's error envelope."""

    def __init__(self, error: dict[str, Any], status: int = 400) -> None:
        super().__init__(error.get("message", ""))
        self.error = error
        self.status = status


def trace_id() -> str:
    """A new ``fbtrace_id``."""
    return secrets.token_urlsafe(17)


def fresh(error: dict[str, Any]) -> GraphError:
    """A ready-made error with a new ``fbtrace_id``, as each Facebook answer has."""
    return GraphError({**copy.deepcopy(error), "fbtrace_id": trace_id()})


def oauth_error(message: str, code: int = 100, subcode: int | None = None) -> GraphError:
    """An ``OAuthException`` built from its parts."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = trace_id()
    return GraphError(error)


def unsupported(method: str, object_id: str) -> GraphError:
    """Facebook's answer for an unknown object, or one the token may not see."""
    return GraphError(
        {
            "message": f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
            f"cannot be loaded due to missing permissions, or does not support this operation. {GRAPH_DOCS}",
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
            "fbtrace_id": trace_id(),
        }
    )


def nonexisting_field(name: str, node_type: str) -> GraphError:
    return oauth_error(f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")


def unknown_path(components: list[str]) -> GraphError:
    return oauth_error("Unknown path components: /" + "/".join(components))


def not_one_of(param: str, allowed: Any, got: Any) -> GraphError:
    return oauth_error(f'(#100) Param {param} must be one of {{{", ".join(allowed)}}} - got "{got}"')


def missing_parameter(name: str) -> GraphError:
    """The wording the fake uses for every missing required parameter."""
    return oauth_error(f"(#100) The parameter {name} is required")
