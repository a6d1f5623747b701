"""Tests of the fake Graph API server itself, called over real HTTP with httpx."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fake_graph import (
    APP_RATE_LIMITED,
    ATTACHMENT_FETCH_FAILED,
    ATTACHMENT_NOT_OWNED,
    ATTACHMENT_TOO_LARGE,
    ATTACHMENT_UPLOAD_FAILED,
    IG_ACCESS_DISABLED,
    IG_INVALID_MESSAGE,
    IG_NO_MATCHING_USER,
    IG_OUTSIDE_WINDOW,
    IG_PAGE_NOT_LINKED,
    IG_RATE_LIMITED,
    INVALID_PARAMETER,
    INVALID_TOKEN,
    NOT_A_RECEIVER,
    NOT_THREAD_OWNER,
    NOTIFICATION_STOPPED,
    NOTIFICATION_TOKEN_EXPIRED,
    NOTIFICATION_TOKEN_INVALID,
    NOTIFICATION_TOO_SOON,
    OUTSIDE_WINDOW,
    PAGE_INBOX_APP_ID,
    PAGE_RATE_LIMITED,
    PERMISSION_DENIED,
    RATE_LIMITED,
    SECONDARY_RECEIVER_HIDDEN,
    THREAD_CONTROLLED_BY_ANOTHER_APP,
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
IG_ACCOUNT_ID = "17841400008460056"
IGSID = "7391024615882035"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


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


def post(
    client: httpx.Client, fake: FakeGraph, path: str, body: dict[str, Any], token: str = PAGE_TOKEN
) -> httpx.Response:
    return client.post(fake.url + path, params={"access_token": token}, json=body)


def text_message(text: str = "hello") -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": text}}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    return error


def code_of(response: httpx.Response) -> tuple[int, int | None]:
    assert response.status_code == 400, response.text
    error = error_of(response)
    return error["code"], error.get("error_subcode")


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


def test_new_ready_made_errors_have_facebook_shape() -> None:
    errors = {
        "THREAD_CONTROLLED_BY_ANOTHER_APP": (THREAD_CONTROLLED_BY_ANOTHER_APP, 10, 2018300),
        "NOT_THREAD_OWNER": (NOT_THREAD_OWNER, 100, 2534037),
        "NOT_A_RECEIVER": (NOT_A_RECEIVER, 2018171, None),
        "SECONDARY_RECEIVER_HIDDEN": (SECONDARY_RECEIVER_HIDDEN, 100, 2018234),
        "NOTIFICATION_TOKEN_INVALID": (NOTIFICATION_TOKEN_INVALID, 100, None),
        "NOTIFICATION_TOKEN_EXPIRED": (NOTIFICATION_TOKEN_EXPIRED, 100, None),
        "NOTIFICATION_STOPPED": (NOTIFICATION_STOPPED, 10, 1893015),
        "NOTIFICATION_TOO_SOON": (NOTIFICATION_TOO_SOON, 4, 2018354),
        "ATTACHMENT_FETCH_FAILED": (ATTACHMENT_FETCH_FAILED, 100, 2018008),
        "ATTACHMENT_UPLOAD_FAILED": (ATTACHMENT_UPLOAD_FAILED, 100, 2018047),
        "ATTACHMENT_NOT_OWNED": (ATTACHMENT_NOT_OWNED, 100, 2018074),
        "ATTACHMENT_TOO_LARGE": (ATTACHMENT_TOO_LARGE, 100, 2018109),
        "IG_OUTSIDE_WINDOW": (IG_OUTSIDE_WINDOW, 10, 2534022),
        "IG_NO_MATCHING_USER": (IG_NO_MATCHING_USER, 100, 2534014),
        "IG_PAGE_NOT_LINKED": (IG_PAGE_NOT_LINKED, 100, 2534013),
        "IG_INVALID_MESSAGE": (IG_INVALID_MESSAGE, 100, 2534015),
        "IG_ACCESS_DISABLED": (IG_ACCESS_DISABLED, 200, 2534041),
        "IG_RATE_LIMITED": (IG_RATE_LIMITED, 613, 2534040),
    }
    for name, (error, code, subcode) in errors.items():
        assert (error["code"], error.get("error_subcode")) == (code, subcode), name
        assert error["type"] == "OAuthException" and error["message"] and error["fbtrace_id"], name


# --- handover protocol ---


def test_pass_and_take_thread_control_move_the_thread(fake: FakeGraph, client: httpx.Client) -> None:
    owner_url = f"/{PAGE_ID}/thread_owner"
    assert get(client, fake, owner_url, PAGE_TOKEN, recipient=PSID).json() == {"data": []}

    passed = post(
        client,
        fake,
        "/me/pass_thread_control",
        {"recipient": {"id": PSID}, "target_app_id": int(PAGE_INBOX_APP_ID), "metadata": "needs a human"},
    )
    assert passed.json() == {"success": True}
    assert fake.thread_owner(PAGE_ID, PSID) == PAGE_INBOX_APP_ID
    answer = get(client, fake, "/me/thread_owner", PAGE_TOKEN, recipient=PSID).json()
    assert answer == {"data": [{"thread_owner": {"app_id": PAGE_INBOX_APP_ID}}]}
    assert code_of(send(client, fake, text_message())) == (10, 2018300)
    assert fake.sent_messages == []

    taken = post(client, fake, f"/{PAGE_ID}/take_thread_control", {"recipient": {"id": PSID}, "metadata": "back"})
    assert taken.json() == {"success": True}
    assert fake.thread_owner(PAGE_ID, PSID) == fake.app_id
    assert send(client, fake, text_message()).status_code == 200
    assert fake.handover_calls == [
        {
            "recipient": {"id": PSID},
            "target_app_id": int(PAGE_INBOX_APP_ID),
            "metadata": "needs a human",
            "action": "pass_thread_control",
            "page_id": PAGE_ID,
        },
        {"recipient": {"id": PSID}, "metadata": "back", "action": "take_thread_control", "page_id": PAGE_ID},
    ]


def test_secondary_receiver_requests_what_it_may_not_take(fake: FakeGraph, client: httpx.Client) -> None:
    other_app = "555000111222333"
    fake.set_handover_role(PAGE_ID, "secondary")
    fake.set_thread_owner(PAGE_ID, PSID, other_app)
    body = {"recipient": {"id": PSID}}

    assert code_of(post(client, fake, "/me/pass_thread_control", {**body, "target_app_id": "1"})) == (100, 2534037)
    assert code_of(post(client, fake, "/me/take_thread_control", body)) == (100, 2534037)
    assert code_of(get(client, fake, "/me/thread_owner", PAGE_TOKEN, recipient=PSID)) == (100, 2018234)
    requested = post(client, fake, "/me/request_thread_control", {**body, "metadata": "please"})
    assert requested.json() == {"success": True}
    assert fake.thread_owner(PAGE_ID, PSID) == other_app
    assert [call["action"] for call in fake.handover_calls] == ["request_thread_control"]

    # Idle again: a secondary receiver may take it, and passing without a target returns it to the primary.
    fake.set_thread_owner(PAGE_ID, PSID, None)
    assert post(client, fake, "/me/take_thread_control", body).json() == {"success": True}
    assert post(client, fake, "/me/pass_thread_control", body).json() == {"success": True}
    assert fake.thread_owner(PAGE_ID, PSID) == PAGE_INBOX_APP_ID


def test_handover_errors(fake: FakeGraph, client: httpx.Client) -> None:
    body = {"recipient": {"id": PSID}, "target_app_id": PAGE_INBOX_APP_ID}
    by_user = post(client, fake, f"/{PAGE_ID}/pass_thread_control", body, token=USER_TOKEN)
    assert code_of(by_user) == (210, None)
    assert code_of(post(client, fake, "/me/pass_thread_control", {"target_app_id": "1"})) == (100, None)
    no_target = post(client, fake, "/me/pass_thread_control", {"recipient": {"id": PSID}})
    assert error_of(no_target)["message"] == "(#100) The parameter target_app_id is required"
    assert code_of(get(client, fake, "/me/thread_owner", PAGE_TOKEN)) == (100, None)

    fake.set_handover_role(PAGE_ID, None)
    refused = post(client, fake, "/me/take_thread_control", body)
    assert code_of(refused) == (2018171, None)
    assert error_of(refused)["message"] == "Only available to Primary and Secondary Receivers."

    fake.invalidate_token(PAGE_TOKEN)
    assert code_of(post(client, fake, "/me/take_thread_control", body)) == (190, 460)
    assert fake.handover_calls == []
    assert fake.thread_owner(PAGE_ID, PSID) is None


# --- recurring notifications ---


def notification(token: str, text: str = "Our summer sale starts today") -> dict[str, Any]:
    return {"recipient": {"notification_messages_token": token}, "message": {"text": text}}


def test_recurring_notification_is_sent_with_its_token(fake: FakeGraph, client: httpx.Client) -> None:
    fake.add_notification_token("NT-1", PSID, page_id=PAGE_ID)
    fake.close_window(PSID)
    response = send(client, fake, notification("NT-1"))
    assert response.status_code == 200, response.text
    message_id = response.json()["message_id"]
    assert response.json() == {"recipient_id": PSID, "message_id": message_id}
    assert fake.sent_messages == [{**notification("NT-1"), "page_id": PAGE_ID, "message_id": message_id}]
    assert code_of(send(client, fake, text_message())) == (10, 2018278)


def test_recurring_notification_token_errors(fake: FakeGraph, client: httpx.Client) -> None:
    fake.add_notification_token("NT-1", PSID, page_id=PAGE_ID)
    fake.set_notification_token_status("NT-1", "expired")
    expired = send(client, fake, notification("NT-1"))
    assert code_of(expired) == (100, None)
    assert error_of(expired)["message"] == "(#100) notification_messages_token has expired"
    fake.set_notification_token_status("NT-1", "stopped")
    stopped = send(client, fake, notification("NT-1"))
    assert code_of(stopped) == (10, 1893015)
    assert "stopped notification messages" in error_of(stopped)["message"]
    fake.set_notification_token_status("NT-UNKNOWN", "invalid")
    invalid = send(client, fake, notification("NT-UNKNOWN"))
    assert error_of(invalid)["message"] == "(#100) notification_messages_token is invalid"

    fake.set_notification_token_status("NT-1", "active")
    from_other_page = client.post(
        fake.url + "/me/messages", params={"access_token": OTHER_PAGE_TOKEN}, json=notification("NT-1")
    )
    assert error_of(from_other_page)["message"] == NOTIFICATION_TOKEN_INVALID["message"]
    fake.strict_recipients = True
    assert code_of(send(client, fake, notification("NT-NEVER-ADDED"))) == (100, None)
    assert fake.sent_messages == []
    assert send(client, fake, notification("NT-1")).json()["recipient_id"] == PSID


# --- Instagram ---


def link_instagram(fake: FakeGraph) -> None:
    fake.add_instagram_account(
        PAGE_ID, IG_ACCOUNT_ID, "acme.support", profile_picture_url="https://cdn.example/ig.jpg", name="Acme"
    )


def test_page_shows_its_linked_instagram_account(fake: FakeGraph, client: httpx.Client) -> None:
    link_instagram(fake)
    field = "instagram_business_account"
    assert get(client, fake, f"/{PAGE_ID}", PAGE_TOKEN, fields=field).json() == {
        field: {"id": IG_ACCOUNT_ID},
        "id": PAGE_ID,
    }
    assert get(client, fake, f"/{OTHER_PAGE_ID}", OTHER_PAGE_TOKEN, fields=field).json() == {"id": OTHER_PAGE_ID}
    expanded = get(client, fake, f"/{PAGE_ID}", PAGE_TOKEN, fields=f"{field}{{username,profile_picture_url}}")
    assert expanded.json() == {
        field: {"username": "acme.support", "profile_picture_url": "https://cdn.example/ig.jpg", "id": IG_ACCOUNT_ID},
        "id": PAGE_ID,
    }
    for token in (PAGE_TOKEN, USER_TOKEN):
        account = get(client, fake, f"/{IG_ACCOUNT_ID}", token, fields="username,profile_picture_url,name")
        assert account.json() == {
            "username": "acme.support",
            "profile_picture_url": "https://cdn.example/ig.jpg",
            "name": "Acme",
            "id": IG_ACCOUNT_ID,
        }
    fake.add_user("EAATwoPages", [PAGE_ID, OTHER_PAGE_ID])
    accounts = get(client, fake, "/me/accounts", "EAATwoPages", fields=f"id,name,{field}").json()["data"]
    assert [account.get(field) for account in accounts] == [{"id": IG_ACCOUNT_ID}, None]
    hidden = get(client, fake, f"/{IG_ACCOUNT_ID}", OTHER_PAGE_TOKEN, fields="username")
    assert code_of(hidden) == (100, 33)
    assert (
        "on node type (IGUser)" in error_of(get(client, fake, f"/{IG_ACCOUNT_ID}", PAGE_TOKEN, fields="bio"))["message"]
    )


def test_instagram_contact_profile(fake: FakeGraph, client: httpx.Client) -> None:
    link_instagram(fake)
    fake.add_instagram_contact(IGSID, name="Ada", username="ada.l", profile_pic="https://cdn.example/ada.jpg")
    fake.add_instagram_contact("7391024615882036", username="no.name")
    fields = "name,username,profile_pic"
    assert get(client, fake, f"/{IGSID}", PAGE_TOKEN, fields=fields).json() == {
        "name": "Ada",
        "username": "ada.l",
        "profile_pic": "https://cdn.example/ada.jpg",
        "id": IGSID,
    }
    unnamed = get(client, fake, "/7391024615882036", PAGE_TOKEN, fields=fields).json()
    assert unnamed == {"username": "no.name", "id": "7391024615882036"}
    assert code_of(get(client, fake, f"/{IGSID}", OTHER_PAGE_TOKEN, fields=fields)) == (100, 33)


def test_instagram_sends_are_recorded_apart_from_messenger(fake: FakeGraph, client: httpx.Client) -> None:
    link_instagram(fake)
    fake.add_instagram_contact(IGSID, username="ada.l")
    body = {"recipient": {"id": IGSID}, "message": {"text": "Hi from Instagram"}}
    first = send(client, fake, body, path=f"/{PAGE_ID}/messages")
    second = send(client, fake, {**body, "messaging_type": "RESPONSE"})
    ids = [first.json()["message_id"], second.json()["message_id"]]
    assert first.json() == {"recipient_id": IGSID, "message_id": ids[0]}
    assert all(message_id.startswith("aWdfZA") for message_id in ids) and ids[0] != ids[1]
    origin = {"page_id": PAGE_ID, "account_id": IG_ACCOUNT_ID}
    assert fake.sent_instagram_messages == [
        {**body, **origin, "message_id": ids[0]},
        {**body, "messaging_type": "RESPONSE", **origin, "message_id": ids[1]},
    ]
    typing = send(client, fake, {"recipient": {"id": IGSID}, "sender_action": "typing_on"})
    assert typing.json() == {"recipient_id": IGSID}
    assert fake.instagram_sender_actions == [{"recipient": {"id": IGSID}, "sender_action": "typing_on", **origin}]
    assert fake.sent_messages == [] and fake.sender_actions == []


def test_instagram_send_errors(fake: FakeGraph, client: httpx.Client) -> None:
    link_instagram(fake)
    fake.add_instagram_contact(IGSID, username="ada.l")
    fake.add_instagram_contact("7391024615882036", username="elsewhere", account_id="17841400000000001")
    body = {"recipient": {"id": IGSID}, "message": {"text": "Hello"}}

    fake.close_window(IGSID)
    late = send(client, fake, body)
    assert code_of(late) == (10, 2534022)
    assert error_of(late)["message"] == IG_OUTSIDE_WINDOW["message"]
    human = {**body, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    assert send(client, fake, human).status_code == 200
    fake.open_window(IGSID)

    unlinked = client.post(fake.url + "/me/messages", params={"access_token": OTHER_PAGE_TOKEN}, json=body)
    assert code_of(unlinked) == (100, 2534013)
    stranger = send(client, fake, {**body, "recipient": {"id": "7391024615882036"}})
    assert code_of(stranger) == (100, 2534014)
    too_long = send(client, fake, {**body, "message": {"text": "é" * 501}})
    assert "less than or equal to 1000" in error_of(too_long)["message"]
    fake.set_thread_owner(PAGE_ID, IGSID, "1217981644879628")
    assert code_of(send(client, fake, body)) == (10, 2018300)
    assert len(fake.sent_instagram_messages) == 1


# --- Attachment Upload API ---


def upload_body(kind: str = "image", **payload: Any) -> dict[str, Any]:
    return {"message": {"attachment": {"type": kind, "payload": {"is_reusable": True, **payload}}}}


def attachment_message(attachment_id: str) -> dict[str, Any]:
    return {
        "recipient": {"id": PSID},
        "message": {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}},
    }


def test_upload_by_url_fetches_the_file_and_sends_by_id(fake: FakeGraph, client: httpx.Client) -> None:
    url = fake.add_file("/media/cat.png", PNG, "image/png")
    response = post(client, fake, "/me/message_attachments", upload_body(url=url))
    assert response.status_code == 200, response.text
    attachment_id = response.json()["attachment_id"]
    assert response.json() == {"attachment_id": attachment_id} and attachment_id.isdigit()
    [upload] = fake.attachment_uploads
    assert (upload.attachment_id, upload.page_id, upload.type, upload.source, upload.url) == (
        attachment_id,
        PAGE_ID,
        "image",
        "url",
        url,
    )
    assert (upload.sha256, upload.size, upload.content_type) == (hashlib.sha256(PNG).hexdigest(), len(PNG), "image/png")
    assert upload.is_reusable
    assert fake.file_fetches(url) == 1
    assert send(client, fake, attachment_message(attachment_id)).status_code == 200


def test_upload_as_multipart_filedata(fake: FakeGraph, client: httpx.Client) -> None:
    message = json.dumps(upload_body("file")["message"])
    response = client.post(
        fake.url + f"/{PAGE_ID}/message_attachments",
        params={"access_token": PAGE_TOKEN},
        data={"message": message},
        files={"filedata": ("terms.pdf", b"%PDF-1.4 terms", "application/pdf")},
    )
    assert response.status_code == 200, response.text
    [upload] = fake.attachment_uploads
    assert (upload.type, upload.source, upload.filename, upload.size) == ("file", "file", "terms.pdf", 14)
    assert upload.sha256 == hashlib.sha256(b"%PDF-1.4 terms").hexdigest()
    assert response.json() == {"attachment_id": upload.attachment_id}
    [recorded] = fake.find_requests("POST", "/*/message_attachments")
    assert recorded.form == {"message": message}
    assert recorded.files["filedata"].content_type == "application/pdf"


def test_attachment_errors(fake: FakeGraph, client: httpx.Client) -> None:
    url = fake.add_file("/media/cat.png", PNG, "image/png")
    theirs = client.post(
        fake.url + "/me/message_attachments", params={"access_token": OTHER_PAGE_TOKEN}, json=upload_body(url=url)
    ).json()["attachment_id"]
    assert code_of(send(client, fake, attachment_message(theirs))) == (100, 2018074)
    assert code_of(send(client, fake, attachment_message("1234567890123456"))) == (100, 2018074)
    ours = post(client, fake, "/me/message_attachments", upload_body(url=url)).json()["attachment_id"]
    fake.expire_attachment(ours)
    assert code_of(send(client, fake, attachment_message(ours))) == (100, 2018074)

    text_file = fake.add_file("/media/notes.txt", b"plain words", "text/plain")
    assert code_of(post(client, fake, "/me/message_attachments", upload_body(url=text_file))) == (100, 2018047)
    fake.expire_file(url)
    assert code_of(post(client, fake, "/me/message_attachments", upload_body(url=url))) == (100, 2018008)
    unreachable = upload_body(url="http://127.0.0.1:9/nothing.png")
    assert code_of(post(client, fake, "/me/message_attachments", unreachable)) == (100, 2018008)
    fake.attachment_max_bytes = 100
    big = fake.add_file("/media/big.png", PNG, "image/png")
    assert code_of(post(client, fake, "/me/message_attachments", upload_body(url=big))) == (100, 2018109)
    nothing = post(client, fake, "/me/message_attachments", upload_body())
    assert error_of(nothing)["message"].startswith("(#100) An incorrect number of files uploaded")
    wrong_type = post(client, fake, "/me/message_attachments", upload_body("sticker", url=url))
    assert code_of(wrong_type) == (100, None)
    assert len(fake.attachment_uploads) == 2


# --- files served like Meta's CDN ---


def test_served_file_has_its_type_and_length_and_counts_fetches(fake: FakeGraph, client: httpx.Client) -> None:
    url = fake.add_file("/v/t1.15752-9/cat.png?_nc_cat=1&oh=00_AfB&oe=6812A3F0", PNG, "image/png")
    assert url == fake.origin + "/v/t1.15752-9/cat.png?_nc_cat=1&oh=00_AfB&oe=6812A3F0"
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200
        assert response.content == PNG
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-length"] == str(len(PNG))
    assert client.head(url).headers["content-length"] == str(len(PNG))
    assert fake.file_fetches(url) == 2
    assert fake.file_sha256(url) == hashlib.sha256(PNG).hexdigest()
    assert fake.requests == []
    with pytest.raises(ValueError):
        fake.add_file("/v25.0/me", b"", "text/plain")


def test_expired_file_answers_like_the_cdn(fake: FakeGraph, client: httpx.Client) -> None:
    expired = fake.add_file("/media/old.jpg", PNG, "image/jpeg", expired=True)
    response = client.get(expired)
    assert (response.status_code, response.text) == (403, "URL signature expired")
    gone = fake.add_file("/media/gone.jpg", PNG, "image/jpeg")
    assert client.get(gone).status_code == 200
    fake.expire_file(gone, status=404)
    assert client.get(gone).status_code == 404
    assert fake.file_fetches(gone) == 2


def test_slow_file_delays_the_first_byte_and_each_chunk(fake: FakeGraph) -> None:
    late = fake.add_file("/media/late.png", PNG, "image/png", first_byte_delay_ms=1000)
    with httpx.Client(timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(late)
    dribble = fake.add_file("/media/dribble.png", PNG, "image/png", chunk_size=256, chunk_delay_ms=50)
    started = time.monotonic()
    with httpx.Client(timeout=5) as patient:
        assert patient.get(dribble).content == PNG
    chunks = -(-len(PNG) // 256)
    assert time.monotonic() - started >= (chunks - 1) * 0.05


def test_huge_file_is_streamed_without_being_held(fake: FakeGraph, client: httpx.Client) -> None:
    size = 100 * 1024 * 1024
    url = fake.add_huge_file("/media/huge.mp4", size, "video/mp4")
    digest = hashlib.sha256()
    received = 0
    tracemalloc.start()
    try:
        with client.stream("GET", url) as response:
            assert response.headers["content-length"] == str(size)
            assert response.headers["content-type"] == "video/mp4"
            for chunk in response.iter_raw(1024 * 1024):
                digest.update(chunk)
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 16 * 1024 * 1024
    assert digest.hexdigest() == fake.file_sha256(url)


def test_redirect_leads_to_another_file(fake: FakeGraph, client: httpx.Client) -> None:
    target = fake.add_file("/media/real.png", PNG, "image/png")
    hop = fake.add_redirect("/media/short", "/media/real.png")
    first = client.get(hop)
    assert (first.status_code, first.headers["location"]) == (302, target)
    assert client.get(hop, follow_redirects=True).content == PNG
    assert (fake.file_fetches(hop), fake.file_fetches(target)) == (2, 1)


def test_reset_forgets_the_new_state(fake: FakeGraph, client: httpx.Client) -> None:
    link_instagram(fake)
    url = fake.add_file("/media/cat.png", PNG, "image/png")
    post(client, fake, "/me/message_attachments", upload_body(url=url))
    post(client, fake, "/me/take_thread_control", {"recipient": {"id": PSID}})
    fake.close_window(PSID)
    fake.reset()
    assert (fake.attachment_uploads, fake.handover_calls, fake.sent_instagram_messages) == ([], [], [])
    assert fake.thread_owner(PAGE_ID, PSID) is None
    assert client.get(url).status_code != 200
    with pytest.raises(KeyError):
        fake.file_fetches(url)
