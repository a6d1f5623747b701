"""Per-page throttling: a burst above the page's limit reaches Facebook smoothed, never refused.

The rate is read from when the fake Graph API accepted each message (the time in its echo), so these tests
check what Facebook would count, not how fast we are.
"""

from __future__ import annotations

from collections import Counter

import pytest

from airy_actors import throttling
from airy_actors.models import Message
from airy_actors.throttling import Rate
from tests.fake_graph import FakeGraph
from tests.sending.sends import send
from tests.support import APP_SECRET, wait_until


def busiest_second(fake_graph: FakeGraph) -> int:
    """The most messages the fake accepted in any sliding second."""
    fake_graph.flush_echoes()
    times = sorted(echo.payload["entry"][0]["time"] for echo in fake_graph.echoes)
    return max(sum(1 for later in times[i:] if later < start + 1000) for i, start in enumerate(times))


def burst(api, conversation, fake_graph: FakeGraph, messages: list[dict], contacts: int = 4) -> list[str]:
    fake_graph.deliver_echoes_to(f"{api.base_url}/facebook", APP_SECRET)
    chats = [conversation(psid=f"20{n:02d}") for n in range(contacts)]
    ids = []
    for n, message in enumerate(messages):
        answer = send(api, chats[n % contacts].id, message)
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["id"])
    return ids


def wait_all_delivered(ids: list[str], timeout: float) -> None:
    wait_until(
        lambda: Message.select().where(Message.id.in_(ids) & (Message.delivery_state == "pending")).count() == 0,
        timeout=timeout,
        message="the burst is still pending",
    )
    states = {m.delivery_state for m in Message.select().where(Message.id.in_(ids))}
    assert states == {"delivered"}


def test_a_text_burst_above_the_page_limit_is_smoothed_below_it(
    api, worker, conversation, fake_graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
):
    # Given a page limited to 1 send per 100 ms (10/s, at most 11 in any second; say Facebook allowed 15/s),
    # and short waits for a slot, so that many sends are put back in the queue to wait there
    monkeypatch.setattr(throttling, "TEXT_RATE", Rate(limit=1, bucket_ms=100))
    monkeypatch.setattr(throttling, "MAX_WAIT_MS", 150)
    # When 50 answers are sent at once
    ids = burst(api, conversation, fake_graph, [{"text": f"answer {n}"} for n in range(50)])
    # Then every one is delivered, once, and no second saw more than the limit
    wait_all_delivered(ids, timeout=60)
    assert len(fake_graph.sent_messages) == len({sent["message"]["metadata"] for sent in fake_graph.sent_messages})
    assert len(fake_graph.sent_messages) == 50
    assert busiest_second(fake_graph) <= 15
    # And waiting for the throttle cost no attempt: each counts only its calls to Facebook
    calls = Counter(request.json["message"]["metadata"] for request in fake_graph.find_requests("POST", "/me/messages"))
    for message in Message.select().where(Message.id.in_(ids)):
        assert message.send_attempts == calls[f"airy:{message.id}"]


def test_a_video_burst_stays_under_facebooks_10_per_second(api, worker, conversation, fake_graph: FakeGraph):
    # Given the production limits, When 24 videos are sent at once
    video = {"attachment": {"type": "video", "payload": {"url": "https://cdn.example.com/clip.mp4"}}}
    ids = burst(api, conversation, fake_graph, [video] * 24)
    # Then all arrive, and never more than 10 in a second
    wait_all_delivered(ids, timeout=60)
    assert len(fake_graph.sent_messages) == 24
    assert busiest_second(fake_graph) <= 10
