"""Media models: files uploaded through ``/media.upload``, and their uploads to Facebook, once per page."""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, new_id
from airy_actors.timestamps import now_ms


class Media(BaseModel):
    """A file an integrator uploaded, kept in the media store under its content's hash (``key``)."""

    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    key = peewee.CharField(max_length=64, index=True)
    content_type = peewee.CharField(max_length=255)
    size = peewee.BigIntegerField()
    created_at = peewee.BigIntegerField(default=now_ms)


class PageAttachment(BaseModel):
    """A stored file uploaded to one page with Facebook's Attachment Upload API: its reusable attachment id."""

    key = peewee.CharField(max_length=64)
    page_id = peewee.CharField(max_length=64)
    attachment_id = peewee.CharField(max_length=255)
    created_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        indexes = ((("key", "page_id"), True),)
