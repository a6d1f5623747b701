"""Fetching a remote file into the store, against a real HTTP server: what is stored, what is refused, what is
cut, and how each failure is classified."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterable, Iterator

import httpx
import pytest

from airy_actors.media import (
    MAX_REDIRECTS,
    FileStore,
    MediaGone,
    MediaRejected,
    MediaStore,
    MediaTooLarge,
    MediaUnavailable,
    OpenedMedia,
    StoredMedia,
    fetch_to_store,
)
from tests.media.conftest import StoreUnderTest
from tests.media.source_server import SourceServer

MiB = 1024 * 1024
HUGE = 256 * MiB
# Loopback socket buffers on both ends take what the server writes before the client has read it.
SOCKET_BUFFERS = 16 * MiB


class CountingStore:
    """A store that counts the bytes a put takes from its stream."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store
        self.taken = 0
        self.puts = 0

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int) -> StoredMedia:
        self.puts += 1
        return self.store.put(self._count(chunks), content_type=content_type, max_bytes=max_bytes)

    def open(self, key: str, start: int | None = None, end: int | None = None) -> OpenedMedia:
        return self.store.open(key, start, end)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def _count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.taken += len(chunk)
            yield chunk


def test_fetched_file_is_stored_byte_identical_with_the_sources_content_type(
    media: StoreUnderTest, source: SourceServer, http: httpx.Client
) -> None:
    # Given a file at the source
    data = os.urandom(500_000)
    source.files["/files/photo.jpg"] = (data, "image/jpeg")

    # When it is fetched
    stored = fetch_to_store(
        http, f"{source.url}/files/photo.jpg", media.store, max_bytes=MiB, deadline_ms=5_000, kind="image"
    )

    # Then the store has the same bytes under their hash, with the source's content type
    assert (stored.size, stored.sha256, stored.content_type) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        "image/jpeg",
    )
    opened = media.store.open(stored.key)
    assert opened.content_type == "image/jpeg"
    assert b"".join(opened.chunks) == data


def test_file_without_content_type_is_stored_as_octet_stream(
    file_store: FileStore, source: SourceServer, http: httpx.Client
) -> None:
    source.files["/files/blob"] = (b"some bytes", None)

    stored = fetch_to_store(http, f"{source.url}/files/blob", file_store, max_bytes=MiB, deadline_ms=5_000)

    assert stored.content_type == "application/octet-stream"


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_source_is_gone(file_store: FileStore, source: SourceServer, http: httpx.Client, status: int) -> None:
    with pytest.raises(MediaGone, match=str(status)):
        fetch_to_store(http, f"{source.url}/status/{status}", file_store, max_bytes=MiB, deadline_ms=5_000)


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_error_and_throttling_are_worth_a_retry(
    file_store: FileStore, source: SourceServer, http: httpx.Client, status: int
) -> None:
    with pytest.raises(MediaUnavailable, match=str(status)):
        fetch_to_store(http, f"{source.url}/status/{status}", file_store, max_bytes=MiB, deadline_ms=5_000)


@pytest.mark.parametrize("status", [400, 401, 451])
def test_other_client_error_is_rejected_for_good(
    file_store: FileStore, source: SourceServer, http: httpx.Client, status: int
) -> None:
    with pytest.raises(MediaRejected, match=str(status)):
        fetch_to_store(http, f"{source.url}/status/{status}", file_store, max_bytes=MiB, deadline_ms=5_000)


def test_refused_connection_is_worth_a_retry(file_store: FileStore, http: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with pytest.raises(MediaUnavailable, match="could not be reached"):
        fetch_to_store(http, f"http://127.0.0.1:{closed_port}/x", file_store, max_bytes=MiB, deadline_ms=5_000)


@pytest.mark.parametrize("url", ["ftp://example.invalid/file", "relative/path", "http://[::1/x"])
def test_url_that_cannot_be_fetched_is_rejected(file_store: FileStore, http: httpx.Client, url: str) -> None:
    with pytest.raises(MediaRejected):
        fetch_to_store(http, url, file_store, max_bytes=MiB, deadline_ms=5_000)


def test_three_redirects_are_followed(file_store: FileStore, source: SourceServer, http: httpx.Client) -> None:
    source.files["/files/moved.png"] = (b"png bytes", "image/png")

    stored = fetch_to_store(
        http, f"{source.url}/redirect/{MAX_REDIRECTS}/files/moved.png", file_store, max_bytes=MiB, deadline_ms=5_000
    )

    assert b"".join(file_store.open(stored.key).chunks) == b"png bytes"


def test_a_fourth_redirect_is_refused(file_store: FileStore, source: SourceServer, http: httpx.Client) -> None:
    source.files["/files/moved.png"] = (b"png bytes", "image/png")

    with pytest.raises(MediaRejected, match="redirects more than 3 times"):
        fetch_to_store(
            http,
            f"{source.url}/redirect/{MAX_REDIRECTS + 1}/files/moved.png",
            file_store,
            max_bytes=MiB,
            deadline_ms=5_000,
        )


def test_redirects_are_capped_even_when_the_client_follows_them(file_store: FileStore, source: SourceServer) -> None:
    source.files["/files/moved.png"] = (b"png bytes", "image/png")

    with httpx.Client(follow_redirects=True, max_redirects=20) as lenient:
        with pytest.raises(MediaRejected):
            fetch_to_store(
                lenient, f"{source.url}/redirect/5/files/moved.png", file_store, max_bytes=MiB, deadline_ms=5_000
            )


def test_declared_oversize_is_refused_without_reading_the_body(
    file_store: FileStore, source: SourceServer, http: httpx.Client
) -> None:
    # Given a source that declares, and would send, 256 MiB
    counting = CountingStore(file_store)

    # When it is fetched with a 1 MiB limit
    with pytest.raises(MediaTooLarge, match=str(HUGE)):
        fetch_to_store(http, f"{source.url}/huge?bytes={HUGE}&declared=1", counting, max_bytes=MiB, deadline_ms=10_000)

    # Then no byte of the body was read, and the server could send no more than the sockets buffer
    assert (counting.puts, counting.taken) == (0, 0)
    source.wait_finished("/huge")
    assert source.sent["/huge"] < SOCKET_BUFFERS


def test_undeclared_oversize_is_cut_as_soon_as_it_passes_the_limit(
    file_store: FileStore, source: SourceServer, http: httpx.Client
) -> None:
    # Given a source that streams 256 MiB without saying how much
    counting = CountingStore(file_store)

    # When it is fetched with a 1 MiB limit
    with pytest.raises(MediaTooLarge):
        fetch_to_store(http, f"{source.url}/huge?bytes={HUGE}&declared=0", counting, max_bytes=MiB, deadline_ms=10_000)

    # Then reading stopped on the chunk that passed the limit, the server was cut off, and nothing was stored
    assert MiB < counting.taken <= MiB + 64 * 1024
    source.wait_finished("/huge")
    assert source.sent["/huge"] < MiB + SOCKET_BUFFERS
    assert list((file_store.root).iterdir()) == []


def test_dripping_source_is_cut_at_the_deadline(
    file_store: FileStore, source: SourceServer, http: httpx.Client
) -> None:
    # Given a source that sends a byte every 0.7 s: each read returns well within any per-read timeout
    deadline_ms = 1_000
    started = time.monotonic()

    # When it is fetched with a 1 s deadline
    with pytest.raises(MediaUnavailable, match=f"within {deadline_ms} ms"):
        fetch_to_store(
            http, f"{source.url}/drip?bytes=100&interval_ms=700", file_store, max_bytes=MiB, deadline_ms=deadline_ms
        )

    # Then it ends at the deadline, not at the byte after it (1.4 s) nor at the end of the drip (70 s)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.3, elapsed
    assert list(file_store.root.iterdir()) == []


def test_silent_source_is_cut_at_the_deadline(file_store: FileStore, source: SourceServer, http: httpx.Client) -> None:
    started = time.monotonic()

    with pytest.raises(MediaUnavailable):
        fetch_to_store(http, f"{source.url}/silent?seconds=5", file_store, max_bytes=MiB, deadline_ms=500)

    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("kind", "content_type"), [("image", "text/html; charset=utf-8"), ("video", "image/png"), ("audio", "text/plain")]
)
def test_content_type_the_kind_does_not_allow_is_rejected_unread(
    file_store: FileStore, source: SourceServer, http: httpx.Client, kind: str, content_type: str
) -> None:
    source.files["/files/page"] = (b"<html>log in</html>", content_type)
    counting = CountingStore(file_store)

    with pytest.raises(MediaRejected, match=kind):
        fetch_to_store(http, f"{source.url}/files/page", counting, max_bytes=MiB, deadline_ms=5_000, kind=kind)

    assert counting.puts == 0


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("audio", "video/mp4"), ("image", "application/octet-stream"), ("file", "text/html"), ("share", "video/mp4")],
)
def test_content_type_the_kind_allows_is_stored(
    file_store: FileStore, source: SourceServer, http: httpx.Client, kind: str, content_type: str
) -> None:
    source.files["/files/thing"] = (b"thing", content_type)

    stored = fetch_to_store(http, f"{source.url}/files/thing", file_store, max_bytes=MiB, deadline_ms=5_000, kind=kind)

    assert stored.content_type == content_type
