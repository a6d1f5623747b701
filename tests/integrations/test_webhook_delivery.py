"""Integrator webhooks end to end: Facebook's webhook in, a real receiver on 127.0.0.1 out, a real worker between."""

from __future__ import annotations

import dataclasses

from airy_actors import integrations
from airy_actors.models import Contact, Message, WebhookRequest
from airy_actors.models.integrations import WebhookDelivery
from airy_actors.timestamps import now_ms
from tests.integrations.calls import PAGE, from_facebook, subscribe
from tests.support import reaction, text_message, wait_until

PSID = "2001"
OTHER_PSID = "2002"


def processed(count: int) -> bool:
    """Whether ``count`` webhook requests have been ingested (their changes, and events, committed)."""
    return WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).count() >= count


def test_a_message_from_facebook_reaches_the_subscriber_signed(api, worker, channel, receiver):
    # Given a subscription with a signature key and a header of the integrator's own
    subscribe(api, receiver.url, signature_key="k3y", headers={"Authorization": "Bearer receiver-token"})
    # When a contact writes to the page
    from_facebook(api, text_message(PAGE, PSID, "m_1", "hello"))
    # Then the receiver gets message.created, signed with the key, with the message as the API shows it
    [request] = wait_until(lambda: receiver.accepted("message.created"), message="no message.created")
    assert request.signed_with("k3y")
    assert request.headers["authorization"] == "Bearer receiver-token"
    assert request.headers["content-type"] == "application/json"
    document = request.json
    assert sorted(document) == ["payload", "timestamp", "type"] and isinstance(document["timestamp"], int)
    conversation = api.post("/conversations.list", json={}).json()["data"][0]
    assert document["payload"]["conversation_id"] == conversation["id"]
    assert document["payload"]["channel_id"] == conversation["channel"]["id"]
    assert document["payload"]["message"] == conversation["last_message"]
    assert document["payload"]["message"]["content"]["message"]["text"] == "hello"


def test_a_reaction_produces_message_updated_with_the_reaction(api, worker, channel, receiver):
    subscribe(api, receiver.url, events=["message.updated"])
    from_facebook(api, text_message(PAGE, PSID, "m_1", "hello"))
    from_facebook(api, reaction(PAGE, PSID, "m_1", emoji="\u2764\ufe0f"))
    [request] = wait_until(lambda: receiver.accepted("message.updated"), message="no message.updated")
    message = request.payload["message"]
    assert message["metadata"]["reaction"]["emoji"] == "\u2764\ufe0f"
    assert message == api.post("/messages.info", json={"message_id": message["id"]}).json()
    assert receiver.accepted("message.created") == []  # not subscribed to


def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(api, worker, channel, receiver):
    subscribe(api, receiver.url, events=["message.created", "message.updated"])
    # Given a receiver that refuses connections
    receiver.down()
    # When two conversations go on, one webhook request at a time
    steps = [
        text_message(PAGE, PSID, "a_1", "a one", timestamp=1_700_000_000_001),
        text_message(PAGE, OTHER_PSID, "b_1", "b one", timestamp=1_700_000_000_002),
        text_message(PAGE, PSID, "a_2", "a two", timestamp=1_700_000_000_003),
        reaction(PAGE, PSID, "a_1", emoji="\U0001f44d", timestamp=1_700_000_000_004),
        text_message(PAGE, OTHER_PSID, "b_2", "b two", timestamp=1_700_000_000_005),
        text_message(PAGE, PSID, "a_3", "a three", timestamp=1_700_000_000_006),
    ]
    for number, event in enumerate(steps, start=1):
        from_facebook(api, event)
        wait_until(lambda n=number: processed(n), message=f"request {number} not ingested")
    wait_until(
        lambda: WebhookDelivery.get_or_none(WebhookDelivery.attempts >= 3),
        message="deliveries were not retried while the receiver was down",
    )
    # Then, once it is back, it gets every event, each conversation's in the order they happened
    receiver.recover()
    wait_until(lambda: len(receiver.accepted()) >= 6, timeout=20, message="not every event arrived")
    by_conversation: dict[str, list[tuple[str, str]]] = {}
    for request in receiver.accepted():
        message = request.payload["message"]
        by_conversation.setdefault(message["sender"]["id"], []).append(
            (request.type, message["content"]["message"]["mid"])
        )
    assert by_conversation == {
        PSID: [
            ("message.created", "a_1"),
            ("message.created", "a_2"),
            ("message.updated", "a_1"),
            ("message.created", "a_3"),
        ],
        OTHER_PSID: [("message.created", "b_1"), ("message.created", "b_2")],
    }


def test_retry_after_of_a_429_is_honoured(api, worker, channel, receiver):
    subscribe(api, receiver.url)
    receiver.fail(429, retry_after="1")
    from_facebook(api, text_message(PAGE, PSID, "m_1", "hello"))
    [throttled] = wait_until(lambda: receiver.requests, message="no attempt")
    receiver.recover()
    [accepted] = wait_until(lambda: receiver.accepted("message.created"), message="not delivered after the 429")
    assert throttled.answered == 429
    # Backoff alone would have retried within half a second; the receiver asked for one.
    assert accepted.at - throttled.at >= 0.95


def test_a_failing_subscriber_does_not_hold_back_a_healthy_one(api, worker, channel, receivers):
    healthy, stalling = receivers(), receivers()
    subscribe(api, healthy.url, events=["message.created"])
    subscribe(api, stalling.url, events=["message.created"])
    # Given a subscriber that reads requests and never answers (past the 1 s timeout)
    stalling.stall(seconds=60)
    # When contacts write in twelve conversations at once
    psids = [str(3000 + n) for n in range(12)]
    from_facebook(api, *(text_message(PAGE, psid, f"m_{psid}", "hi") for psid in psids))
    # Then the healthy subscriber gets every message while the other still stalls
    wait_until(lambda: len(healthy.accepted()) == 12, timeout=20, message="the healthy subscriber was held back")
    assert stalling.accepted() == []
    # And once the stalling one answers again, it gets them all too
    stalling.recover()
    wait_until(lambda: len(stalling.accepted()) == 12, timeout=30, message="the recovered subscriber lacks events")
    assert sorted(r.payload["message"]["sender"]["id"] for r in stalling.accepted()) == psids


def test_a_stalling_subscriber_is_probed_one_request_at_a_time(api, worker, channel, receiver):
    subscribe(api, receiver.url, events=["message.created"])
    receiver.stall(seconds=60)
    from_facebook(api, *(text_message(PAGE, str(3000 + n), f"m_{n}", "hi") for n in range(6)))
    # The first attempts of every conversation may overlap; after them, the breaker lets one through at a time.
    wait_until(lambda: len(receiver.requests) >= 6, timeout=20, message="first attempts missing")
    wait_until(lambda: WebhookDelivery.select().where(WebhookDelivery.attempts >= 1).count() == 6, timeout=20)
    receiver.max_in_flight = 0
    seen = len(receiver.requests)
    wait_until(lambda: len(receiver.requests) >= seen + 3, timeout=20, message="the subscriber was not probed")
    assert receiver.max_in_flight == 1


def test_unsubscribing_stops_deliveries(api, worker, channel, receivers):
    leaving, staying = receivers(), receivers()
    subscription = subscribe(api, leaving.url, events=["message.created"])
    subscribe(api, staying.url, events=["message.created"])
    from_facebook(api, text_message(PAGE, PSID, "m_1", "one"))
    wait_until(lambda: len(leaving.accepted()) == 1 and len(staying.accepted()) == 1, message="first not delivered")
    response = api.post("/webhooks.unsubscribe", json={"id": subscription["id"]})
    assert response.status_code == 200 and response.json()["id"] == subscription["id"]
    from_facebook(api, text_message(PAGE, PSID, "m_2", "two", timestamp=1_700_000_000_001))
    # The staying subscriber got the second message: it was fanned out, and not to the one that left.
    wait_until(lambda: len(staying.accepted()) == 2, message="second not delivered")
    assert len(leaving.requests) == 1
    assert api.post("/webhooks.info", json={"id": subscription["id"]}).status_code == 404
    assert [s["url"] for s in api.post("/webhooks.list", json={}).json()["data"]] == [staying.url]


def test_a_refused_delivery_is_listed_as_failed_and_can_be_replayed(api, worker, channel, receiver):
    subscription = subscribe(api, receiver.url, events=["message.created"])
    receiver.fail(404)
    from_facebook(api, text_message(PAGE, PSID, "m_1", "hello"))

    def deliveries() -> list[dict]:
        response = api.post("/webhooks.deliveries", json={"id": subscription["id"]})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    [failed] = wait_until(lambda: [d for d in deliveries() if d["status"] == "failed"], message="not failed")
    assert (failed["http_status"], failed["attempts"], failed["type"]) == (404, 1, "message.created")
    assert "404" in failed["error"]
    receiver.recover()
    replayed = api.post("/webhooks.replay", json={"delivery_id": failed["id"]})
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    [request] = wait_until(lambda: receiver.accepted(), message="replay not delivered")
    assert request.payload["message"]["content"]["message"]["mid"] == "m_1"
    [delivered] = wait_until(lambda: [d for d in deliveries() if d["status"] == "delivered"], message="not listed")
    assert (delivered["id"], delivered["http_status"], delivered["error"]) == (failed["id"], 200, None)
    again = api.post("/webhooks.replay", json={"delivery_id": failed["id"]})
    assert again.status_code == 400 and "delivery_id" in again.json()["message"]


def test_a_delivery_failing_past_its_deadline_is_given_up_and_its_conversation_moves_on(
    api, worker, channel, receiver, fast_deliveries
):
    integrations.use_delivery_policy(dataclasses.replace(fast_deliveries, give_up_after_ms=500))
    subscription = subscribe(api, receiver.url, events=["message.created"])
    receiver.fail(503)
    from_facebook(api, text_message(PAGE, PSID, "m_1", "lost"))
    wait_until(
        lambda: WebhookDelivery.get_or_none(WebhookDelivery.status == "failed"), timeout=20, message="not given up"
    )
    receiver.recover()
    from_facebook(api, text_message(PAGE, PSID, "m_2", "next", timestamp=1_700_000_000_001))
    [request] = wait_until(lambda: receiver.accepted(), message="the conversation did not move on")
    assert request.payload["message"]["content"]["message"]["mid"] == "m_2"

    def listed() -> list[dict]:
        return api.post("/webhooks.deliveries", json={"id": subscription["id"]}).json()["data"]

    # The receiver has the request before the worker has recorded its answer.
    data = wait_until(lambda: (d := listed()) and d[0]["status"] != "pending" and d, message="not recorded")
    assert [(d["status"], d["http_status"]) for d in data] == [("delivered", 200), ("failed", 503)]
    assert data[1]["attempts"] > 1 and data[1]["error"].startswith("gave up after")


def test_reading_a_conversation_and_a_fetched_profile_produce_conversation_updated(
    api, worker, channel, receiver, fake_graph
):
    fake_graph.add_contact(PSID, "Grace", "Hopper", "https://cdn.example/grace.jpg")
    subscribe(api, receiver.url, events=["conversation.updated"])
    from_facebook(api, text_message(PAGE, PSID, "m_1", "hello"))
    [profiled] = wait_until(lambda: receiver.accepted("conversation.updated"), message="no profile update")
    assert profiled.payload["contact"] == {
        "display_name": "Grace Hopper",
        "avatar_url": "https://cdn.example/grace.jpg",
    }
    assert profiled.payload["unread_message_count"] == 1
    assert Contact.get().profile_state == "fetched"
    conversation_id = profiled.payload["id"]
    assert api.post("/conversations.read", json={"conversation_id": conversation_id}).status_code == 202
    updates = wait_until(lambda: receiver.accepted("conversation.updated")[1:], message="no read update")
    assert [u.payload["unread_message_count"] for u in updates] == [0]
    assert updates[0].payload == api.post("/conversations.info", json={"conversation_id": conversation_id}).json()
    assert Message.select().count() == 1


def test_a_send_through_the_api_produces_message_created_then_message_updated_with_the_final_state(
    api, worker, channel, receiver, fake_graph
):
    subscribe(api, receiver.url, events=["message.created", "message.updated"])
    from_facebook(api, text_message(PAGE, PSID, "m_1", "where is my order?", timestamp=now_ms()))
    [incoming] = wait_until(lambda: receiver.accepted("message.created"), message="incoming not delivered")
    conversation_id = incoming.payload["conversation_id"]
    sent = api.post("/messages.send", json={"conversation_id": conversation_id, "message": {"text": "shipped"}})
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["id"]

    def about_the_send() -> list:
        return [r for r in receiver.accepted() if r.payload["message"]["id"] == message_id]

    created, updated = wait_until(lambda: about_the_send()[1:] and about_the_send(), message="send not reported")
    assert (created.type, created.payload["message"]["delivery_state"]) == ("message.created", "pending")
    assert (updated.type, updated.payload["message"]["delivery_state"]) == ("message.updated", "delivered")
    [facebook] = fake_graph.sent_messages
    assert updated.payload["message"]["metadata"]["source_id"] == facebook["message_id"]
    assert updated.payload["message"] == api.post("/messages.info", json={"message_id": message_id}).json()
    assert created.payload["conversation_id"] == updated.payload["conversation_id"] == conversation_id
