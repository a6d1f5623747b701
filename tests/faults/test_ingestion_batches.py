"""Requests stored together are ingested by one message, in one transaction; a request that fails holds up none
of the others."""

from __future__ import annotations

from airy_actors import ingestion
from airy_actors.models import Message, WebhookRequest
from airy_actors.webhook_requests import store_webhook_requests
from tests.faults.outcome import assert_each_event_is_one_message
from tests.support import entry, text_message, wait_until, webhook_body
from workers.ingestion import ingest_webhook_requests


def test_a_failing_request_is_retried_alone_while_the_rest_of_its_batch_goes_on(channel, broker, worker, monkeypatch):
    # Given three stored requests, the second of which fails the first two times it is ingested: in its batch,
    # and on its own right after
    page = channel.source_channel_id
    bodies = [
        webhook_body(entry(page, text_message(page, "2001", f"m_{n}", f"hello {n}", timestamp=1_700_000_000_000 + n)))
        for n in range(3)
    ]
    first, second, third = (row_id for row_id, _ in store_webhook_requests(bodies))
    attempts: list[list[int]] = []
    real_ingest = ingestion.ingest_webhook_requests

    def ingest_failing_twice(webhook_request_ids: list[int], **options):  # type: ignore[no-untyped-def]
        attempts.append(list(webhook_request_ids))
        if second in webhook_request_ids and sum(second in ids for ids in attempts) <= 2:
            raise RuntimeError("a transient failure")
        return real_ingest(webhook_request_ids, **options)

    monkeypatch.setattr(ingestion, "ingest_webhook_requests", ingest_failing_twice)

    # When one message asks for all three
    ingest_webhook_requests.send([first, second, third])

    # Then every request becomes its message, the failed one on a retry of its own after the others
    wait_until(lambda: Message.select().count() == 3, timeout=30, message="three messages")
    assert attempts[:3] == [[first, second, third], [first], [second]]
    # the third alone, and the second's own retry, which another worker thread may take up first
    assert sorted(attempts[3:]) == sorted([[third], [second]])
    assert_each_event_is_one_message(["m_0", "m_1", "m_2"])
    assert WebhookRequest.select().where(WebhookRequest.processed_at.is_null()).count() == 0
