"""``channels.list|info|update``, and malformed bodies on every channel endpoint."""

from __future__ import annotations

import pytest

from airy_actors.channels import save_channel
from airy_actors.models import Channel, Job

UNKNOWN_ID = "5b2c7a7e-0000-4000-8000-000000000000"


@pytest.fixture
def stored(db) -> list[Channel]:
    """Two connected channels and a disconnected one."""
    channels = []
    for page_id, connected in (("3001", True), ("3002", True), ("3003", False)):
        channel = Channel(source_channel_id=page_id, name=f"Page {page_id}", page_token=f"EAA-token-{page_id}")
        channel.connected = connected
        channels.append(save_channel(channel, new=True))
    return channels


def test_list_shows_the_connected_channels(api, stored):
    answer = api.post("/channels.list", json={})

    assert answer.status_code == 200
    assert [channel["source_channel_id"] for channel in answer.json()["data"]] == ["3001", "3002"]
    assert answer.json()["data"][0] == {
        "id": stored[0].id,
        "name": "Page 3001",
        "image_url": None,
        "source": "facebook",
        "source_channel_id": "3001",
        "connected": True,
        "webhook_subscribed": True,
        "token_valid": True,
    }


def test_list_filters_by_source(api, stored):
    assert len(api.post("/channels.list", json={"source": "facebook"}).json()["data"]) == 2
    assert api.post("/channels.list", json={"source": "google"}).json() == {"data": []}


def test_an_empty_body_lists_too(api, stored):
    assert len(api.post("/channels.list").json()["data"]) == 2


def test_info_shows_one_channel_and_404_for_an_unknown_one(api, stored):
    assert api.post("/channels.info", json={"channel_id": stored[2].id}).json()["connected"] is False

    unknown = api.post("/channels.info", json={"channel_id": UNKNOWN_ID})
    assert unknown.status_code == 404
    assert "channel_id" in unknown.json()["message"]


def test_update_changes_name_and_picture(api, stored):
    answer = api.post(
        "/channels.update",
        json={"channel_id": stored[0].id, "name": "Support", "image_url": "https://example.org/support.png"},
    )

    assert answer.status_code == 200
    assert answer.json()["name"] == "Support" and answer.json()["image_url"] == "https://example.org/support.png"
    assert api.post("/channels.info", json={"channel_id": stored[0].id}).json() == answer.json()


def test_update_of_the_name_only_keeps_the_picture(api, stored):
    api.post("/channels.update", json={"channel_id": stored[1].id, "image_url": "https://example.org/a.png"})

    answer = api.post("/channels.update", json={"channel_id": stored[1].id, "name": "Renamed"})

    assert answer.json()["name"] == "Renamed" and answer.json()["image_url"] == "https://example.org/a.png"


def test_update_of_an_unknown_channel_is_404(api, stored):
    assert api.post("/channels.update", json={"channel_id": UNKNOWN_ID, "name": "x"}).status_code == 404


CONNECT = {"page_id": "1001", "page_token": "EAA-token"}
MALFORMED = [
    ("/facebook.connect", {"page_token": "EAA-token"}, "page_id"),
    ("/facebook.connect", {"page_id": "1001"}, "page_token"),
    ("/facebook.connect", {**CONNECT, "page_id": 1001}, "page_id"),
    ("/facebook.connect", {**CONNECT, "page_token": ""}, "page_token"),
    ("/facebook.connect", {**CONNECT, "page_token": ["EAA"]}, "page_token"),
    ("/facebook.connect", {**CONNECT, "name": 7}, "name"),
    ("/facebook.connect", {**CONNECT, "image_url": {"url": "x"}}, "image_url"),
    ("/facebook.connect", {**CONNECT, "page_id": "1" * 65}, "page_id"),
    ("/channels.facebook.connect", {}, "page_id"),
    ("/facebook.disconnect", {}, "channel_id"),
    ("/facebook.disconnect", {"channel_id": 12}, "channel_id"),
    ("/channels.facebook.disconnect", {"channel_id": None}, "channel_id"),
    ("/facebook.explore", {}, "auth_token"),
    ("/facebook.explore", {"auth_token": True}, "auth_token"),
    ("/channels.facebook.explore", {"auth_token": "   "}, "auth_token"),
    ("/jobs.info", {}, "job_id"),
    ("/jobs.info", {"job_id": 5}, "job_id"),
    ("/channels.list", {"source": 1}, "source"),
    ("/channels.info", {}, "channel_id"),
    ("/channels.info", {"channel_id": []}, "channel_id"),
    ("/channels.update", {"name": "x"}, "channel_id"),
    ("/channels.update", {"channel_id": UNKNOWN_ID, "name": 3}, "name"),
    ("/channels.update", {"channel_id": UNKNOWN_ID, "image_url": False}, "image_url"),
    ("/channels.update", {"channel_id": "\x00"}, "channel_id"),
    ("/facebook.connect", {**CONNECT, "page_id": "10\x0001"}, "page_id"),
    ("/facebook.explore", {"auth_token": "EAA\x00"}, "auth_token"),
]


@pytest.mark.parametrize(
    ("path", "body", "field"), MALFORMED, ids=[f"{p}-{f}-{i}" for i, (p, _, f) in enumerate(MALFORMED)]
)
def test_a_malformed_field_is_400_naming_it(api, path, body, field):
    answer = api.post(path, json=body)

    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]
    assert Job.select().count() == 0


ENDPOINTS = sorted({path for path, _, _ in MALFORMED})


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"], ids=["broken", "list", "string", "bytes"]
)
def test_a_body_that_is_not_a_json_object_is_400(api, path, raw):
    answer = api.post(path, content=raw, headers={"Content-Type": "application/json"})

    assert answer.status_code == 400
    assert "body" in answer.json()["message"]
