"""What each event does to conversations and messages: messages, echoes, reactions, edits, unsends, receipts.

Every function here is safe to run twice for the same event: messages are keyed by Meta's ``mid``,
reactions, receipts and unsends set values, edits are counted by ``num_edit``. The caller holds the transaction
(a savepoint of its own for each event, so that one event that cannot be applied takes no other with it).

Echoes of our own sends must not become second messages. Messenger names the sending app in an echo; Instagram
does not, so an Instagram echo is ours when its ``mid`` is one we stored, when our send to that contact is still
waiting for Facebook's answer (the echo waits for it), or when it settles a send left in doubt (see
``sending.claim_unconfirmed_echo``); any other echo is a message the account wrote elsewhere (the Instagram app).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airy_actors.conversations import ensure_conversation, find_message, insert_message, save_metadata
from airy_actors.events import (
    InboundEvent,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    MessageRead,
    ReactionChanged,
    ReceiptWatermark,
)
from airy_actors.media.attachments import has_media
from airy_actors.models import INSTAGRAM, Channel, Conversation, Message, stable_id
from airy_actors.sending import claim_echo, claim_unconfirmed_echo, send_in_flight
from airy_actors.timestamps import iso_ms


@dataclass
class IngestionResult:
    """What an ingestion did, for the actor to act on after the commit."""

    messages_created: int = 0
    events_applied: int = 0
    contacts_created: list[str] = field(default_factory=list)
    deferred_event_id: int | None = None
    deferred_delay_ms: int = 0
    failed_event_ids: list[str] = field(default_factory=list)
    media_message_ids: list[str] = field(default_factory=list)  # new messages whose attachments are to be kept
    already_processed: bool = False


def event_kind(event: object) -> str:
    """The event's kind as Meta names it (``message``, ``postback``, ``reaction``, ...), for logs and lists."""
    if isinstance(event, InboundMessage):
        if event.postback is not None:
            return "postback"
        return "echo" if event.is_echo else "message"
    if isinstance(event, ReceiptWatermark):
        return "read" if event.kind == "read" else "delivery"
    return _KINDS.get(type(event), type(event).__name__)


_KINDS: dict[type, str] = {
    ReactionChanged: "reaction",
    MessageEdited: "message_edit",
    MessageDeleted: "message_deleted",
    MessageRead: "read",
}


def apply_event(event: InboundEvent, channel: Channel, app_id: str | None, result: IngestionResult) -> bool:
    """Applies one event. Returns False when its target message is not stored yet."""
    if isinstance(event, InboundMessage):
        return _apply_message(event, channel, app_id, result)
    if isinstance(event, ReceiptWatermark):
        _apply_receipt(event, channel)
        result.events_applied += 1
        return True
    target = find_message(channel, event.source_message_id)
    if target is None:
        return False
    if isinstance(event, ReactionChanged):
        _apply_reaction(event, target)
    elif isinstance(event, MessageEdited):
        _apply_edit(event, target)
    elif isinstance(event, MessageDeleted):
        _apply_deletion(event, target)
    elif isinstance(event, MessageRead):
        _apply_read(event, target)
    result.events_applied += 1
    return True


def _apply_message(event: InboundMessage, channel: Channel, app_id: str | None, result: IngestionResult) -> bool:
    if event.is_echo:
        ours = _our_send(event, channel, app_id)
        if ours is _WAIT:
            return False
        if isinstance(ours, Message):
            if ours.delivery_state == "pending":
                save_metadata(ours, ours.metadata, delivery_state="delivered")
            result.events_applied += 1
            return True
    ref = ensure_conversation(channel, event.contact_id)
    if ref.created:
        result.contacts_created.append(ref.contact.id)
    metadata = {"postback": event.postback} if event.postback is not None else {}
    created = insert_message(
        ref.conversation,
        message_id=stable_id("message", channel.id, event.source_message_id),
        source_message_id=event.source_message_id,
        content=event.content,
        from_contact=event.from_contact,
        sender_id=event.sender_id,
        sent_at=event.sent_at_ms,
        delivery_state="delivered",
        metadata=metadata,
    )
    result.messages_created += int(created)
    result.events_applied += 1
    if created and has_media(event.content):
        result.media_message_ids.append(stable_id("message", channel.id, event.source_message_id))
    return True


_WAIT = object()  # an echo of our own send whose message cannot be told yet: the event waits


def _our_send(event: InboundMessage, channel: Channel, app_id: str | None) -> Message | object | None:
    """The outbound message an echo is of, :data:`_WAIT` when that can't be told yet, or None: not ours."""
    if event.platform == INSTAGRAM and event.app_id is None:
        known = find_message(channel, event.source_message_id)
        if known is not None:
            return known  # ours, recorded by the send actor; or a redelivered echo of a message stored before
        if send_in_flight(channel, event.contact_id):
            return _WAIT  # Facebook answered our send, but the actor has not recorded the mid yet
        return claim_unconfirmed_echo(channel, event.contact_id, event.source_message_id, event.content)
    if app_id is None or event.app_id != app_id:
        return None  # another app's, or the Page inbox's: a message of its own
    # Our own send coming back: found by the mid the send actor stored, or by the marker it asked Facebook to echo
    # (sending.claim_echo); else wait for the actor.
    ours = find_message(channel, event.source_message_id) or claim_echo(
        channel, event.source_message_id, event.content
    )
    return _WAIT if ours is None else ours


def _apply_reaction(event: ReactionChanged, target: Message) -> None:
    metadata = dict(target.metadata)
    current = metadata.get("reaction")
    sent_at = iso_ms(event.sent_at_ms)
    if isinstance(current, dict) and str(current.get("sent_at", "")) > str(sent_at):
        return  # a newer reaction is already shown; this one arrived late
    if event.action == "react":
        metadata["reaction"] = {"emoji": event.emoji, "sent_at": sent_at}
    else:
        metadata.pop("reaction", None)
    if metadata != target.metadata:
        save_metadata(target, metadata)


def _apply_edit(event: MessageEdited, target: Message) -> None:
    metadata = dict(target.metadata)
    edits = list(metadata.get("edits") or [])
    if event.num_edit <= len(edits):
        return  # this edit, or a later one, is already applied
    content = dict(target.content)
    inner = dict(content.get("message") or {})
    edits.append({"text": inner.get("text"), "edited_at": iso_ms(event.edited_at_ms)})
    inner["text"] = event.text
    content["message"] = inner
    metadata["edits"] = edits
    save_metadata(target, metadata, content=content)


def _apply_deletion(event: MessageDeleted, target: Message) -> None:
    # The content stays as it was: the contact unsent it, and the record says so.
    if "deleted_at" not in target.metadata:
        save_metadata(target, {**target.metadata, "deleted_at": iso_ms(event.deleted_at_ms)})


def _apply_read(event: MessageRead, target: Message) -> None:
    """Marks the message read, and every outbound one of its conversation sent before it."""
    stamp = iso_ms(event.read_at_ms)
    outbound = Message.select().where(
        (Message.conversation == target.conversation_id)
        & (Message.from_contact == False)  # noqa: E712
        & ((Message.sent_at <= target.sent_at) | (Message.id == target.id))
    )
    for message in outbound:
        if "read_at" not in message.metadata:
            save_metadata(message, {**message.metadata, "read_at": stamp})


def _apply_receipt(event: ReceiptWatermark, channel: Channel) -> None:
    conversation = Conversation.get_or_none(Conversation.id == stable_id("conversation", channel.id, event.contact_id))
    if conversation is None:
        return
    key = "delivered_at" if event.kind == "delivered" else "read_at"
    stamp = iso_ms(event.watermark_ms)
    outbound = Message.select().where(
        (Message.conversation == conversation.id)
        & (Message.from_contact == False)  # noqa: E712
        & ((Message.sent_at <= event.watermark_ms) | Message.source_message_id.in_(event.source_message_ids or ("",)))
    )
    for message in outbound:
        if key not in message.metadata:
            save_metadata(message, {**message.metadata, key: stamp})
