"""``GET /metrics`` over real HTTP, with real Redis and PostgreSQL: each family moves by what known traffic did.

The app and the worker run in this process, which keeps its metrics in memory (no console script set up a
multiprocess directory); ``test_metrics_across_processes.py`` runs the real processes.
"""

from __future__ import annotations

import time

import pytest

from airy_actors.models import FailedEvent
from tests.fake_graph import USER_UNAVAILABLE, FakeGraph
from tests.metrics.scrape import Samples, scrape, value
from tests.sending.sends import send, wait_for_state
from tests.support import entry, sign, text_message, wait_until, webhook_body
from workers import queues
from workers.broker import broker as redis_broker
from workers.ingestion import fetch_contact_profile

PAGE = "1001"


def signed_batch(tag: str, messages: int = 1) -> bytes:
    events = [text_message(PAGE, "2001", f"m_{tag}_{n}", f"hello {n}") for n in range(messages)]
    return webhook_body(entry(PAGE, *events))


def test_n_signed_webhook_requests_add_n_to_the_accepted_outcome(api, channel):
    # Given the count before
    before = value(scrape(api), "airy_webhook_requests_total", outcome="200")
    # When Facebook posts 7 signed requests
    for number in range(7):
        body = signed_batch(f"n{number}")
        assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200
    # Then the accepted outcome grew by 7
    assert value(scrape(api), "airy_webhook_requests_total", outcome="200") == before + 7


@pytest.mark.parametrize(
    ("body", "headers", "outcome"),
    [
        (b'{"object":"page","entry":[]}', {"X-Hub-Signature-256": "sha256=" + "0" * 64}, "403"),
        (b"not json", None, "400"),
        (b" " * (1024 * 1024 + 1), {}, "413"),
    ],
    ids=["forged", "not-json", "too-large"],
)
def test_a_refused_webhook_request_counts_under_its_status(api, body, headers, outcome):
    before = scrape(api)
    answer = api.post("/facebook", content=body, headers=sign(body) if headers is None else headers)
    assert answer.status_code == int(outcome)
    after = scrape(api)
    assert value(after, "airy_webhook_requests_total", outcome=outcome) == (
        value(before, "airy_webhook_requests_total", outcome=outcome) + 1
    )
    assert value(after, "airy_webhook_requests_total", outcome="200") == value(
        before, "airy_webhook_requests_total", outcome="200"
    )


def test_api_requests_count_by_route_and_status_never_by_raw_path(api, db):
    before = scrape(api)
    assert api.post("/conversations.list", json={}).status_code == 200
    assert api.post("/conversations.info", json={"conversation_id": "nope"}).status_code == 404
    assert api.get("/no/such/path/12345").status_code == 404
    after = scrape(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("airy_api_requests_total", endpoint="/conversations.list", status="200") == 1
    assert grew("airy_api_request_duration_seconds_count", endpoint="/conversations.list") == 1
    assert grew("airy_api_requests_total", endpoint="/conversations.info", status="404") == 1
    assert grew("airy_api_requests_total", endpoint="unmatched", status="404") == 1
    assert not any("/no/such" in str(labels) for _, labels in after)


def test_a_webhook_post_is_counted_by_its_own_family_only(api, channel):
    # GET /facebook (the subscription check) is an API request; POST /facebook is counted apart
    before = scrape(api)
    body = signed_batch("own-family")
    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200
    after = scrape(api)
    for status in ("200", "400", "403"):
        assert value(after, "airy_api_requests_total", endpoint="/facebook", status=status) == value(
            before, "airy_api_requests_total", endpoint="/facebook", status=status
        )
    assert value(after, "airy_webhook_requests_total", outcome="200") == (
        value(before, "airy_webhook_requests_total", outcome="200") + 1
    )


def test_metrics_needs_the_system_token_when_set(serve_app):
    with serve_app(system_token="s3cret") as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        samples = scrape(client, Authorization="Bearer s3cret")
        # The refusal was counted under the route it was refused on
        assert value(samples, "airy_api_requests_total", endpoint="/metrics", status="401") >= 1


def test_a_stalled_queue_shows_its_depth_and_an_oldest_age_that_grows(api, broker):
    # Given a message on a queue that no worker consumes
    fetch_contact_profile.send("no-such-contact")
    first = scrape(api)
    time.sleep(1.2)
    second = scrape(api)
    # Then the queue has one message, older at the second scrape by the time between them
    assert value(first, "airy_queue_depth_messages", queue=queues.PROFILES) == 1
    first_age = value(first, "airy_queue_oldest_message_age_seconds", queue=queues.PROFILES)
    second_age = value(second, "airy_queue_oldest_message_age_seconds", queue=queues.PROFILES)
    assert second_age - first_age >= 1.0
    # And the other queues are empty, of age 0
    assert value(second, "airy_queue_depth_messages", queue=queues.SENDING) == 0
    assert value(second, "airy_queue_oldest_message_age_seconds", queue=queues.SENDING) == 0
    assert value(second, "airy_scrape_source_up", source="redis") == 1


def test_a_delayed_message_counts_as_delayed_not_as_waiting(api, broker):
    fetch_contact_profile.send_with_options(args=("no-such-contact",), delay=60_000)
    samples = scrape(api)
    assert value(samples, "airy_queue_delayed_messages", queue=queues.PROFILES) == 1
    assert value(samples, "airy_queue_depth_messages", queue=queues.PROFILES) == 0
    assert value(samples, "airy_queue_oldest_message_age_seconds", queue=queues.PROFILES) == 0


def test_actor_runs_are_counted_by_outcome_and_timed(api, worker, monkeypatch):
    # Given an actor that fails when asked to
    profile = fetch_contact_profile.fn

    def fetch_or_fail(contact_id: str) -> None:
        if contact_id == "fail":
            raise RuntimeError("asked to fail")
        profile(contact_id)

    monkeypatch.setattr(fetch_contact_profile, "fn", fetch_or_fail)
    before = scrape(api)
    # When it runs twice, and fails once (not retried)
    fetch_contact_profile.send("no-such-contact")
    fetch_contact_profile.send("no-such-contact")
    fetch_contact_profile.send_with_options(args=("fail",), max_retries=0)
    redis_broker.join(queues.PROFILES, timeout=10_000)
    worker.join()
    after = scrape(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Then each run is counted by outcome, and timed
    assert grew("airy_actor_messages_total", actor="fetch_contact_profile", outcome="succeeded") == 2
    assert grew("airy_actor_messages_total", actor="fetch_contact_profile", outcome="failed") == 1
    assert grew("airy_actor_duration_seconds_count", actor="fetch_contact_profile") == 3


def test_ingestion_lag_is_observed_once_per_stored_message(api, worker, channel):
    before = value(scrape(api), "airy_ingestion_lag_seconds_count")
    body = signed_batch("lag", messages=3)
    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200

    def stored_three() -> Samples | None:
        samples = scrape(api)
        return samples if value(samples, "airy_ingestion_lag_seconds_count") >= before + 3 else None

    after = wait_until(stored_three, timeout=15, message="the three messages were not stored")
    assert value(after, "airy_ingestion_lag_seconds_count") == before + 3
    assert value(after, "airy_ingestion_lag_seconds_bucket", le="+Inf") >= 3


def test_sends_count_delivered_and_failed(api, worker, conversation, fake_graph: FakeGraph):
    before = scrape(api)
    delivered_id = send(api, conversation(psid="2001").id, {"text": "on its way"}).json()["id"]
    wait_for_state(api, delivered_id, "delivered")
    fake_graph.fail("POST", "/me/messages", error=USER_UNAVAILABLE, times=-1)
    failed_id = send(api, conversation(psid="2002").id, {"text": "nobody there"}).json()["id"]
    wait_for_state(api, failed_id, "failed")
    after = scrape(api)
    for outcome in ("delivered", "failed"):
        grew = value(after, "airy_sends_total", outcome=outcome) - value(before, "airy_sends_total", outcome=outcome)
        assert grew == 1, outcome


def test_spool_and_failed_events_are_read_when_scraped(api, db):
    for number, status in enumerate(["failed", "failed", "retrying"]):
        FailedEvent.create(
            webhook_request_id=number, event_index=0, kind="message", error="x", status=status, received_at=0
        )
    samples = scrape(api)
    assert value(samples, "airy_failed_events", status="failed") == 2
    assert value(samples, "airy_failed_events", status="retrying") == 1
    assert ("airy_spool_bytes", frozenset()) in samples
    assert value(samples, "airy_scrape_source_up", source="database") == 1
    assert value(samples, "airy_scrape_source_up", source="spool") == 1
