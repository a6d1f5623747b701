"""Facebook's webhook requests as stored: written durably before the 200, once per body, and swept when stale.

The web stores each verified request (:func:`store_webhook_requests`) before it answers; the ingestion
(:mod:`airy_actors.ingestion`) applies it later and marks it processed. A request that no actor finished is
found again by :func:`stale_webhook_requests`.
"""

from __future__ import annotations

import hashlib
import logging

from airy_actors.db import execute, placeholders, supports_returning, write_transaction
from airy_actors.models import WebhookRequest
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

SWEEP_GRACE_MS = 30_000


_INSERT_REQUESTS = """
INSERT INTO webhook_event (body, digest, received_at, generation, next_attempt_at) VALUES {rows}
ON CONFLICT (digest) DO NOTHING RETURNING digest, id
"""


def store_webhook_requests(bodies: list[bytes]) -> list[tuple[int, bool]]:
    """Stores verified webhook requests durably, in one statement committed on its own (where RETURNING works).

    Returns:
      For each body, in order, its row's id and whether this call stored it (a request delivered twice,
      even within ``bodies``, is stored once).
    """
    digests = [hashlib.sha256(body).hexdigest() for body in bodies]
    rows = [(body.decode("utf-8", errors="replace"), digest) for body, digest in zip(bodies, digests, strict=True)]
    if supports_returning():
        # The webhook's hot path: one round trip to the database for a whole batch of requests, in plain SQL,
        # the same for both engines: Peewee compiling the multi-row INSERT cost the web several times the CPU
        # of this (bench/webhook_acceptance.py; figures in the README).
        now = now_ms()
        params = [value for text, digest in rows for value in (text, digest, now, now)]
        cursor = execute(_INSERT_REQUESTS, *params, rows=placeholders(len(bodies), "({p}, {p}, {p}, 0, {p})"))
        inserted = dict(cursor.fetchall())
    else:
        inserted = _insert_one_at_a_time([{"body": text, "digest": digest} for text, digest in rows])
    ids = dict(inserted)
    if len(ids) < len(set(digests)):
        stored_before = WebhookRequest.select(WebhookRequest.digest, WebhookRequest.id).where(
            WebhookRequest.digest.in_(set(digests) - set(ids))
        )
        ids.update(stored_before.tuples())
    # Only the first of two equal bodies is new.
    return [(ids[digest], inserted.pop(digest, None) is not None) for digest in digests]


def _insert_one_at_a_time(rows: list[dict[str, str]]) -> dict[str, int]:
    """The new rows' ids by digest, where RETURNING is missing (SQLite before 3.35): one INSERT a row."""
    inserted = {}
    with write_transaction():
        for row in rows:
            if WebhookRequest.insert(row).on_conflict_ignore().as_rowcount().execute() == 1:
                inserted[row["digest"]] = WebhookRequest.get(WebhookRequest.digest == row["digest"]).id
    return inserted


def stale_webhook_requests(limit: int = 500) -> list[int]:
    """Rows that no actor finished and whose turn has passed: a crash, or a lost broker message."""
    cutoff = now_ms() - SWEEP_GRACE_MS
    query = (
        WebhookRequest.select(WebhookRequest.id)
        .where(WebhookRequest.processed_at.is_null() & (WebhookRequest.next_attempt_at < cutoff))
        .order_by(WebhookRequest.id)
        .limit(limit)
    )
    ids = [row.id for row in query]
    if ids:
        # Leave them alone for a while: under a backlog their first message may still be queued.
        WebhookRequest.update(next_attempt_at=now_ms() + 2 * SWEEP_GRACE_MS).where(WebhookRequest.id.in_(ids)).execute()
    return ids
