"""``/webhooks.*``: what a subscription shows, what it refuses, and the secrets it keeps."""

from __future__ import annotations

import dataclasses

import pytest

from airy_actors import integrations
from airy_actors.config import get_settings, use_settings
from airy_actors.models.integrations import EVENT_TYPES, OutboxEvent, WebhookSubscription

URL = "https://hooks.example.com/airy?team=7"


def test_a_subscription_is_shown_without_its_key_or_header_values(api):
    body = {
        "url": URL,
        "headers": {"Authorization": "Bearer receiver-secret", "X-Team": "seven"},
        "events": ["message.created", "channel.updated"],
        "signature_key": "signing-secret",
    }
    created = api.post("/webhooks.subscribe", json=body)
    assert created.status_code == 200, created.text
    subscription = created.json()
    assert subscription["url"] == URL
    assert subscription["events"] == ["message.created", "channel.updated"]
    assert subscription["signature_key_set"] is True
    assert sorted(subscription["headers"]) == ["Authorization", "X-Team"]
    info = api.post("/webhooks.info", json={"id": subscription["id"]})
    listed = api.post("/webhooks.list", json={})
    assert info.json() == subscription and listed.json() == {"data": [subscription]}
    for response in (created, info, listed):
        for secret in ("receiver-secret", "signing-secret", "seven"):
            assert secret not in response.text
    # The key and the headers are kept, for signing and sending.
    stored = WebhookSubscription.get_by_id(subscription["id"])
    assert stored.signature_key == "signing-secret" and stored.headers["Authorization"] == "Bearer receiver-secret"


def test_a_subscription_without_events_receives_every_type(api):
    subscription = api.post("/webhooks.subscribe", json={"url": "http://127.0.0.1:8080/hook"}).json()
    assert subscription["events"] == list(EVENT_TYPES)
    assert subscription["signature_key_set"] is False and subscription["headers"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": 7}, "url"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "hooks.example.com/x"}, "url"),
        ({"url": "http://hooks.example.com:99999/x"}, "url"),
        ({"url": "http://hooks.example.com/a b"}, "url"),
        ({"url": URL, "headers": ["X-Team"]}, "headers"),
        ({"url": URL, "headers": {"X-Team": 7}}, "headers.X-Team"),
        ({"url": URL, "headers": {"bad name": "x"}}, "headers"),
        ({"url": URL, "headers": {"X-Team": "a\r\nInjected: yes"}}, "headers.X-Team"),
        ({"url": URL, "headers": {"X-Airy-Content-Signature": "forged"}}, "headers.X-Airy-Content-Signature"),
        ({"url": URL, "events": "message.created"}, "events"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["message.created", 3]}, "events"),
        ({"url": URL, "events": ["message.created", "message.deleted"]}, "message.deleted"),
        ({"url": URL, "signature_key": 12}, "signature_key"),
        ({"url": URL, "signature_key": ""}, "signature_key"),
    ],
)
def test_a_bad_subscription_is_refused_naming_the_field(api, body, field):
    response = api.post("/webhooks.subscribe", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert WebhookSubscription.select().count() == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/webhooks.info", {"id": "nope"}),
        ("/webhooks.unsubscribe", {"id": "nope"}),
        ("/webhooks.deliveries", {"id": "nope"}),
        ("/webhooks.replay", {"delivery_id": "nope"}),
    ],
)
def test_unknown_ids_are_not_found(api, path, body):
    response = api.post(path, json=body)
    assert response.status_code == 404
    assert "nope" in response.json()["message"]


@pytest.mark.parametrize("path", ["/webhooks.info", "/webhooks.unsubscribe", "/webhooks.deliveries"])
def test_a_missing_id_is_a_bad_request(api, path):
    response = api.post(path, json={})
    assert response.status_code == 400 and "id" in response.json()["message"]


def test_deliveries_are_paginated_like_every_list(api):
    subscription = api.post("/webhooks.subscribe", json={"url": URL}).json()
    response = api.post("/webhooks.deliveries", json={"id": subscription["id"], "page_size": 0})
    assert response.status_code == 400 and "page_size" in response.json()["message"]
    empty = api.post("/webhooks.deliveries", json={"id": subscription["id"]}).json()
    assert empty == {
        "data": [],
        "response_metadata": {"previous_cursor": "", "next_cursor": "", "filtered_total": 0, "total": 0},
    }
    # Given three events fanned out to the subscription
    for number in range(3):
        OutboxEvent.create(type="channel.updated", ordering_key="c", payload={"n": number})
    integrations.drain_outbox()
    first = api.post("/webhooks.deliveries", json={"id": subscription["id"], "page_size": 2}).json()
    cursor = first["response_metadata"]["next_cursor"]
    second = api.post("/webhooks.deliveries", json={"id": subscription["id"], "page_size": 2, "cursor": cursor}).json()
    events = [d["event_id"] for d in first["data"] + second["data"]]
    assert len(events) == 3 and events == sorted(events, key=int, reverse=True)  # newest first
    assert {d["status"] for d in first["data"]} == {"pending"}
    assert first["response_metadata"]["total"] == 3 and second["response_metadata"]["next_cursor"] == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://[fe80::1]/hook",
    ],
)
def test_private_and_metadata_targets_are_refused_unless_allowed(api, url):
    # Given a service that delivers only to public addresses (the default)
    allowing = get_settings()
    use_settings(dataclasses.replace(allowing, webhooks_allow_private=False))
    try:
        # When an integrator subscribes a private, loopback or link-local target, in any spelling
        answer = api.post("/webhooks.subscribe", json={"url": url})
    finally:
        use_settings(allowing)
    # Then it is refused, naming the field, and nothing is stored
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith("url")
    assert WebhookSubscription.select().count() == 0
    # And with AIRY_WEBHOOKS_ALLOW_PRIVATE (a receiver on the same host) it is accepted
    assert api.post("/webhooks.subscribe", json={"url": url}).status_code == 200


def test_credentials_in_a_url_are_masked_and_hop_by_hop_headers_refused(api):
    created = api.post("/webhooks.subscribe", json={"url": "https://user:pa55word@hooks.example.com/airy"})
    assert created.status_code == 200, created.text
    assert "pa55word" not in created.text and "hooks.example.com/airy" in created.json()["url"]
    for header in ("Transfer-Encoding", "Host", "Connection", "Content-Length"):
        refused = api.post("/webhooks.subscribe", json={"url": URL, "headers": {header: "x"}})
        assert refused.status_code == 400 and header in refused.json()["message"], refused.text
