"""A new contact's profile is fetched from the Graph API by its own actor."""

from __future__ import annotations

import pytest

from airy_actors.models import Channel, Contact
from tests.fake_graph import PERMISSION_DENIED
from tests.support import entry, sign, text_message, wait_until, webhook_body

PAGE = "1001"


@pytest.fixture
def channel(db, fake_graph) -> Channel:
    fake_graph.add_page(PAGE, "Acme", token="PAGE-TOKEN")
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def first_message(api, psid: str) -> dict:
    body = webhook_body(entry(PAGE, text_message(PAGE, psid, f"m_{psid}", "hi")))
    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200
    contact = wait_until(lambda: Contact.get_or_none(Contact.source_contact_id == psid), message="no contact")
    wait_until(lambda: Contact.get_by_id(contact.id).profile_state != "pending", message="profile not fetched")
    return api.post("/conversations.list", json={}).json()["data"][0]["contact"]


def test_display_name_and_avatar_come_from_the_profile(api, worker, channel, fake_graph):
    fake_graph.add_contact("2001", "Grace", "Hopper", "https://cdn.example/grace.jpg")
    contact = first_message(api, "2001")
    assert contact == {"display_name": "Grace Hopper", "avatar_url": "https://cdn.example/grace.jpg"}
    assert [r.path for r in fake_graph.requests] == ["/2001"]


def test_a_failed_profile_fetch_falls_back_to_a_readable_name(api, worker, channel, fake_graph):
    fake_graph.fail("GET", "/2002", error=PERMISSION_DENIED, times=-1)
    contact = first_message(api, "2002")
    assert contact == {"display_name": "Facebook user 2002", "avatar_url": None}
    assert Contact.get().profile_state == "failed"
