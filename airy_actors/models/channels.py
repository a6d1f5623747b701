"""A connected source: a Facebook page (Messenger), or an Instagram professional account linked to a page.

Both platforms go through the same Meta app and the same page token: an Instagram channel remembers the page its
account is linked to (``page_id``), because sends, subscriptions and health checks are the page's.
"""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, new_id
from airy_actors.timestamps import now_ms

FACEBOOK = "facebook"
INSTAGRAM = "instagram"
SOURCES = (FACEBOOK, INSTAGRAM)


class Channel(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    source = peewee.CharField(max_length=32, default=FACEBOOK)
    # The page id (Messenger) or the Instagram account id: what Meta's webhook entries name.
    source_channel_id = peewee.CharField(max_length=64)
    # The Facebook page whose token and /{page_id}/messages serve the channel; None on rows written before the
    # column existed, which are all Facebook channels (see graph_page_id).
    page_id = peewee.CharField(max_length=64, null=True)
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

    @property
    def graph_page_id(self) -> str:
        """The page that the Graph API calls of this channel act as: its own id for a Facebook channel."""
        return self.page_id or self.source_channel_id

    def __repr__(self) -> str:  # the token stays out of reprs, and so out of tracebacks and logs
        return f"<Channel {self.id} {self.source}:{self.source_channel_id}>"
