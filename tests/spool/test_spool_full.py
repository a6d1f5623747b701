"""The spool's bound: past it, appends are refused whole and the webhook answers 503."""

from __future__ import annotations

from pathlib import Path

import pytest

from airy_actors.errors import AiryError
from airy_actors.spool import Spool, SpoolFull

RECORD_BYTES = 8 + 100  # a record's header and a 100-byte body
BODY = b"x" * 100


def spooled_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("*.seg"))


def test_an_append_past_the_bound_raises_spool_full_and_writes_nothing(tmp_path: Path) -> None:
    # Given a spool with room for three records, holding two
    spool = Spool(tmp_path, max_bytes=3 * RECORD_BYTES)
    spool.append([BODY, BODY])
    before = spooled_bytes(tmp_path)

    # When two more are appended at once
    with pytest.raises(SpoolFull) as raised:
        spool.append([BODY, b"y" * 100])

    # Then neither is written, not even the one that would have fitted
    assert spooled_bytes(tmp_path) == before
    assert raised.value.status_code == 503
    assert isinstance(raised.value, AiryError)
    assert "AIRY_SPOOL_MAX_BYTES" in raised.value.message

    # And one still fits, exactly up to the bound, then nothing more
    spool.append([BODY])
    assert spool.size_bytes() == 3 * RECORD_BYTES
    with pytest.raises(SpoolFull):
        spool.append([b""])
    spool.close()

    drained: list[bytes] = []
    spool.drain(drained.extend)
    assert drained == [BODY, BODY, BODY]


def test_the_bound_holds_across_writers_sharing_the_directory(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=2 * RECORD_BYTES)
    second = Spool(tmp_path, max_bytes=2 * RECORD_BYTES)
    first.append([BODY])
    second.append([BODY])

    with pytest.raises(SpoolFull):
        first.append([BODY])
    with pytest.raises(SpoolFull):
        second.append([BODY])
    first.close()
    second.close()


def test_draining_makes_room_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2 * RECORD_BYTES)
    spool.append([BODY, BODY])
    with pytest.raises(SpoolFull):
        spool.append([BODY])

    # The writer's segment is still open: its drained part no longer counts.
    spool.drain(lambda bodies: None)
    spool.append([BODY, BODY])
    assert spool.size_bytes() == 2 * RECORD_BYTES
    spool.close()
