"""A connected source page: a Facebook page, with its token and health."""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, new_id
from airy_actors.timestamps import now_ms


class Channel(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    source = peewee.CharField(max_length=32, default="facebook")
    source_channel_id = peewee.CharField(max_length=64)
    name = peewee.TextField(null=True)
    image_url = peewee.TextField(null=True)
    # A secret: never serialized, never logged.
    page_token = peewee.TextField(null=True)
    connected = peewee.BooleanField(default=True)
    webhook_subscribed = peewee.BooleanField(default=True)
    token_valid = peewee.BooleanField(default=True)
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        indexes = ((("source", "source_channel_id"), True),)

    def __repr__(self) -> str:  # the token stays out of reprs, and so out of tracebacks and logs
        return f"<Channel {self.id} {self.source}:{self.source_channel_id}>"
