"""Both media stores, through one fixture: round trip, ranges, one copy of identical files, the size limit,
bounded memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator

import pytest

from airy_actors.media import MediaNotFound, MediaTooLarge, RangeNotSatisfiable
from tests.media.conftest import StoreUnderTest

MiB = 1024 * 1024


def pieces(data: bytes, size: int = 7_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(media: StoreUnderTest, key: str, start: int | None = None, end: int | None = None) -> bytes:
    return b"".join(media.store.open(key, start, end).chunks)


def test_stored_file_reads_back_byte_identical_with_its_content_type(media: StoreUnderTest) -> None:
    # Given a file
    data = os.urandom(300_000)

    # When it is stored in pieces
    stored = media.store.put(pieces(data), content_type="image/jpeg", max_bytes=MiB)

    # Then its key is its hash, and it reads back whole, with its size and content type
    assert stored.key == stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (stored.size, stored.content_type) == (len(data), "image/jpeg")
    opened = media.store.open(stored.key)
    assert (opened.size, opened.content_type) == (len(data), "image/jpeg")
    assert b"".join(opened.chunks) == data
    assert media.store.exists(stored.key)


def test_empty_file_is_stored_and_has_no_range(media: StoreUnderTest) -> None:
    stored = media.store.put([], content_type="text/plain", max_bytes=MiB)

    assert stored.size == 0
    assert read(media, stored.key) == b""
    for start in (0, -1):
        with pytest.raises(RangeNotSatisfiable):
            media.store.open(stored.key, start)


def test_byte_ranges_read_the_asked_bytes_and_tell_the_whole_size(media: StoreUnderTest) -> None:
    # Given a stored file
    data = os.urandom(200_000)
    key = media.store.put([data], content_type="video/mp4", max_bytes=MiB).key

    # Then a range [start, end) reads those bytes, and the size is the whole file's
    opened = media.store.open(key, 1_000, 150_001)
    assert opened.size == len(data)
    assert b"".join(opened.chunks) == data[1_000:150_001]
    assert read(media, key, 199_990) == data[199_990:]
    assert read(media, key, None, 10) == data[:10]
    assert read(media, key, 199_999, 500_000) == data[199_999:]


def test_negative_start_reads_the_last_bytes(media: StoreUnderTest) -> None:
    # Given a stored file
    data = os.urandom(100_000)
    key = media.store.put([data], content_type="audio/mpeg", max_bytes=MiB).key

    # Then a negative start reads its last bytes (HTTP's bytes=-N), all of it when N is past its length
    opened = media.store.open(key, -500)
    assert (opened.size, b"".join(opened.chunks)) == (len(data), data[-500:])
    assert read(media, key, -200_000) == data


@pytest.mark.parametrize(("start", "end"), [(200_000, None), (300_000, 300_010), (10, 10), (20, 5), (-10, 5)])
def test_range_outside_the_file_is_not_satisfiable(media: StoreUnderTest, start: int, end: int | None) -> None:
    key = media.store.put([b"x" * 200_000], content_type="video/mp4", max_bytes=MiB).key

    with pytest.raises(RangeNotSatisfiable) as raised:
        media.store.open(key, start, end)

    assert raised.value.size == 200_000
    assert raised.value.status_code == 416


def test_same_file_twice_is_stored_once(media: StoreUnderTest) -> None:
    # Given a stored file
    data = os.urandom(50_000)
    first = media.store.put([data], content_type="image/png", max_bytes=MiB)
    before = media.contents()

    # When the same bytes are put again, even under another content type
    second = media.store.put(pieces(data, 333), content_type="application/octet-stream", max_bytes=MiB)

    # Then nothing new is written, and the file keeps its first content type
    assert second == first
    assert media.contents() == before
    assert media.store.open(first.key).content_type == "image/png"


def test_different_files_are_stored_apart(media: StoreUnderTest) -> None:
    one = media.store.put([b"one"], content_type="text/plain", max_bytes=MiB)
    two = media.store.put([b"two"], content_type="text/plain", max_bytes=MiB)

    assert one.key != two.key
    assert (read(media, one.key), read(media, two.key)) == (b"one", b"two")


def test_file_over_the_limit_is_refused_as_soon_as_it_passes_it_and_leaves_nothing(media: StoreUnderTest) -> None:
    # Given a stream far longer than the limit, counting what is taken from it
    taken = 0

    def endless() -> Iterator[bytes]:
        nonlocal taken
        while True:
            taken += 10_000
            yield b"z" * 10_000

    # When it is put
    with pytest.raises(MediaTooLarge) as raised:
        media.store.put(endless(), content_type="video/mp4", max_bytes=100_000)

    # Then it was refused on the chunk that passed the limit, and nothing is stored or left waiting
    assert raised.value.max_bytes == 100_000
    assert raised.value.status_code == 413
    assert taken == 110_000
    assert media.contents() == {}
    assert media.leftovers() == []


def test_file_of_exactly_the_limit_is_stored(media: StoreUnderTest) -> None:
    stored = media.store.put(pieces(b"e" * 100_000), content_type="image/gif", max_bytes=100_000)

    assert stored.size == 100_000


def test_unknown_key_is_not_found(media: StoreUnderTest) -> None:
    key = hashlib.sha256(b"never stored").hexdigest()

    assert not media.store.exists(key)
    with pytest.raises(MediaNotFound):
        media.store.open(key)


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABC", "a" * 63, "a" * 64 + "/", ""])
def test_malformed_key_is_not_found_and_never_reaches_the_store(media: StoreUnderTest, key: str) -> None:
    with pytest.raises(MediaNotFound):
        media.store.open(key)
    with pytest.raises(MediaNotFound):
        media.store.exists(key)


def test_a_25_mib_stream_is_stored_with_bounded_memory(media: StoreUnderTest) -> None:
    # Given a warmed-up store (a client's first call loads its models) and a 25 MiB stream made on the fly
    media.store.put([b"warm-up"], content_type="text/plain", max_bytes=MiB)
    block = os.urandom(64 * 1024)
    count = 25 * MiB // len(block)
    digest = hashlib.sha256()

    def stream() -> Iterator[bytes]:
        for index in range(count):
            chunk = index.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            yield chunk

    # When it is stored while Python's allocations are traced
    tracemalloc.start()
    try:
        stored = media.store.put(stream(), content_type="video/mp4", max_bytes=25 * MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then it is all there, and memory never held more than a small part of it (for S3: about a MiB of buffers
    # for each upload thread, however large the file)
    assert (stored.size, stored.sha256) == (25 * MiB, digest.hexdigest())
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert hashlib.sha256(b"".join(media.store.open(stored.key).chunks)).hexdigest() == stored.sha256
