"""Inbound attachments kept for good, over HTTP with a real worker, on both media stores."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from airy_actors.config import get_settings, use_settings
from airy_actors.media.configured import use_media_store
from airy_actors.models import Channel, Message
from tests.media.conftest import StoreUnderTest
from tests.support import entry, sign, wait_until, webhook_body

PAGE = "1001"
PSID = "2001"
PICTURE = os.urandom(200_000)


@pytest.fixture
def kept(media: StoreUnderTest) -> Iterator[StoreUnderTest]:
    """The product keeps media in the store under test."""
    use_media_store(media.store)
    yield media
    use_media_store(None)


@pytest.fixture
def channel(db) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def with_attachments(mid: str, *attachments: dict[str, Any]) -> dict[str, Any]:
    """A contact's message carrying attachments, as Messenger's webhook sends it."""
    return {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": 1_700_000_000_000,
        "message": {"mid": mid, "attachments": list(attachments)},
    }


def attachment(kind: str, url: str) -> dict[str, Any]:
    return {"type": kind, "payload": {"url": url}}


def deliver(api, *events: dict[str, Any]) -> None:
    body = webhook_body(entry(PAGE, *events))
    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200


def settled_media(mid: str, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        message = Message.get_or_none(Message.source_message_id == mid)
        media = (message.metadata.get("media") or []) if message else []
        return media if len(media) == count and all(media) else None

    return wait_until(ready, timeout=20, message=f"the media of {mid} were not settled")


def test_an_inbound_picture_is_kept_and_served_byte_identical_with_ranges(api, worker, channel, kept, source):
    # Given a picture on Facebook's CDN
    source.files["/files/picture.jpg"] = (PICTURE, "image/jpeg")
    # When a contact sends it
    deliver(api, with_attachments("m_pic", attachment("image", f"{source.url}/files/picture.jpg")))
    # Then the message is there, and its media fill in with the service's own URL
    wait_until(lambda: Message.get_or_none(Message.source_message_id == "m_pic"), timeout=10)
    [entry_] = settled_media("m_pic", 1)
    assert entry_["type"] == "image" and entry_["content_type"] == "image/jpeg" and entry_["size"] == len(PICTURE)
    assert entry_["sha256"] == hashlib.sha256(PICTURE).hexdigest()
    path = "/media/" + entry_["url"].split("/media/", 1)[1]
    served = api.get(path)
    assert served.status_code == 200 and served.content == PICTURE
    assert served.headers["content-type"] == "image/jpeg"
    assert "immutable" in served.headers["cache-control"]
    # And a Range is served as video players ask for it
    part = api.get(path, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == PICTURE[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(PICTURE)}"
    tail = api.get(path, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == PICTURE[-10:]
    assert api.get(path, headers={"Range": f"bytes={len(PICTURE) + 5}-"}).status_code == 416
    # And a wrong signature opens nothing
    forged = path.rsplit("sig=", 1)[0] + "sig=" + "0" * 64
    assert api.get(forged).status_code == 404


def test_expired_and_oversize_sources_end_as_errors_and_the_message_stays(api, worker, channel, kept, source):
    # Given a limit of 100 KB, an expired URL and a file over the limit
    original = get_settings()
    use_settings(type(original)(**{**original.__dict__, "media_max_bytes": 100_000}))
    try:
        source.files["/files/big.mp4"] = (os.urandom(300_000), "video/mp4")
        deliver(
            api,
            with_attachments(
                "m_two",
                attachment("image", f"{source.url}/files/expired.jpg"),
                attachment("video", f"{source.url}/files/big.mp4"),
            ),
        )
        # Then each attachment says why it is not kept, and the message is intact
        gone, big = settled_media("m_two", 2)
    finally:
        use_settings(original)
    assert gone["type"] == "image" and "expired" in gone["error"]
    assert big["type"] == "video" and "too large" in big["error"]
    message = Message.get(Message.source_message_id == "m_two")
    assert len(message.content["message"]["attachments"]) == 2


def test_the_same_file_twice_is_stored_once(api, worker, channel, kept, source):
    source.files["/files/a.png"] = (PICTURE, "image/png")
    source.files["/files/b.png"] = (PICTURE, "image/png")
    deliver(api, with_attachments("m_a", attachment("image", f"{source.url}/files/a.png")))
    deliver(api, with_attachments("m_b", attachment("image", f"{source.url}/files/b.png")))
    [first] = settled_media("m_a", 1)
    [second] = settled_media("m_b", 1)
    assert first["sha256"] == second["sha256"] and first["url"] == second["url"]
    stored = [name for name in kept.contents() if not name.endswith(".type")]
    assert len(stored) == 1


def test_a_story_mention_keeps_its_link_only(api, worker, channel, kept, source):
    deliver(api, with_attachments("m_story", attachment("story_mention", f"{source.url}/files/story.mp4")))
    assert settled_media("m_story", 1) == [{"type": "story_mention", "stored": False}]
    assert "/files/story.mp4" not in source.finished


def test_an_upload_is_stored_once_and_served(api, kept):
    raw = api.post("/media.upload", content=PICTURE, headers={"Content-Type": "image/png"})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert set(body) == {"media_id", "url", "content_type", "size"}
    assert (body["content_type"], body["size"]) == ("image/png", len(PICTURE))
    form = api.post("/media.upload", files={"file": ("note.pdf", b"%PDF-1.4 tiny", "application/pdf")})
    assert form.status_code == 200, form.text
    assert form.json()["content_type"] == "application/pdf"
    served = api.get("/media/" + body["url"].split("/media/", 1)[1])
    assert served.content == PICTURE
    assert api.post("/media.upload", content=b"<html>", headers={"Content-Type": "text/html"}).status_code == 415


def test_an_upload_over_the_limit_is_413_and_keeps_nothing(api, kept):
    original = get_settings()
    use_settings(type(original)(**{**original.__dict__, "media_max_bytes": 50_000}))
    try:
        answer = api.post("/media.upload", content=PICTURE, headers={"Content-Type": "image/png"})
    finally:
        use_settings(original)
    assert answer.status_code == 413 and "larger than" in answer.json()["message"]
    assert kept.contents() == {}
