"""Facebook's webhook over real HTTP: verification, signatures, limits, and events becoming messages."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from airy_actors.models import Channel, Message, WebhookEvent
from tests.support import (
    APP_SECRET,
    WEBHOOK_SECRET,
    entry,
    postback,
    reaction,
    sign,
    text_message,
    wait_until,
    webhook_body,
)

PAGE = "1001"


@pytest.fixture
def channel(db) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def post_webhook(api, body: bytes, headers: dict[str, str] | None = None):
    return api.post("/facebook", content=body, headers=sign(body) if headers is None else headers)


def test_verification_answers_the_challenge_when_the_token_matches(api):
    answer = api.get(
        "/facebook", params={"hub.mode": "subscribe", "hub.verify_token": WEBHOOK_SECRET, "hub.challenge": "1158201444"}
    )
    assert answer.status_code == 200
    assert answer.text == "1158201444"
    assert answer.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": WEBHOOK_SECRET, "hub.challenge": "1"},
    ],
)
def test_verification_with_a_wrong_or_missing_token_is_forbidden(api, params):
    answer = api.get("/facebook", params=params)
    assert answer.status_code == 403
    assert "verify_token" in answer.json()["message"]


def test_signed_batch_becomes_conversations_and_messages(api, worker, channel):
    # Given a batch of two contacts' events, When Facebook posts it, Then the API shows them
    body = webhook_body(
        entry(
            PAGE,
            text_message(PAGE, "2001", "m_1", "hello", timestamp=1_700_000_000_000),
            postback(PAGE, "2002", "m_2", "GET_STARTED", "Get started", timestamp=1_700_000_001_000),
            text_message(PAGE, "2001", "m_3", "anyone?", timestamp=1_700_000_002_000),
        )
    )
    answer = post_webhook(api, body)
    assert answer.status_code == 200

    listing = wait_until(lambda: _conversations_with(api, total=2), message="conversations did not appear")
    first, second = listing["data"]
    assert first["contact"]["display_name"] and first["last_message"]["content"]["message"]["text"] == "anyone?"
    assert first["unread_message_count"] == 2 and second["unread_message_count"] == 1
    assert first["channel"]["source_channel_id"] == PAGE
    messages = api.post("/messages.list", json={"conversation_id": first["id"]}).json()
    assert [m["content"]["message"]["mid"] for m in messages["data"]] == ["m_3", "m_1"]
    newest = messages["data"][0]
    assert newest["from_contact"] is True and newest["delivery_state"] == "delivered"
    assert newest["sender"] == {"id": "2001"} and newest["source"] == "facebook"
    assert newest["sent_at"] == "2023-11-14T22:13:22.000Z"


def test_posting_the_same_batch_again_changes_nothing(api, worker, channel):
    body = webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello")))
    assert post_webhook(api, body).status_code == 200
    wait_until(lambda: Message.select().count() == 1)
    before = api.post("/conversations.list", json={}).json()

    assert post_webhook(api, body).status_code == 200
    # A different request carrying the same event again, as Facebook's redelivery does
    again = webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello"), reaction(PAGE, "2001", "m_1")))
    assert post_webhook(api, again).status_code == 200
    wait_until(lambda: "reaction" in Message.get().metadata, message="the second request was not processed")
    after = api.post("/conversations.list", json={}).json()
    assert Message.select().count() == 1
    assert after["data"][0]["unread_message_count"] == before["data"][0]["unread_message_count"] == 1


def test_forged_signature_is_refused_and_nothing_is_stored(api, channel):
    body = webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello")))
    forged = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    for headers in (
        {"X-Hub-Signature-256": f"sha256={forged}"},
        {},
        {"X-Hub-Signature-256": "sha256="},
        {"X-Hub-Signature": "sha1=" + hmac.new(b"nope", body, hashlib.sha1).hexdigest()},
    ):
        answer = post_webhook(api, body, headers)
        assert answer.status_code == 403, headers
        assert "signature" in answer.json()["message"].lower()
    assert WebhookEvent.select().count() == 0


def test_a_body_altered_after_signing_is_refused(api, channel):
    body = webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello")))
    headers = sign(body)
    assert post_webhook(api, body.replace(b"hello", b"HELLO"), headers).status_code == 403


def test_sha1_signature_is_accepted_when_it_is_the_only_one(api, worker, channel):
    body = webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello")))
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert post_webhook(api, body, {"X-Hub-Signature": f"sha1={digest}"}).status_code == 200
    wait_until(lambda: Message.select().count() == 1)


def test_signed_body_that_is_not_json_is_a_bad_request(api):
    for body in (b"not json", b"[1, 2]", b""):
        answer = post_webhook(api, body)
        assert answer.status_code == 400, body
        assert "json" in answer.json()["message"].lower()
    assert WebhookEvent.select().count() == 0


def test_a_text_cut_inside_a_surrogate_pair_is_accepted_as_it_came(api):
    # Given signed objects with a lone surrogate, escaped (as Meta sends a text cut inside an emoji) or raw
    bodies = [
        b'{"object": "page", "entry": [], "text": "cut \\ud83d"}',
        b'{"object": "page", "entry": [], "text": "cut \xed\xa0\xbd"}',
    ]
    # When Facebook posts them, Then they are accepted and stored as they came (ingestion reads U+FFFD)
    for body in bodies:
        assert post_webhook(api, body).status_code == 200, body
    assert sorted(row.body for row in WebhookEvent.select()) == sorted(
        body.decode("utf-8", errors="replace") for body in bodies
    )


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (b'{"object": "page", "entry": [], "score": NaN}', "NaN"),
        (b'{"object": "page", "entry": [], "score": Infinity}', "Infinity"),
        (b'{"object": "page", "entry": [], "score": -Infinity}', "-Infinity"),
        (b'{"object": "page", "entry": ' + b"[" * 64 + b"]" * 64 + b"}", "64 levels"),
    ],
    ids=["NaN", "Infinity", "-Infinity", "65-deep"],
)
def test_json_with_nan_or_too_deep_is_refused_and_not_stored(api, body, token):
    answer = post_webhook(api, body)
    assert answer.status_code == 400
    assert token in answer.json()["message"]
    assert WebhookEvent.select().count() == 0


def test_64_levels_of_nesting_are_accepted(api):
    body = b'{"object": "page", "entry": [], "deep": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert post_webhook(api, body).status_code == 200


def test_an_unexpected_failure_is_a_500_without_details_and_is_logged(api, monkeypatch, caplog):
    # Given a web process whose webhook writer fails in a way nobody foresaw
    from api.routes import webhook

    async def failing(raw: bytes) -> None:
        raise RuntimeError("writer exploded at 0xdeadbeef")

    monkeypatch.setattr(webhook.writer, "submit", failing)
    # When Facebook posts a valid delivery
    answer = post_webhook(api, webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello"))))
    # Then it gets a JSON 500 that tells nothing of the inside, so Facebook retries; the log has the details
    assert answer.status_code == 500
    assert answer.json() == {"message": "internal error; it has been logged"}
    assert "exploded" not in answer.text and "Traceback" not in answer.text
    assert any(record.exc_info and "exploded" in str(record.exc_info[1]) for record in caplog.records)


def test_body_over_one_mebibyte_is_refused_and_exactly_one_is_accepted(api):
    prefix = json.dumps({"object": "page", "entry": []}).encode()
    exactly = prefix[:-1] + b" " * (1_048_576 - len(prefix)) + b"}"
    assert len(exactly) == 1_048_576
    assert post_webhook(api, exactly).status_code == 200
    over = exactly[:-1] + b" }"
    answer = post_webhook(api, over)
    assert answer.status_code == 413 and "bytes" in answer.json()["message"]
    assert WebhookEvent.select().count() == 1


def test_webhook_answers_503_naming_the_missing_variables_when_unconfigured(serve_app):
    with serve_app(facebook_app_secret=None, facebook_webhook_secret=None) as client:
        posted = client.post("/facebook", content=b"{}", headers=sign(b"{}"))
        verified = client.get("/facebook", params={"hub.mode": "subscribe", "hub.verify_token": "x"})
    assert posted.status_code == 503 and "FACEBOOK_APP_SECRET" in posted.json()["message"]
    assert verified.status_code == 503 and "FACEBOOK_WEBHOOK_SECRET" in verified.json()["message"]


def test_a_stored_request_is_processed_even_if_it_was_never_enqueued(db, broker, worker, channel):
    # Given a request stored by a web process that crashed before enqueuing it
    from airy_actors.actors.sweeper import run_sweeps
    from airy_actors.ingestion import store_webhook_request

    store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, "2001", "m_1", "hello"))))
    WebhookEvent.update(next_attempt_at=0).execute()
    # When the sweeper runs, Then the message appears
    assert run_sweeps()["sweep_webhook_events"] == 1
    wait_until(lambda: Message.select().count() == 1, message="the swept request was not ingested")


def test_health_is_ok_when_database_and_broker_answer(api):
    answer = api.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def _conversations_with(api, total: int):
    listing = api.post("/conversations.list", json={}).json()
    ready = listing["response_metadata"]["total"] == total and all(c["last_message"] for c in listing["data"])
    return listing if ready else None
