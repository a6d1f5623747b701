"""Units of work that must survive a crash: received webhook bodies and synchronous jobs."""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, JSONField, new_id
from airy_actors.timestamps import now_ms


class WebhookRequest(BaseModel):
    """One POST that Facebook made to our webhook, stored before it was answered."""

    id = peewee.BigAutoField()
    body = peewee.TextField()
    # sha256 of the body: the same request delivered twice is stored once.
    digest = peewee.CharField(max_length=64, unique=True)
    received_at = peewee.BigIntegerField(default=now_ms)
    processed_at = peewee.BigIntegerField(null=True)
    # Events whose target was not known yet are retried from a new row; this counts the generations.
    generation = peewee.IntegerField(default=0)
    # The sweeper leaves the row alone until then (ms).
    next_attempt_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        # The table keeps its first name, so that a database of an earlier version keeps its pending requests.
        table_name = "webhook_event"
        indexes = ((("processed_at", "next_attempt_at"), False),)


class Job(BaseModel):
    """The state of an actor that a synchronous endpoint waits for, or a client polls with jobs.info."""

    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    kind = peewee.CharField(max_length=64)
    actor_name = peewee.CharField(max_length=128)
    arguments = JSONField(default=dict)
    status = peewee.CharField(max_length=16, default="pending", index=True)
    result = JSONField(null=True)
    error = peewee.TextField(null=True)
    error_status = peewee.IntegerField(null=True)
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)


class FailedEvent(BaseModel):
    """One event of a stored webhook request that could not be applied: retried with backoff, then failed.

    The event is found again by its position among the request's parsed events, so nothing of it is copied.
    ``event_index`` is -1 when the request as a whole could not be applied (it could not even be parsed).
    """

    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    webhook_request_id = peewee.BigIntegerField()
    event_index = peewee.IntegerField()
    page_id = peewee.CharField(max_length=255, null=True)
    kind = peewee.CharField(max_length=64)
    error = peewee.TextField()
    attempts = peewee.IntegerField(default=1)
    # "retrying" while attempts remain, "failed" once they ran out (listed by /events.failed).
    status = peewee.CharField(max_length=16, default="retrying")
    next_attempt_at = peewee.BigIntegerField(default=now_ms)
    received_at = peewee.BigIntegerField()
    updated_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        indexes = (
            (("webhook_request_id", "event_index"), True),
            (("status", "next_attempt_at"), False),
            (("status", "updated_at", "id"), False),
        )
