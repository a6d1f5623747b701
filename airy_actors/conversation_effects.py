"""What referrals, opt-ins and handover events do to a conversation: its ``metadata`` (SPEC section 3).

- A referral (m.me link, ad, Chat Plugin) creates the conversation if needed, even before a first message,
  sets ``metadata.referral`` and appends it to ``metadata.referrals`` (newest last).
- A recurring notification opt-in adds its token to ``metadata.notification_tokens``; a stop marks it
  ``stopped``, a resume ``active`` again.
- A pass or take of thread control sets ``metadata.thread_owner``; a request is kept in
  ``metadata.thread_requests``.

Each is safe to apply twice: a redelivered event finds what it would write already there and changes nothing.
Referrals and opt-ins are the contact's actions and open the 24-hour window; handovers do not. Every change is
a ``conversation.updated`` event for integrators. Notification tokens never reach a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from airy_actors import outbox
from airy_actors.conversations import ensure_conversation
from airy_actors.db import is_postgres
from airy_actors.event_effects import IngestionResult
from airy_actors.events import OptinReceived, ReferralReceived, ThreadControlChanged
from airy_actors.models import Channel, Conversation
from airy_actors.timestamps import iso_ms

logger = logging.getLogger(__name__)

MAX_REFERRALS = 100  # the history a conversation keeps; the oldest go first
MAX_THREAD_REQUESTS = 50


def apply_referral(event: ReferralReceived, channel: Channel, result: IngestionResult) -> None:
    """Records a referral on the contact's conversation, creating the conversation if it has none yet."""
    if event.contact_id is None:
        logger.info("referral of a guest without a conversation ignored", extra={"page_id": event.page_id})
        return
    referral: dict[str, Any] = {"ref": event.ref, "source": event.source, "type": event.type}
    if event.ad_id is not None:
        referral["ad_id"] = event.ad_id
    if event.referer_uri is not None:
        referral["referer_uri"] = event.referer_uri
    referral["received_at"] = iso_ms(event.timestamp_ms)
    conversation = _conversation(channel, event.contact_id, result)
    metadata = dict(conversation.metadata or {})
    history = list(metadata.get("referrals") or [])
    if referral in history:
        return  # a redelivery
    history.append(referral)
    history.sort(key=lambda item: str(item.get("received_at", "")))
    metadata["referrals"] = history[-MAX_REFERRALS:]
    metadata["referral"] = metadata["referrals"][-1]
    _save(conversation, metadata, contact_action_at=event.timestamp_ms)


def apply_optin(event: OptinReceived, channel: Channel, result: IngestionResult) -> None:
    """Keeps a recurring notification token, or marks it stopped or active again."""
    if event.type != "notification_messages" or event.contact_id is None or not event.token:
        logger.info("opt-in without a notification token ignored", extra={"page_id": event.page_id})
        return
    conversation = _conversation(channel, event.contact_id, result)
    metadata = dict(conversation.metadata or {})
    tokens = [dict(item) for item in metadata.get("notification_tokens") or [] if isinstance(item, dict)]
    known = next((item for item in tokens if item.get("token") == event.token), None)
    if event.status in ("stopped", "resumed"):
        if known is None:
            logger.info("notification status for an unknown token ignored", extra={"page_id": event.page_id})
            return
        wanted = "stopped" if event.status == "stopped" else "active"
        if known.get("status") == wanted:
            return
        known["status"] = wanted
    else:
        entry = {
            "token": event.token,
            "title": event.title,
            "frequency": event.frequency,
            "expires_at": iso_ms(event.expires_at_ms),
            "payload": event.payload,
            "status": "active",
        }
        if known == entry:
            return
        if known is None:
            tokens.append(entry)
        else:
            known.update(entry)
    metadata["notification_tokens"] = tokens
    _save(conversation, metadata, contact_action_at=event.timestamp_ms)


def apply_thread_control(
    event: ThreadControlChanged, channel: Channel, app_id: str | None, result: IngestionResult
) -> None:
    """Follows who owns the contact's thread; keeps requests for it."""
    conversation = _conversation(channel, event.contact_id, result)
    metadata = dict(conversation.metadata or {})
    at = iso_ms(event.timestamp_ms)
    if event.kind == "request":
        request = {"app_id": event.requested_owner_app_id, "metadata": event.metadata, "requested_at": at}
        requests = list(metadata.get("thread_requests") or [])
        if request in requests:
            return
        requests.append(request)
        metadata["thread_requests"] = requests[-MAX_THREAD_REQUESTS:]
    else:
        # A take names the app that took the thread only sometimes: then it is the app receiving the event.
        owner = event.new_owner_app_id or (app_id if event.kind == "take" else None)
        current = metadata.get("thread_owner")
        if isinstance(current, dict) and str(current.get("since", "")) > str(at):
            return  # a later change is known already
        thread_owner = {"app_id": owner, "since": at}
        if current == thread_owner:
            return
        metadata["thread_owner"] = thread_owner
    _save(conversation, metadata)


def set_thread_owner(conversation_id: str, app_id: str | None, since_ms: int) -> None:
    """Records the thread's owner after our own pass or take succeeded at Facebook (its event may come later)."""
    query = Conversation.select().where(Conversation.id == conversation_id)
    conversation = (query.for_update() if is_postgres() else query).get_or_none()
    if conversation is None:
        return
    metadata = dict(conversation.metadata or {})
    current = metadata.get("thread_owner")
    at = iso_ms(since_ms)
    if isinstance(current, dict) and str(current.get("since", "")) >= str(at):
        return
    metadata["thread_owner"] = {"app_id": app_id, "since": at}
    _save(conversation, metadata)


def _conversation(channel: Channel, psid: str, result: IngestionResult) -> Conversation:
    ref = ensure_conversation(channel, psid)
    if ref.created:
        result.contacts_created.append(ref.contact.id)
    query = Conversation.select().where(Conversation.id == ref.conversation.id)
    return (query.for_update() if is_postgres() else query).get()


def _save(conversation: Conversation, metadata: dict[str, Any], *, contact_action_at: int | None = None) -> None:
    changes: dict[Any, Any] = {Conversation.metadata: metadata}
    if contact_action_at is not None and contact_action_at > (conversation.last_contact_message_at or 0):
        changes[Conversation.last_contact_message_at] = contact_action_at  # opens the 24-hour window
    Conversation.update(changes).where(Conversation.id == conversation.id).execute()
    conversation.metadata = metadata
    outbox.conversation_updated(conversation)
