"""Messages, inbound and outbound."""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, JSONField
from airy_actors.models.channels import Channel
from airy_actors.models.conversations import Conversation
from airy_actors.timestamps import now_ms

DELIVERY_STATES = ("pending", "delivered", "failed")


class Message(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    # No index of their own: each is the first column of a composite index below, which every insert pays already.
    conversation = peewee.ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE", index=False)
    channel = peewee.ForeignKeyField(Channel, on_delete="CASCADE", index=False)
    # Facebook's mid; unique per channel so that a redelivered event finds its message.
    source_message_id = peewee.CharField(max_length=255, null=True)
    content = JSONField()
    delivery_state = peewee.CharField(max_length=16, default="pending")
    from_contact = peewee.BooleanField()
    sender_id = peewee.CharField(max_length=64)
    sent_at = peewee.BigIntegerField()
    metadata = JSONField(default=dict)
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)
    # Outbound messages only (see airy_actors.sending): how to send them, and the bookkeeping that keeps a send
    # exactly-once across crashes. No API representation shows these columns.
    messaging_type = peewee.CharField(max_length=32, null=True)
    message_tag = peewee.CharField(max_length=64, null=True)
    # None or "queued" (waiting for an attempt), "in_flight" (handed to Facebook, answer not recorded yet),
    # "done", or "unconfirmed" (failed, though Facebook may have it: its echo can still make it delivered).
    send_state = peewee.CharField(max_length=16, null=True)
    send_attempts = peewee.IntegerField(null=True)
    send_attempt_at = peewee.BigIntegerField(null=True)  # ms: when the attempt in flight started
    send_due_at = peewee.BigIntegerField(null=True)  # ms: when the sweeper may consider the send stale
    # A recurring notification send (outside the window): the contact's token, sent instead of the PSID.
    notification_token = peewee.TextField(null=True)
    # Inbound attachments not kept yet: when the media actor was asked for them (ms); None once settled.
    media_due_at = peewee.BigIntegerField(null=True, index=True)

    class Meta:
        indexes = (
            (("channel", "source_message_id"), True),
            (("conversation", "sent_at", "id"), False),
            (("delivery_state", "updated_at"), False),
        )
