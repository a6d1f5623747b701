"""Inbound media kept in the store: the media actor's throughput against plain concurrent downloads, and its memory.

Two measurements, in one run against the Procfile's processes (web, worker, media) and the fake Graph API's
file server:

1. 500 inbound images of 200 KB whose source answers after 100 ms: the time from the first webhook until every
   image is stored and recorded in ``metadata.media``, against the time the same 500 downloads take with a
   plain concurrent httpx client of as many connections as the media worker has threads. Goal: within 2x.
2. 20 files of 25 MiB at once: how much the media worker's memory grows while they download (goal: < 50 MiB),
   since files are streamed to the store, never held whole.

Run alone (not beside the test suite): ``.venv/bin/python bench/media.py``.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from _harness import Bench, int_option, procfile_command, say, sign, wait_for

PAGE_ID = "2001"
IMAGES = 500
IMAGE_BYTES = 200 * 1024
IMAGES_PER_MESSAGE = 10
SOURCE_DELAY_MS = 100
HUGE_FILES = 20
HUGE_BYTES = 25 * 1024 * 1024


def webhook(page_id: str, mid: str, urls: list[str], kind: str = "image") -> bytes:
    attachments = [{"type": kind, "payload": {"url": url}} for url in urls]
    event = {
        "sender": {"id": f"3{mid[-6:]}"},
        "recipient": {"id": page_id},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "attachments": attachments},
    }
    return json.dumps({"object": "page", "entry": [{"id": page_id, "time": 0, "messaging": [event]}]}).encode()


def post_all(web_url: str, bodies: list[bytes]) -> None:
    with httpx.Client(timeout=30) as client:
        for body in bodies:
            answer = client.post(f"{web_url}/facebook", content=body, headers={"X-Hub-Signature-256": sign(body)})
            answer.raise_for_status()


def settled(bench: Bench, mids: list[str]) -> int:
    rows = bench.query(
        "SELECT count(*) FROM message WHERE source_message_id = ANY(%s) AND media_due_at IS NULL"
        " AND metadata LIKE '%%\"media\"%%'",
        (mids,),
    )
    return int(rows[0][0])


async def plain_downloads(urls: list[str], concurrency: int) -> float:
    """The same downloads with a plain concurrent httpx client: the baseline."""
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(url: str) -> None:
            async with gate:
                answer = await client.get(url)
                answer.raise_for_status()
                assert len(answer.content) == IMAGE_BYTES

        await asyncio.gather(*(one(url) for url in urls))
    return time.monotonic() - started


def main() -> None:
    threads = int_option(procfile_command("media"), "--threads", 8)
    with Bench("media") as bench:
        fake = bench.fake_graph
        image = bytes(range(256)) * (IMAGE_BYTES // 256)
        urls = [
            fake.add_file(f"/cdn/image-{n}.jpg", image[:-4] + n.to_bytes(4, "big"), "image/jpeg",
                          first_byte_delay_ms=SOURCE_DELAY_MS)
            for n in range(IMAGES)
        ]
        say(f"baseline: {IMAGES} downloads of {IMAGE_BYTES // 1024} KB, {SOURCE_DELAY_MS} ms each, {threads} at once")
        baseline_s = asyncio.run(plain_downloads(urls, threads))
        say(f"baseline took {baseline_s:.2f} s")

        web = bench.start_web()
        bench.create_channel(PAGE_ID)
        bench.start_worker()
        media = bench.start_worker(process="media")
        chunks = [urls[i : i + IMAGES_PER_MESSAGE] for i in range(0, IMAGES, IMAGES_PER_MESSAGE)]
        mids = [f"m_media_{n:06d}" for n in range(len(chunks))]
        bodies = [webhook(PAGE_ID, mid, chunk) for mid, chunk in zip(mids, chunks, strict=True)]
        started = time.monotonic()
        post_all(web.url, bodies)
        wait_for(lambda: settled(bench, mids) == len(mids), 600, "every image to be stored", interval_s=0.2)
        product_s = time.monotonic() - started
        say(f"the product stored {IMAGES} images in {product_s:.2f} s: ratio {product_s / baseline_s:.2f} (goal <= 2)")

        huge = [fake.add_huge_file(f"/cdn/huge-{n}.bin", HUGE_BYTES, "video/mp4", chunk_delay_ms=5)
                for n in range(HUGE_FILES)]
        before = sum(media.rss_mb().values())
        huge_mids = [f"m_huge_{n:06d}" for n in range(HUGE_FILES)]
        post_all(web.url, [webhook(PAGE_ID, mid, [url], "video") for mid, url in zip(huge_mids, huge, strict=True)])
        peak = before
        deadline = time.monotonic() + 900
        while settled(bench, huge_mids) < HUGE_FILES and time.monotonic() < deadline:
            peak = max(peak, sum(media.rss_mb().values()))
            time.sleep(0.2)
        say(
            f"{HUGE_FILES} files of {HUGE_BYTES // 2**20} MiB: media worker RSS {before:.0f} MiB before, peak"
            f" {peak:.0f} MiB, growth {peak - before:.0f} MiB (goal < 50 MiB);"
            f" stored {settled(bench, huge_mids)}/{HUGE_FILES}"
        )


if __name__ == "__main__":
    main()
