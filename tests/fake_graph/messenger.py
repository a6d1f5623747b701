"""Messenger: contacts (PSIDs), the Send API, recurring notification tokens, and echo webhooks.

``POST /{page_id}/messages`` (and ``/me/messages``) with a page token sends to ``recipient.id`` (a
PSID), or, with ``recipient.notification_messages_token``, sends a recurring notification (a
"marketing message") to whoever opted in with that token. Sends to an IGSID are Instagram's (see
``instagram``); ``FakeGraph`` routes each send to its platform.
"""

from __future__ import annotations

import copy
import hmac
import json
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any

import httpx

from .attachments import Attachments
from .core import number_from
from .errors import (
    NO_MATCHING_USER,
    NOTIFICATION_STOPPED,
    NOTIFICATION_TOKEN_EXPIRED,
    NOTIFICATION_TOKEN_INVALID,
    OUTSIDE_WINDOW,
    fresh,
    not_one_of,
    oauth_error,
    unsupported,
)
from .handover import Handover
from .nodes import Caller, Contact, Page, render, requested_fields
from .wire import Call, json_param

MAX_TEXT_LENGTH = 2000
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
SENDER_ACTIONS = ("mark_seen", "typing_on", "typing_off")
NOTIFICATION_TOKEN_STATUSES = ("active", "expired", "stopped", "invalid")


@dataclass(frozen=True)
class EchoDelivery:
    """One ``message_echoes`` webhook the fake posted (see ``FakeGraph.deliver_echoes_to``)."""

    url: str
    body: bytes
    """The exact signed bytes."""
    payload: dict[str, Any]
    status: int | None
    """The receiver's HTTP status, or None when the POST failed."""


@dataclass
class _NotificationToken:
    token: str
    psid: str
    page_id: str | None
    status: str


class Messenger(Handover, Attachments):
    """People on Messenger and what the pages sent them."""

    def _init_messenger_state(self) -> None:
        self.strict_recipients = False
        """When True, sending to a PSID not added with ``add_contact`` fails with ``NO_MATCHING_USER``,
        and sending with a notification token not added with ``add_notification_token`` fails with
        ``NOTIFICATION_TOKEN_INVALID``."""
        self._contacts: dict[str, Contact] = {}
        self._sent: list[dict[str, Any]] = []
        self._sender_actions: list[dict[str, Any]] = []
        self._notification_tokens: dict[str, _NotificationToken] = {}
        self._closed_windows: set[str] = set()
        self._echo_target: tuple[str, str] | None = None
        self._echoes: list[EchoDelivery] = []

    def _init_echo_delivery(self) -> None:
        """The echo thread outlives ``reset`` (it is shut down by ``stop``)."""
        self._echo_futures: list[Future[None]] = []
        self._echo_executor: ThreadPoolExecutor | None = None

    # --- scenario set-up ---

    def add_contact(self, psid: str, first_name: str, last_name: str, profile_pic: str) -> None:
        """Add a person, known by their page-scoped id, visible to every page token."""
        with self._lock:
            self._contacts[psid] = Contact(psid, first_name, last_name, profile_pic)

    def add_notification_token(self, token: str, psid: str, *, page_id: str | None = None) -> None:
        """Add an active recurring notification token, as an ``optin`` webhook hands it out.

        Parameters:
          psid: the person who opted in; sends with the token answer it as ``recipient_id``.
          page_id: the page the person opted in to; sends from another page fail as an invalid token.
            None: any page.
        """
        with self._lock:
            self._notification_tokens[token] = _NotificationToken(token, psid, page_id, "active")

    def set_notification_token_status(self, token: str, status: str) -> None:
        """Make later sends with ``token`` fail the way Facebook does, or work again.

        Parameters:
          status: ``"expired"`` (``NOTIFICATION_TOKEN_EXPIRED``), ``"stopped"`` (the person tapped
            "Stop these messages": ``NOTIFICATION_STOPPED``), ``"invalid"`` (a token Facebook does not
            know: ``NOTIFICATION_TOKEN_INVALID``) or ``"active"``. A token not added yet is added for a
            PSID derived from it.
        """
        if status not in NOTIFICATION_TOKEN_STATUSES:
            raise ValueError(f"status must be one of {NOTIFICATION_TOKEN_STATUSES}")
        with self._lock:
            entry = self._notification_tokens.get(token)
            if entry is None:
                entry = self._notification_tokens[token] = _NotificationToken(token, number_from(token), None, status)
            entry.status = status

    def close_window(self, user_id: str) -> None:
        """Let the messaging window of ``user_id`` (a PSID or IGSID) close: later messages to them fail
        with ``OUTSIDE_WINDOW`` (``IG_OUTSIDE_WINDOW`` on Instagram) unless they carry the
        ``HUMAN_AGENT`` tag; recurring notifications still go through."""
        with self._lock:
            self._closed_windows.add(user_id)

    def open_window(self, user_id: str) -> None:
        """Undo ``close_window``: the person wrote again."""
        with self._lock:
            self._closed_windows.discard(user_id)

    def deliver_echoes_to(self, url: str, app_secret: str) -> None:
        """After each accepted Messenger message, POST its ``message_echoes`` webhook to ``url``.

        The body is signed like Facebook's (``X-Hub-Signature-256`` and ``X-Hub-Signature``) and,
        like Facebook's, escapes ``/`` and non-ASCII characters, so receivers must verify the raw
        bytes. Delivery happens in order from a background thread; failures are ignored (see
        ``echoes``).
        """
        with self._lock:
            self._echo_target = (url, app_secret)
            if self._echo_executor is None:
                self._echo_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-graph-echo")

    def flush_echoes(self, timeout: float = 10.0) -> None:
        """Wait until the echoes queued so far have been posted (or ``timeout`` passes)."""
        with self._lock:
            pending = list(self._echo_futures)
        wait_futures(pending, timeout=timeout)
        with self._lock:
            self._echo_futures = [future for future in self._echo_futures if not future.done()]

    # --- recordings ---

    @property
    def sent_messages(self) -> list[dict[str, Any]]:
        """Every accepted Messenger message: the Send API body, plus ``page_id`` and the returned
        ``message_id``. Recurring notifications are here too, with their ``recipient`` as sent
        (``{"notification_messages_token": ...}``)."""
        with self._lock:
            return copy.deepcopy(self._sent)

    @property
    def sender_actions(self) -> list[dict[str, Any]]:
        """Every accepted Messenger ``sender_action`` body (typing indicators, mark seen), plus ``page_id``."""
        with self._lock:
            return copy.deepcopy(self._sender_actions)

    @property
    def echoes(self) -> list[EchoDelivery]:
        """Every echo webhook posted so far."""
        with self._lock:
            return list(self._echoes)

    # --- handlers ---

    def _get_contact(self, call: Call, caller: Caller, contact: Contact) -> dict[str, Any]:
        if not isinstance(caller, Page):
            raise unsupported(call.method, contact.psid)
        available = {
            "id": contact.psid,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "name": f"{contact.first_name} {contact.last_name}",
            "profile_pic": contact.profile_pic,
        }
        fields = requested_fields(call.params.get("fields"), ("first_name", "last_name", "profile_pic", "id"))
        return render("User", available, fields)

    def _send_messenger(self, call: Call, page: Page, recipient: dict[str, Any]) -> dict[str, Any]:
        psid = str(recipient["id"])
        message, sender_action = self._message_or_action(call)
        if self.strict_recipients and psid not in self._contacts:
            raise fresh(NO_MATCHING_USER)
        body = self._recorded_body(call, recipient)
        if sender_action is not None:
            self._sender_actions.append({**body, "page_id": page.id})
            return {"recipient_id": psid}
        self._check_message(call.params, message, MAX_TEXT_LENGTH)
        self._check_window(psid, call.params, OUTSIDE_WINDOW)
        self._require_thread_control(page.id, psid)
        self._check_attachment_reference(page.id, message)
        return self._accept(page, psid, body, message)

    def _send_notification(self, call: Call, page: Page, recipient: dict[str, Any]) -> dict[str, Any]:
        """A recurring notification: ``recipient`` is ``{"notification_messages_token": TOKEN}``."""
        token = str(recipient["notification_messages_token"])
        message, sender_action = self._message_or_action(call)
        if sender_action is not None:
            # Sender actions address a person by id only (Send API reference).
            raise oauth_error("(#100) param recipient must be non-empty.")
        psid = self._notification_recipient(token, page.id)
        self._check_message(call.params, message, MAX_TEXT_LENGTH)
        self._require_thread_control(page.id, psid)
        self._check_attachment_reference(page.id, message)
        return self._accept(page, psid, self._recorded_body(call, recipient), message)

    # --- shared by the Send API of both platforms ---

    @staticmethod
    def _message_or_action(call: Call) -> tuple[Any, str | None]:
        message = json_param(call.params, "message")
        sender_action = call.params.get("sender_action")
        if message is None and sender_action is None:
            raise oauth_error("(#100) Must send either message or sender action")
        if sender_action is not None and sender_action not in SENDER_ACTIONS:
            raise not_one_of("sender_action", SENDER_ACTIONS, sender_action)
        return message, sender_action

    @staticmethod
    def _recorded_body(call: Call, recipient: dict[str, Any]) -> dict[str, Any]:
        body = {**copy.deepcopy(call.params), "recipient": recipient}
        body.pop("appsecret_proof", None)
        return body

    @staticmethod
    def _check_message(params: dict[str, Any], message: Any, max_text_length: int) -> None:
        messaging_type = params.get("messaging_type")
        if messaging_type is not None and messaging_type not in MESSAGING_TYPES:
            raise not_one_of("messaging_type", MESSAGING_TYPES, messaging_type)
        if messaging_type == "MESSAGE_TAG" and not params.get("tag"):
            raise oauth_error("(#100) The parameter tag is required when messaging_type is MESSAGE_TAG")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            raise oauth_error("(#100) Message cannot be empty, must provide valid attachment or text")
        text = message.get("text")
        if isinstance(text, str) and len(text) > max_text_length:
            raise oauth_error(f"(#100) Length of param message[text] must be less than or equal to {max_text_length}")

    def _check_window(self, user_id: str, params: dict[str, Any], error: dict[str, Any]) -> None:
        if user_id in self._closed_windows and params.get("tag") != "HUMAN_AGENT":
            raise fresh(error)

    def _notification_recipient(self, token: str, page_id: str) -> str:
        entry = self._notification_tokens.get(token)
        if entry is None:
            if self.strict_recipients:
                raise fresh(NOTIFICATION_TOKEN_INVALID)
            # Like sends to unknown PSIDs, unknown tokens are accepted unless strict_recipients is set;
            # the person behind one gets a stable made-up PSID.
            return number_from(token)
        if entry.status == "invalid" or entry.page_id not in (None, page_id):
            raise fresh(NOTIFICATION_TOKEN_INVALID)
        if entry.status == "expired":
            raise fresh(NOTIFICATION_TOKEN_EXPIRED)
        if entry.status == "stopped":
            raise fresh(NOTIFICATION_STOPPED)
        return entry.psid

    def _accept(self, page: Page, psid: str, body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        message_id = "m_" + secrets.token_urlsafe(64)
        self._sent.append({**body, "message": message, "page_id": page.id, "message_id": message_id})
        self._queue_echo(page.id, psid, message, message_id)
        return {"recipient_id": psid, "message_id": message_id}

    # --- echo webhooks ---

    def _queue_echo(self, page_id: str, psid: str, message: dict[str, Any], message_id: str) -> None:
        """Schedule the echo of an accepted message. Call with the lock held."""
        if self._echo_target is None or self._echo_executor is None:
            return
        now = int(time.time() * 1000)
        payload = {
            "object": "page",
            "entry": [
                {
                    "id": page_id,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": page_id},
                            "recipient": {"id": psid},
                            "timestamp": now,
                            "message": _echo_message(message, self.app_id, message_id),
                        }
                    ],
                }
            ],
        }
        # Facebook escapes "/" (and non-ASCII) in webhook bodies and signs those exact bytes.
        body = json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()
        url, secret = self._echo_target
        self._echo_futures.append(self._echo_executor.submit(self._post_echo, url, secret, body))

    def _post_echo(self, url: str, secret: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature": "sha1=" + _sign(secret, body, "sha1"),
            "X-Hub-Signature-256": "sha256=" + _sign(secret, body, "sha256"),
        }
        status: int | None
        try:
            status = httpx.post(url, content=body, headers=headers, timeout=5).status_code
        except httpx.HTTPError:
            status = None
        with self._lock:
            self._echoes.append(EchoDelivery(url, body, json.loads(body), status))

    def _shutdown_echo_delivery(self) -> None:
        with self._lock:
            executor, self._echo_executor = self._echo_executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _sign(secret: str, body: bytes, digest: str) -> str:
    return hmac.new(secret.encode(), body, digest).hexdigest()


def _echo_message(message: dict[str, Any], app_id: str, mid: str) -> dict[str, Any]:
    """The ``message`` of an echo webhook: Send API ``attachment`` becomes a list ``attachments``."""
    echo: dict[str, Any] = {"is_echo": True, "app_id": int(app_id), "mid": mid}
    for key, value in message.items():
        if key == "attachment":
            echo["attachments"] = [value]
        else:
            echo[key] = value
    return echo
