"""A segment cut short or damaged by a crash: complete records are kept, the torn one is never misread."""

from __future__ import annotations

from pathlib import Path

from airy_actors.spool import Spool

MAX_BYTES = 1 << 24
HEADER_BYTES = 8  # a record's length and CRC32


def only_segment(directory: Path) -> Path:
    [segment] = directory.glob("*.seg")
    return segment


def drained(directory: Path) -> list[bytes]:
    bodies: list[bytes] = []
    Spool(directory, MAX_BYTES).drain(bodies.extend)
    return bodies


def cut(path: Path, size: int) -> None:
    with open(path, "r+b") as file:
        file.truncate(size)


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    # Given three records, the last one cut in the middle of its body (a crash while it was written)
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"first", b"second", b"third record"])
    segment = only_segment(tmp_path)
    cut(segment, segment.stat().st_size - 5)

    # When the spool is drained
    bodies = drained(tmp_path)

    # Then the complete records come out, and the torn one goes with its segment
    assert bodies == [b"first", b"second"]
    assert list(tmp_path.glob("*.seg")) == []


def test_a_record_header_cut_short_is_ignored(tmp_path: Path) -> None:
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"first", b"second"])
    segment = only_segment(tmp_path)
    cut(segment, segment.stat().st_size - len(b"second") - HEADER_BYTES + 3)

    assert drained(tmp_path) == [b"first"]


def test_a_damaged_record_is_never_given_as_a_body(tmp_path: Path) -> None:
    # Given a last record whose body was damaged on disk, its length intact
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"first", b"second"])
    segment = only_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF
    segment.write_bytes(bytes(data))

    # Then its CRC keeps it out
    assert drained(tmp_path) == [b"first"]


def test_a_tail_of_zeros_is_not_a_record(tmp_path: Path) -> None:
    # A file extended by the file system but never written (a power loss) reads as zeros.
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"first"])
    segment = only_segment(tmp_path)
    with open(segment, "ab") as file:
        file.write(bytes(64))

    assert drained(tmp_path) == [b"first"]


def test_appends_after_a_torn_tail_are_drained(tmp_path: Path) -> None:
    # Given a writer whose segment was cut in the middle of its last record
    spool = Spool(tmp_path, MAX_BYTES)
    spool.append([b"first", b"second"])
    segment = only_segment(tmp_path)
    cut(segment, segment.stat().st_size - 3)

    # When the same writer appends again
    spool.append([b"third"])

    # Then the drain gives what was complete and what followed, never the torn record
    assert drained(tmp_path) == [b"first", b"third"]
    spool.close()
    assert drained(tmp_path) == []


def test_a_restarted_writer_appends_after_a_torn_tail(tmp_path: Path) -> None:
    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"first", b"second"])
    segment = only_segment(tmp_path)
    cut(segment, segment.stat().st_size - 3)

    with Spool(tmp_path, MAX_BYTES) as spool:
        spool.append([b"third"])

    assert drained(tmp_path) == [b"first", b"third"]
