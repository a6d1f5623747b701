"""Appending to the spool and draining it, in one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from airy_actors.spool import Spool
from tests.spool.spool_child import make_body

MAX_BYTES = 1 << 24


def drain_all(spool: Spool, batch: int = 64) -> tuple[int, list[list[bytes]]]:
    batches: list[list[bytes]] = []
    count = spool.drain(batches.append, batch=batch)
    return count, batches


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_drain_gives_the_appended_bodies_in_order_once(tmp_path: Path) -> None:
    # Given bodies appended one at a time and in batches
    bodies = [make_body("a", number) for number in range(10)]
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append(bodies[:1])
        spool.append(bodies[1:7])
        spool.append(bodies[7:])

        # When the spool is drained in batches of 4
        count, batches = drain_all(spool, batch=4)

        # Then every body comes out, in order, in batches of at most 4
        assert count == 10
        assert [body for batch in batches for body in batch] == bodies
        assert [len(batch) for batch in batches] == [4, 4, 2]

        # And a second drain finds nothing more
        assert drain_all(spool) == (0, [])


def test_an_empty_spool_drains_nothing(tmp_path: Path) -> None:
    assert drain_all(Spool(tmp_path / "never-created", MAX_BYTES)) == (0, [])
    tmp_path.joinpath("empty").mkdir()
    assert drain_all(Spool(tmp_path / "empty", MAX_BYTES)) == (0, [])


def test_appending_nothing_creates_no_segment(tmp_path: Path) -> None:
    Spool(tmp_path, MAX_BYTES).append([])
    assert segments(tmp_path) == []


def test_bodies_of_any_bytes_and_length_come_back_unchanged(tmp_path: Path) -> None:
    bodies = [b"", b"\x00" * 9, bytes(range(256)) * 40, b"AIRYSPL1", "\u2764\ufe0f".encode()]
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append(bodies)
    assert drain_all(Spool(tmp_path, MAX_BYTES))[1] == [bodies]


def test_size_and_pending_follow_appends_and_drains(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MAX_BYTES)
    assert (spool.size_bytes(), spool.pending()) == (0, False)

    spool.append([b"x" * 100])
    assert spool.pending()
    assert 100 < spool.size_bytes() < 200  # the body and its record header

    spool.drain(lambda bodies: None)
    assert (spool.size_bytes(), spool.pending()) == (0, False)
    spool.close()


def test_a_closed_segment_is_deleted_once_drained(tmp_path: Path) -> None:
    # Given a spool that was written to, then closed (the web process stopped)
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"one", b"two"])
    assert len(segments(tmp_path)) == 1

    # When it is drained
    drain_all(Spool(tmp_path, MAX_BYTES))

    # Then nothing of it is left but the lock files
    assert sorted(path.name for path in tmp_path.iterdir()) == ["append.lock", "drain.lock"]


def test_the_segment_of_a_live_writer_is_drained_now_and_its_later_records_later(tmp_path: Path) -> None:
    # Given a writer that keeps its segment open
    writer = Spool(tmp_path, MAX_BYTES)
    writer.append([b"one", b"two"])
    drainer = Spool(tmp_path, MAX_BYTES)

    # When it is drained, then appended to, then drained again
    first = drain_all(drainer)
    writer.append([b"three"])
    second = drain_all(drainer)

    # Then each drain gives what was new, and the segment stays while its writer lives
    assert first == (2, [[b"one", b"two"]])
    assert second == (1, [[b"three"]])
    assert len(segments(tmp_path)) == 1
    assert not drainer.pending()

    # And it goes once its writer closes it, without giving anything twice
    writer.close()
    assert drain_all(drainer) == (0, [])
    assert segments(tmp_path) == []


def test_segments_are_drained_in_the_order_they_were_written(tmp_path: Path) -> None:
    # Given a spool that rotates to a new segment past a small size
    with Spool(tmp_path, MAX_BYTES, segment_bytes=300) as spool:
        bodies = [make_body("r", number) for number in range(12)]
        for body in bodies:
            spool.append([body])
        assert len(segments(tmp_path)) > 3

        # When it is drained
        count, batches = drain_all(spool, batch=5)

    # Then the bodies come out in the order they were appended
    assert count == 12
    assert [body for batch in batches for body in batch] == bodies


def test_a_failing_store_keeps_what_was_stored_and_the_next_drain_resumes(tmp_path: Path) -> None:
    # Given spooled bodies, and a database that fails at the third batch
    bodies = [make_body("f", number) for number in range(10)]
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append(bodies)
    stored: list[bytes] = []

    def store(batch: list[bytes]) -> None:
        if len(stored) == 6:
            raise ConnectionError("database down again")
        stored.extend(batch)

    # When a drain fails, then another one runs once the database answers
    with pytest.raises(ConnectionError):
        Spool(tmp_path, MAX_BYTES).drain(store, batch=3)
    assert stored == bodies[:6]
    count = Spool(tmp_path, MAX_BYTES).drain(stored.extend, batch=3)

    # Then the second drain gives only what the first did not store
    assert count == 4
    assert stored == bodies


def test_a_second_drain_returns_at_once_while_one_runs(tmp_path: Path) -> None:
    # Given spooled bodies
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"one", b"two"])
    inner: list[int] = []

    def store(batch: list[bytes]) -> None:
        # When another drain starts while this one stores (another Spool: another lock file descriptor)
        inner.append(Spool(tmp_path, MAX_BYTES).drain(lambda bodies: pytest.fail("drained twice")))

    # Then it returns 0 without draining, and the first drain goes on
    assert Spool(tmp_path, MAX_BYTES).drain(store, batch=1) == 2
    assert inner == [0, 0]


def test_drain_refuses_a_batch_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch"):
        Spool(tmp_path, MAX_BYTES).drain(lambda bodies: None, batch=0)
