"""A worker SIGKILLed in the middle of a download: the attachment is still kept, once.

The Redis broker gives a dead worker's unacked message back after its heartbeat timeout (15 s), and the
sweeper brings back media whose fetch no actor finished; either way the fetch runs again from the start and
the content-addressed store keeps the file once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from airy_actors.models import Message
from tests.fake_graph import FakeGraph
from tests.support import sign, wait_until

RECOVERY_TIMEOUT_S = 90.0
SIZE = 4 * 1024 * 1024


def test_a_worker_killed_mid_download_still_keeps_the_media_once(
    channel, process_env, processes, fake_graph: FakeGraph
):
    # Given a large video that the CDN sends slowly, and the web and a worker
    url = fake_graph.add_huge_file("/cdn/slow.mp4", SIZE, "video/mp4", chunk_delay_ms=20, chunk_size=64 * 1024)
    # (fetches given 5 s, so that the sweeper takes up a dead worker's fetch within the test's patience)
    env = {**process_env, "AIRY_MEDIA_FETCH_TIMEOUT_MS": "5000"}
    web = processes("web", env)
    worker = processes("worker", env, processes=1, threads=4)
    event = {
        "sender": {"id": "2001"},
        "recipient": {"id": channel.source_channel_id},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": "m_slow_video", "attachments": [{"type": "video", "payload": {"url": url}}]},
    }
    body = json.dumps({"object": "page", "entry": [{"id": channel.source_channel_id, "time": 0, "messaging": [event]}]})
    raw = body.encode()
    assert httpx.post(f"{web.url}/facebook", content=raw, headers=sign(raw), timeout=10).status_code == 200

    # When the worker is SIGKILLed while the download is under way, and started again
    wait_until(lambda: fake_graph.file_fetches(url) >= 1, timeout=30, message="the download did not start")
    time.sleep(0.5)
    worker.crash()
    worker.start()

    # Then the video is kept, once, byte for byte, and recorded once
    def kept() -> list | None:
        message = Message.get_or_none(Message.source_message_id == "m_slow_video")
        media = (message.metadata.get("media") or []) if message is not None else []
        return media if media and all(media) else None

    [video] = wait_until(kept, timeout=RECOVERY_TIMEOUT_S, interval=0.5, message="the video was not kept")
    assert (video["type"], video["size"], video["content_type"]) == ("video", SIZE, "video/mp4")
    assert video["sha256"] == fake_graph.file_sha256(url)
    assert fake_graph.file_fetches(url) >= 2
    stored = list((Path(process_env["AIRY_DATA_DIR"]) / "media").rglob(video["sha256"]))
    assert len(stored) == 1
