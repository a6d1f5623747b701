"""Instagram channels over real HTTP, with the actors on real Redis and the fake Graph API: ``instagram.connect``,
``instagram.disconnect``, ``channels.list`` by source, ``facebook.explore``'s linked accounts, health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airy_actors.graph import WEBHOOK_FIELDS
from airy_actors.models import Channel
from tests.fake_graph import FakeGraph
from tests.instagram.payloads import (
    ACCOUNT_ID,
    ACCOUNT_PICTURE,
    ACCOUNT_USERNAME,
    PAGE_ID,
    PAGE_NAME,
    PAGE_TOKEN,
)
from tests.support import wait_until
from workers.channels import check_channel_health, check_channels_health

CONNECT = {"page_id": PAGE_ID, "page_token": PAGE_TOKEN, "account_id": ACCOUNT_ID}


@pytest.fixture
def connect(api, worker, linked_page) -> Callable[..., dict[str, Any]]:
    """Connects the account over the API and returns the channel; fails the test unless the answer is 200."""

    def connect_account(**fields: str) -> dict[str, Any]:
        answer = api.post("/instagram.connect", json={**CONNECT, **fields})
        assert answer.status_code == 200, answer.text
        return answer.json()

    return connect_account


def test_connect_stores_the_account_as_an_instagram_channel_named_after_it(api, fake_graph: FakeGraph, connect):
    # When the account linked to the page is connected with the page's token
    channel = connect()

    # Then the channel is the account, named and pictured after it, and the app is subscribed to the page
    assert channel == {
        "id": channel["id"],
        "name": ACCOUNT_USERNAME,
        "image_url": ACCOUNT_PICTURE,
        "source": "instagram",
        "source_channel_id": ACCOUNT_ID,
        "connected": True,
        "webhook_subscribed": True,
        "token_valid": True,
    }
    assert set(fake_graph.subscriptions[PAGE_ID]) == set(WEBHOOK_FIELDS)
    stored = Channel.get_by_id(channel["id"])
    assert (stored.page_id, stored.page_token) == (PAGE_ID, PAGE_TOKEN)
    # And the account was checked as the page's linked one, with the page token
    [linked] = fake_graph.find_requests("GET", f"/{PAGE_ID}")
    assert linked.query["fields"] == "instagram_business_account" and linked.token == PAGE_TOKEN
    assert api.post("/channels.info", json={"channel_id": channel["id"]}).json() == channel


def test_a_given_name_and_picture_are_kept_and_the_account_is_not_asked(api, fake_graph: FakeGraph, connect):
    channel = connect(name="Acme on Instagram", image_url="https://example.org/acme.png")

    assert (channel["name"], channel["image_url"]) == ("Acme on Instagram", "https://example.org/acme.png")
    assert fake_graph.find_requests("GET", f"/{ACCOUNT_ID}") == []


def test_connect_also_answers_under_channels_instagram(api, worker, linked_page):
    answer = api.post("/channels.instagram.connect", json=CONNECT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["source"] == "instagram"


def test_an_account_that_is_not_the_pages_is_400_naming_account_id(api, worker, linked_page, fake_graph):
    # Given another Instagram account, linked to another page
    fake_graph.add_page("1002", "Other", "EAA-other-page-token")
    fake_graph.add_instagram_account("1002", "17841400000000002", "other.shop")

    answer = api.post("/instagram.connect", json={**CONNECT, "account_id": "17841400000000002"})

    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "account_id 17841400000000002" in message and ACCOUNT_ID in message
    assert Channel.select().count() == 0
    assert fake_graph.subscriptions == {}


def test_a_page_without_a_linked_account_is_400(api, worker, fake_graph):
    fake_graph.add_page(PAGE_ID, PAGE_NAME, PAGE_TOKEN)

    answer = api.post("/instagram.connect", json=CONNECT)

    assert answer.status_code == 400
    assert answer.json() == {
        "message": f"account_id {ACCOUNT_ID} is not the Instagram account linked to page {PAGE_ID}: it has none"
    }
    assert Channel.select().count() == 0


def test_the_token_of_another_page_is_400(api, worker, linked_page, fake_graph):
    fake_graph.add_page("1002", "Other", "EAA-other-page-token")

    answer = api.post("/instagram.connect", json={**CONNECT, "page_token": "EAA-other-page-token"})

    assert answer.status_code == 400
    assert answer.json() == {"message": f"page_token does not belong to page {PAGE_ID}"}
    assert Channel.select().count() == 0
    assert fake_graph.subscriptions == {}


@pytest.mark.parametrize("missing", ["page_id", "page_token", "account_id"])
def test_a_missing_field_is_400_naming_it(api, missing):
    answer = api.post("/instagram.connect", json={k: v for k, v in CONNECT.items() if k != missing})
    assert answer.status_code == 400
    assert missing in answer.json()["message"]


def test_reconnecting_keeps_the_channel_id_and_takes_the_new_token(api, fake_graph: FakeGraph, connect):
    first = connect()
    fake_graph.add_page(PAGE_ID, PAGE_NAME, "EAA-new-token-1001")

    second = connect(page_token="EAA-new-token-1001", name="Renamed")

    assert second["id"] == first["id"] and second["name"] == "Renamed"
    assert Channel.select().count() == 1
    assert Channel.get_by_id(first["id"]).page_token == "EAA-new-token-1001"


def test_the_page_and_its_account_are_two_channels_and_list_filters_by_source(api, worker, linked_page):
    page = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}).json()
    account = api.post("/instagram.connect", json=CONNECT).json()

    assert page["id"] != account["id"]
    everything = api.post("/channels.list", json={}).json()["data"]
    only_instagram = api.post("/channels.list", json={"source": "instagram"}).json()["data"]
    only_facebook = api.post("/channels.list", json={"source": "facebook"}).json()["data"]
    assert {c["id"] for c in everything} == {page["id"], account["id"]}
    assert only_instagram == [account]
    assert only_facebook == [page]


def test_disconnect_unsubscribes_the_page_and_deletes_the_token(api, fake_graph: FakeGraph, connect):
    channel = connect()

    answer = api.post("/instagram.disconnect", json={"channel_id": channel["id"]})

    assert (answer.status_code, answer.json()) == (202, {})
    wait_until(lambda: Channel.get_by_id(channel["id"]).page_token is None, message="the token was not deleted")
    assert PAGE_ID not in fake_graph.subscriptions
    assert api.post("/channels.list", json={"source": "instagram"}).json() == {"data": []}
    # And again, under its other name, is 202 too
    assert api.post("/channels.instagram.disconnect", json={"channel_id": channel["id"]}).status_code == 202


def test_disconnecting_the_account_leaves_the_pages_messenger_channel_subscribed(api, fake_graph: FakeGraph, connect):
    page = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}).json()
    account = connect()

    assert api.post("/instagram.disconnect", json={"channel_id": account["id"]}).status_code == 202

    wait_until(lambda: Channel.get_by_id(account["id"]).page_token is None, message="the token was not deleted")
    assert fake_graph.find_requests("DELETE", f"/{PAGE_ID}/subscribed_apps") == []
    assert PAGE_ID in fake_graph.subscriptions
    assert Channel.get_by_id(page["id"]).connected is True


def test_disconnecting_an_unknown_or_a_messenger_channel_is_400(api, worker, linked_page):
    page = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}).json()

    unknown = api.post("/instagram.disconnect", json={"channel_id": "5b2c7a7e-0000-4000-8000-000000000000"})
    messenger = api.post("/instagram.disconnect", json={"channel_id": page["id"]})

    assert unknown.status_code == 400 and "channel_id" in unknown.json()["message"]
    assert messenger.status_code == 400 and "not a channel of source instagram" in messenger.json()["message"]
    assert Channel.get_by_id(page["id"]).connected is True


def test_explore_names_the_linked_instagram_account(api, worker, linked_page, fake_graph: FakeGraph):
    # Given a user who manages the page with a linked account, and another page without one
    fake_graph.add_page("1002", "No Instagram", "EAA-1002")
    fake_graph.add_user("EAA-user-token", [PAGE_ID, "1002"])

    answer = api.post("/facebook.explore", json={"auth_token": "EAA-user-token"})

    assert answer.status_code == 200, answer.text
    pages = {page["page_id"]: page for page in answer.json()["data"]}
    assert pages[PAGE_ID]["instagram_account_id"] == ACCOUNT_ID
    assert "instagram_account_id" not in pages["1002"]
    [accounts] = fake_graph.find_requests("GET", "/me/accounts")
    assert "instagram_business_account" in accounts.query["fields"]


def test_health_checks_cover_instagram_channels_through_their_page(api, fake_graph: FakeGraph, connect):
    channel = connect()
    fake_graph.unsubscribe_app(PAGE_ID)

    check_channels_health.send()

    wait_until(lambda: PAGE_ID in fake_graph.subscriptions, message="the page was not subscribed again")
    fake_graph.invalidate_token(PAGE_TOKEN)
    check_channel_health.send(channel["id"])
    wait_until(lambda: Channel.get_by_id(channel["id"]).token_valid is False, message="the token was not flagged")
