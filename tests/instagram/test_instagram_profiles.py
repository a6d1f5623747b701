"""An Instagram contact's profile, fetched by its actor after the first message: ``GET /{IGSID}?fields=name,
username,profile_pic``; ``display_name`` is ``name``, else ``@username``."""

from __future__ import annotations

import pytest

from airy_actors.models import Contact
from tests.fake_graph import PERMISSION_DENIED, FakeGraph
from tests.instagram import payloads as ig
from tests.instagram.payloads import ACCOUNT_ID, PAGE_TOKEN
from tests.support import wait_until


def first_message(api, deliver, igsid: str) -> dict:
    deliver(ig.entry(ig.text(f"m_{igsid}", igsid=igsid)))
    contact = wait_until(lambda: Contact.get_or_none(Contact.source_contact_id == igsid), message="no contact")
    wait_until(lambda: Contact.get_by_id(contact.id).profile_state != "pending", message="profile not fetched")
    return api.post("/conversations.list", json={}).json()["data"][0]["contact"]


@pytest.mark.parametrize(
    ("profile", "shown"),
    [
        (
            {"name": "Ada Lovelace", "username": "ada.l", "profile_pic": "https://cdn.example/ada.jpg"},
            {"display_name": "Ada Lovelace", "avatar_url": "https://cdn.example/ada.jpg"},
        ),
        ({"username": "ada.l"}, {"display_name": "@ada.l", "avatar_url": None}),
        ({"name": "", "username": "ada.l"}, {"display_name": "@ada.l", "avatar_url": None}),
        ({}, {"display_name": "Instagram user 6690", "avatar_url": None}),
    ],
    ids=["name", "username only", "empty name", "neither"],
)
def test_display_name_is_the_name_else_the_username(
    api, worker, instagram_channel, deliver, fake_graph: FakeGraph, profile, shown
):
    fake_graph.add_instagram_contact("6812045871236690", account_id=ACCOUNT_ID, **profile)

    contact = first_message(api, deliver, "6812045871236690")

    assert contact == shown
    [request] = fake_graph.find_requests("GET", "/6812045871236690")
    assert request.query["fields"] == "name,username,profile_pic"
    assert request.token == PAGE_TOKEN


def test_a_failed_fetch_falls_back_to_a_readable_instagram_name(api, worker, instagram_channel, deliver, fake_graph):
    fake_graph.fail("GET", "/6812045871236691", error=PERMISSION_DENIED, times=-1)

    contact = first_message(api, deliver, "6812045871236691")

    assert contact == {"display_name": "Instagram user 6691", "avatar_url": None}
    assert Contact.get().profile_state == "failed"
