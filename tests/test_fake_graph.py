"""Tests of the fake Graph API server itself, called over real HTTP with httpx."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fake_graph import (
    APP_RATE_LIMITED,
    INVALID_PARAMETER,
    INVALID_TOKEN,
    OUTSIDE_WINDOW,
    PAGE_RATE_LIMITED,
    PERMISSION_DENIED,
    RATE_LIMITED,
    TRANSIENT,
    USER_UNAVAILABLE,
    FakeGraph,
)

PAGE_ID = "1001"
PAGE_TOKEN = "EAAPageToken1001"
OTHER_PAGE_ID = "1002"
OTHER_PAGE_TOKEN = "EAAPageToken1002"
USER_TOKEN = "EAAUserToken"
PSID = "6543210987654321"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGraph]:
    """One fake for the whole module."""
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeGraph) -> FakeGraph:
    """The shared fake, reset and populated with two pages, a user managing the first and a contact."""
    server.reset()
    server.add_page(PAGE_ID, "Acme Support", PAGE_TOKEN, picture_url="https://cdn.example/acme.png")
    server.add_page(OTHER_PAGE_ID, "Other Page", OTHER_PAGE_TOKEN)
    server.add_user(USER_TOKEN, [PAGE_ID], user_id="777", name="Ada Lovelace")
    server.add_contact(PSID, "Grace", "Hopper", "https://cdn.example/grace.jpg")
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def get(client: httpx.Client, fake: FakeGraph, path: str, token: str | None, **params: Any) -> httpx.Response:
    if token is not None:
        params["access_token"] = token
    return client.get(fake.url + path, params=params)


def send(client: httpx.Client, fake: FakeGraph, body: dict[str, Any], path: str = "/me/messages") -> httpx.Response:
    return client.post(fake.url + path, params={"access_token": PAGE_TOKEN}, json=body)


def text_message(text: str = "hello") -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": text}}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    return error


def test_url_includes_version(fake: FakeGraph) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.url.endswith("/v25.0")


def test_ready_made_errors_have_facebook_shape() -> None:
    errors = [
        INVALID_TOKEN,
        USER_UNAVAILABLE,
        OUTSIDE_WINDOW,
        RATE_LIMITED,
        APP_RATE_LIMITED,
        PAGE_RATE_LIMITED,
        INVALID_PARAMETER,
        TRANSIENT,
        PERMISSION_DENIED,
    ]
    codes = [(error["code"], error.get("error_subcode")) for error in errors]
    assert codes == [(190, 460), (551, 1545041), (10, 2018278), (613, None), (4, None), (32, None)] + [
        (100, None),
        (2, None),
        (200, None),
    ]
    assert all(isinstance(error["message"], str) and error["type"] == "OAuthException" for error in errors)
    assert TRANSIENT["is_transient"] is True


# --- identity and nodes ---


def test_me_with_page_token(fake: FakeGraph, client: httpx.Client) -> None:
    response = get(client, fake, "/me", PAGE_TOKEN, fields="id,name")
    assert response.status_code == 200
    assert response.json() == {"id": PAGE_ID, "name": "Acme Support"}


def test_me_with_user_token(fake: FakeGraph, client: httpx.Client) -> None:
    assert get(client, fake, "/me", USER_TOKEN, fields="id,name").json() == {
        "id": "777",
        "name": "Ada Lovelace",
    }


def test_bearer_header_is_accepted(fake: FakeGraph, client: httpx.Client) -> None:
    response = client.get(fake.url + "/me", headers={"Authorization": f"Bearer {PAGE_TOKEN}"})
    assert response.json()["id"] == PAGE_ID
    assert fake.requests[-1].token == PAGE_TOKEN


def test_page_with_picture(fake: FakeGraph, client: httpx.Client) -> None:
    expected = {
        "id": PAGE_ID,
        "name": "Acme Support",
        "picture": {"data": {"url": "https://cdn.example/acme.png", "height": 50, "width": 50, "is_silhouette": False}},
    }
    for token in (PAGE_TOKEN, USER_TOKEN):
        assert get(client, fake, f"/{PAGE_ID}", token, fields="name,picture").json() == expected


def test_page_seen_by_another_page_token(fake: FakeGraph, client: httpx.Client) -> None:
    response = get(client, fake, f"/{PAGE_ID}", OTHER_PAGE_TOKEN, fields="name,picture")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["error_subcode"], error["type"]) == (100, 33, "GraphMethodException")
    assert error["message"].startswith(f"Unsupported get request. Object with ID '{PAGE_ID}' does not exist")


def test_unknown_field_is_rejected(fake: FakeGraph, client: httpx.Client) -> None:
    error = error_of(get(client, fake, f"/{PAGE_ID}", PAGE_TOKEN, fields="name,nope"))
    assert error["code"] == 100
    assert error["message"] == "(#100) Tried accessing nonexisting field (nope) on node type (Page)"


def test_contact_profile(fake: FakeGraph, client: httpx.Client) -> None:
    response = get(client, fake, f"/{PSID}", PAGE_TOKEN, fields="first_name,last_name,profile_pic")
    assert response.json() == {
        "first_name": "Grace",
        "last_name": "Hopper",
        "profile_pic": "https://cdn.example/grace.jpg",
        "id": PSID,
    }


def test_unknown_psid(fake: FakeGraph, client: httpx.Client) -> None:
    response = get(client, fake, "/999", PAGE_TOKEN, fields="first_name")
    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["error_subcode"]) == (100, 33)


def test_unknown_paths(fake: FakeGraph, client: httpx.Client) -> None:
    edge = error_of(get(client, fake, f"/{PAGE_ID}/nothing", PAGE_TOKEN))
    assert edge["code"] == 100 and "nonexisting field (nothing)" in edge["message"]
    deep = client.post(fake.url + f"/{PAGE_ID}/messages/extra", params={"access_token": PAGE_TOKEN})
    assert deep.status_code == 400
    assert error_of(deep)["message"] == "Unknown path components: /extra"
    accounts = error_of(get(client, fake, "/me/accounts", PAGE_TOKEN))
    assert accounts["message"] == "(#100) Tried accessing nonexisting field (accounts) on node type (Page)"


# --- tokens ---


def test_missing_and_unknown_tokens(fake: FakeGraph, client: httpx.Client) -> None:
    for token in (None, "garbage"):
        response = get(client, fake, "/me", token)
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == 190
        assert "error_subcode" not in error
        assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


def test_invalidated_token(fake: FakeGraph, client: httpx.Client) -> None:
    assert get(client, fake, "/me", PAGE_TOKEN).status_code == 200
    fake.invalidate_token(PAGE_TOKEN)
    response = send(client, fake, text_message())
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (190, 460)
    assert error["message"] == INVALID_TOKEN["message"]
    assert "invalid_token" in response.headers["www-authenticate"]
    assert fake.sent_messages == []
    assert get(client, fake, "/me", OTHER_PAGE_TOKEN).status_code == 200


# --- subscriptions ---


def test_subscribe_list_and_unsubscribe(fake: FakeGraph, client: httpx.Client) -> None:
    url = fake.url + f"/{PAGE_ID}/subscribed_apps"
    auth = {"access_token": PAGE_TOKEN}
    assert client.get(url, params=auth).json() == {"data": []}
    fields = "messages,messaging_postbacks,message_echoes"
    response = client.post(url, params={**auth, "subscribed_fields": fields})
    assert response.json() == {"success": True}
    assert fake.subscriptions == {PAGE_ID: ["messages", "messaging_postbacks", "message_echoes"]}
    assert client.get(url, params=auth).json() == {
        "data": [{"id": fake.app_id, "name": "Airy", "subscribed_fields": fields.split(",")}]
    }
    fake.unsubscribe_app(PAGE_ID)
    assert client.get(url, params=auth).json() == {"data": []}
    client.post(url, params={**auth, "subscribed_fields": "messages"})
    assert client.delete(url, params=auth).json() == {"success": True}
    assert fake.subscriptions == {}


def test_subscribe_needs_that_pages_token(fake: FakeGraph, client: httpx.Client) -> None:
    url = fake.url + f"/{PAGE_ID}/subscribed_apps"
    by_user = client.post(url, params={"access_token": USER_TOKEN, "subscribed_fields": "messages"})
    assert error_of(by_user)["code"] == 210
    by_other = client.post(url, params={"access_token": OTHER_PAGE_TOKEN, "subscribed_fields": "messages"})
    assert (error_of(by_other)["code"], error_of(by_other)["error_subcode"]) == (100, 33)
    typo = client.post(url, params={"access_token": PAGE_TOKEN, "subscribed_fields": "messages,mesages"})
    assert 'got "mesages"' in error_of(typo)["message"]
    assert fake.subscriptions == {}


# --- /me/accounts ---


def test_accounts_paging_over_a_thousand_pages(fake: FakeGraph, client: httpx.Client) -> None:
    page_ids = [str(2_000_000 + index) for index in range(1000)]
    for page_id in page_ids:
        fake.add_page(page_id, f"Page {page_id}", f"token-{page_id}")
    fake.add_user("EAAManyPages", page_ids)
    started = time.monotonic()
    seen: list[str] = []
    calls = 0
    next_url: str | None = fake.url + "/me/accounts?" + "access_token=EAAManyPages&fields=id,name,access_token"
    while next_url:
        response = client.get(next_url)
        calls += 1
        assert response.status_code == 200, response.text
        body = response.json()
        for account in body["data"]:
            assert account["access_token"] == f"token-{account['id']}"
            seen.append(account["id"])
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        next_url = body["paging"].get("next")
        if next_url:
            assert next_url.startswith(fake.origin + "/v25.0/")
            assert parse_qs(urlsplit(next_url).query)["after"] == [body["paging"]["cursors"]["after"]]
    assert seen == page_ids
    assert calls == 40
    assert time.monotonic() - started < 10


def test_accounts_default_fields_limit_and_previous(fake: FakeGraph, client: httpx.Client) -> None:
    page_ids = [str(3_000 + index) for index in range(5)]
    for page_id in page_ids:
        fake.add_page(page_id, f"Page {page_id}", f"token-{page_id}")
    fake.add_user("EAAFive", page_ids)
    first = get(client, fake, "/me/accounts", "EAAFive", limit=2).json()
    assert [account["id"] for account in first["data"]] == page_ids[:2]
    assert first["data"][0]["category"] == "Business"
    assert first["data"][0]["tasks"] == ["MANAGE", "MESSAGING"]
    assert "picture" not in first["data"][0]
    assert "previous" not in first["paging"]
    second = client.get(first["paging"]["next"]).json()
    assert [account["id"] for account in second["data"]] == page_ids[2:4]
    back = client.get(second["paging"]["previous"]).json()
    assert [account["id"] for account in back["data"]] == page_ids[:2]
    last = client.get(second["paging"]["next"]).json()
    assert [account["id"] for account in last["data"]] == page_ids[4:]
    assert "next" not in last["paging"]
    with_picture = get(client, fake, "/me/accounts", "EAAFive", fields="id,picture", limit=1).json()
    assert set(with_picture["data"][0]) == {"id", "picture"}


def test_accounts_of_a_user_without_pages(fake: FakeGraph, client: httpx.Client) -> None:
    fake.add_user("EAANoPages", [])
    assert get(client, fake, "/me/accounts", "EAANoPages").json() == {"data": []}


# --- Send API ---


def test_send_is_recorded(fake: FakeGraph, client: httpx.Client) -> None:
    first = send(client, fake, text_message("hi"))
    second = send(client, fake, {**text_message("again"), "tag": "ACCOUNT_UPDATE"}, path=f"/{PAGE_ID}/messages")
    assert first.status_code == second.status_code == 200
    ids = [first.json()["message_id"], second.json()["message_id"]]
    assert first.json() == {"recipient_id": PSID, "message_id": ids[0]}
    assert all(message_id.startswith("m_") for message_id in ids) and ids[0] != ids[1]
    assert fake.sent_messages == [
        {**text_message("hi"), "page_id": PAGE_ID, "message_id": ids[0]},
        {**text_message("again"), "tag": "ACCOUNT_UPDATE", "page_id": PAGE_ID, "message_id": ids[1]},
    ]
    recorded = fake.find_requests("POST", "/*/messages")
    assert [request.path for request in recorded] == ["/me/messages", f"/{PAGE_ID}/messages"]
    assert recorded[0].json == text_message("hi")
    assert recorded[0].token == PAGE_TOKEN
    assert recorded[0].query == {"access_token": PAGE_TOKEN}


def test_send_validation(fake: FakeGraph, client: httpx.Client) -> None:
    cases = {
        "(#100) The parameter recipient is required": {"message": {"text": "x"}},
        "(#100) param recipient must be non-empty.": {"recipient": {"id": ""}, "message": {"text": "x"}},
        "(#100) Must send either message or sender action": {"recipient": {"id": PSID}},
        "(#100) Message cannot be empty, must provide valid attachment or text": {
            "recipient": {"id": PSID},
            "message": {},
        },
    }
    for message, body in cases.items():
        response = send(client, fake, body)
        assert response.status_code == 400
        assert error_of(response)["message"] == message
    too_long = error_of(send(client, fake, text_message("x" * 2001)))
    assert "less than or equal to 2000" in too_long["message"]
    assert fake.sent_messages == []


def test_send_needs_that_pages_token(fake: FakeGraph, client: httpx.Client) -> None:
    url = fake.url + f"/{PAGE_ID}/messages"
    by_user = client.post(url, params={"access_token": USER_TOKEN}, json=text_message())
    assert error_of(by_user)["code"] == 210
    by_other = client.post(url, params={"access_token": OTHER_PAGE_TOKEN}, json=text_message())
    assert error_of(by_other)["error_subcode"] == 33
    assert fake.sent_messages == []


def test_sender_actions_are_recorded_apart(fake: FakeGraph, client: httpx.Client) -> None:
    response = send(client, fake, {"recipient": {"id": PSID}, "sender_action": "typing_on"})
    assert response.json() == {"recipient_id": PSID}
    assert fake.sender_actions == [{"recipient": {"id": PSID}, "sender_action": "typing_on", "page_id": PAGE_ID}]
    assert fake.sent_messages == []


def test_strict_recipients(fake: FakeGraph, client: httpx.Client) -> None:
    fake.strict_recipients = True
    stranger = {**text_message(), "recipient": {"id": "123"}}
    error = error_of(send(client, fake, stranger))
    assert (error["code"], error["error_subcode"]) == (100, 2018001)
    assert send(client, fake, text_message()).status_code == 200


def test_concurrent_sends_are_all_recorded(fake: FakeGraph) -> None:
    def one(index: int) -> str:
        with httpx.Client(timeout=10) as http:
            return send(http, fake, text_message(f"n{index}")).json()["message_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(one, range(40)))
    assert len(set(ids)) == 40
    assert sorted(message["message_id"] for message in fake.sent_messages) == sorted(ids)


# --- failure injection and latency ---


def test_fail_next_requests_then_recover(fake: FakeGraph, client: httpx.Client) -> None:
    fake.fail("POST", "/me/messages", error=USER_UNAVAILABLE, times=2)
    for _ in range(2):
        response = send(client, fake, text_message())
        assert response.status_code == 400
        assert response.json() == {"error": USER_UNAVAILABLE}
    assert send(client, fake, text_message()).status_code == 200
    assert len(fake.sent_messages) == 1
    assert len(fake.find_requests("POST", "/me/messages")) == 3


def test_fail_with_glob_and_server_error(fake: FakeGraph, client: httpx.Client) -> None:
    fake.fail("GET", "/*/subscribed_apps", error=TRANSIENT, status=500)
    response = get(client, fake, f"/{PAGE_ID}/subscribed_apps", PAGE_TOKEN)
    assert response.status_code == 500
    assert response.json()["error"]["is_transient"] is True
    assert get(client, fake, f"/{PAGE_ID}/subscribed_apps", PAGE_TOKEN).status_code == 200


def test_fail_forever_and_reset(fake: FakeGraph, client: httpx.Client) -> None:
    fake.fail("*", "/me", error=RATE_LIMITED, times=-1)
    for _ in range(3):
        assert error_of(get(client, fake, "/me", PAGE_TOKEN))["code"] == 613
    fake.reset()
    fake.add_page(PAGE_ID, "Acme Support", PAGE_TOKEN)
    assert get(client, fake, "/me", PAGE_TOKEN).status_code == 200
    assert len(fake.requests) == 1


def test_fail_with_delay_lets_clients_time_out(fake: FakeGraph) -> None:
    fake.fail("POST", "/me/messages", delay_ms=1500)
    with httpx.Client(timeout=0.3) as http, pytest.raises(httpx.ReadTimeout):
        send(http, fake, text_message())


def test_latency_is_added(fake: FakeGraph, client: httpx.Client) -> None:
    fake.latency_ms = 200
    started = time.monotonic()
    assert get(client, fake, "/me", PAGE_TOKEN).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_reset_clears_everything(fake: FakeGraph, client: httpx.Client) -> None:
    send(client, fake, text_message())
    client.post(
        fake.url + f"/{PAGE_ID}/subscribed_apps",
        params={"access_token": PAGE_TOKEN, "subscribed_fields": "messages"},
    )
    fake.invalidate_token(OTHER_PAGE_TOKEN)
    fake.latency_ms = 50
    fake.reset()
    assert (fake.requests, fake.sent_messages, fake.subscriptions, fake.latency_ms) == ([], [], {}, 0)
    assert error_of(get(client, fake, "/me", PAGE_TOKEN))["message"].startswith("Invalid OAuth access token")


def test_stop_does_not_hang_on_a_pending_request() -> None:
    fake = FakeGraph().start()
    fake.add_page(PAGE_ID, "Acme", PAGE_TOKEN)
    fake.fail("GET", "/me", delay_ms=30_000)
    thread = threading.Thread(target=lambda: httpx.get(fake.url + "/me", params={"access_token": PAGE_TOKEN}))
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 5
    thread.join(10)
    assert not thread.is_alive()


# --- echo webhooks ---


class _Receiver(BaseHTTPRequestHandler):
    """Collects the webhooks the fake posts."""

    received: list[tuple[bytes, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, dict(self.headers)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


def test_echoes_are_delivered_signed(fake: FakeGraph, client: httpx.Client) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        fake.deliver_echoes_to(f"http://127.0.0.1:{receiver.server_port}/webhook", "s3cret")
        image = {"type": "image", "payload": {"url": "https://cdn.example/cat.png"}}
        first = send(client, fake, text_message("héllo")).json()["message_id"]
        second = send(client, fake, {**text_message(), "message": {"attachment": image}}).json()["message_id"]
        fake.flush_echoes()
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert [echo.status for echo in fake.echoes] == [200, 200]
    assert len(_Receiver.received) == 2
    payloads = []
    for body, headers in _Receiver.received:
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
        assert b"https:\\/\\/" in body or b"\\u00e9" in body
        payloads.append(json.loads(body))
    entry = payloads[0]["entry"][0]
    assert payloads[0]["object"] == "page" and entry["id"] == PAGE_ID
    event = entry["messaging"][0]
    assert event["sender"] == {"id": PAGE_ID} and event["recipient"] == {"id": PSID}
    assert event["message"] == {"is_echo": True, "app_id": int(fake.app_id), "mid": first, "text": "héllo"}
    assert payloads[1]["entry"][0]["messaging"][0]["message"]["attachments"] == [image]
    assert payloads[1]["entry"][0]["messaging"][0]["message"]["mid"] == second
