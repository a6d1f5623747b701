"""Contacts and conversations: one contact (a PSID) on one channel is one conversation."""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, JSONField
from airy_actors.models.channels import Channel
from airy_actors.timestamps import now_ms


class Contact(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    channel = peewee.ForeignKeyField(Channel, backref="contacts", on_delete="CASCADE")
    source_contact_id = peewee.CharField(max_length=64)
    display_name = peewee.TextField(null=True)
    avatar_url = peewee.TextField(null=True)
    # "pending" until the profile actor has run; then "fetched" or "failed".
    profile_state = peewee.CharField(max_length=16, default="pending", index=True)
    created_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        indexes = ((("channel", "source_contact_id"), True),)


class Conversation(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    channel = peewee.ForeignKeyField(Channel, backref="conversations", on_delete="CASCADE")
    contact = peewee.ForeignKeyField(Contact, unique=True, on_delete="CASCADE")
    created_at = peewee.BigIntegerField(default=now_ms)
    last_message_id = peewee.CharField(max_length=36, null=True)
    last_message_at = peewee.BigIntegerField(default=0, index=True)
    # When the contact last wrote: the Send API's messaging window opens from here.
    last_contact_message_at = peewee.BigIntegerField(null=True)
    unread_message_count = peewee.IntegerField(default=0)
    # Referrals, notification tokens, the thread's owner (SPEC section 3); {} when none.
    metadata = JSONField(default=dict)
