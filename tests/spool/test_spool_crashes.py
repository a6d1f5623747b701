"""The spool across real processes: crashes (SIGKILL) while appending or draining, and concurrent writers."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from airy_actors.spool import Spool
from tests.spool.spool_child import MAX_BYTES, SqliteStore, make_body, read_body, start

TIMEOUT_S = 60


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def drained(directory: Path) -> list[bytes]:
    bodies: list[bytes] = []
    Spool(directory, MAX_BYTES).drain(bodies.extend)
    return bodies


@pytest.mark.parametrize("kill_after", [1, 2])
def test_a_drain_killed_after_storing_a_batch_is_finished_by_the_next_one_storing_each_body_once(
    tmp_path: Path, kill_after: int
) -> None:
    # Given two closed segments of spooled bodies
    spool_dir, database = tmp_path / "spool", tmp_path / "store.db"
    bodies = [make_body("d", number) for number in range(14)]
    for part in (bodies[:9], bodies[9:]):
        with Spool(spool_dir, MAX_BYTES) as spool:
            spool.append(part)

    # When a drain is SIGKILLed right after the database committed one of its batches of 4
    child = start("drain-and-die", str(spool_dir), str(database), "4", str(kill_after))
    assert child.wait(TIMEOUT_S) == -signal.SIGKILL

    # And another drain runs
    store = SqliteStore(database)
    count = Spool(spool_dir, MAX_BYTES).drain(store, batch=4)

    # Then every body is stored exactly once
    assert sorted(store.stored()) == sorted(digest(body) for body in bodies)
    assert sorted(store.stored().values()) == sorted(bodies)
    # And only the batch stored just before the kill was given to the database twice
    replayed = bodies[4 * (kill_after - 1) : 4 * kill_after]
    assert store.deliveries() == {digest(body): 1 + (body in replayed) for body in bodies}
    assert count == len(bodies) - 4 * (kill_after - 1)
    assert not Spool(spool_dir, MAX_BYTES).pending()
    assert list(spool_dir.glob("*.seg")) == list(spool_dir.glob("*.off")) == []


def test_writers_killed_while_appending_lose_no_acknowledged_body_and_garble_none(tmp_path: Path) -> None:
    # Given processes, one after the other, appending large bodies in a loop and printing each id once its
    # append returned, each SIGKILLed in the middle of its loop (at a random moment, to land inside a write
    # now and then: a torn tail)
    acknowledged: dict[str, list[int]] = {}
    for tag in ("p0", "p1", "p2", "p3"):
        acknowledged[tag] = append_until_killed(tmp_path, tag)

    # When the spool is drained
    numbers = [read_body(body) for body in drained(tmp_path)]  # raises on a garbled body

    # Then each process's bodies come out intact, in order, each once, and every acknowledged one among them
    for tag, acked in acknowledged.items():
        appended = [number for written_by, number in numbers if written_by == tag]
        assert appended == list(range(len(appended)))
        assert set(acked) <= set(appended)
    # And the dead writers' segments, drained, are gone
    assert list(tmp_path.glob("*.seg")) == []


def append_until_killed(directory: Path, tag: str) -> list[int]:
    """Runs ``append-loop`` until it acknowledged a few dozen bodies, SIGKILLs it; returns what it acknowledged."""
    child = start("append-loop", str(directory), tag, str(64 * 1024))
    assert child.stdout is not None
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < 30:
            line = child.stdout.readline()
            assert line, "the appending process stopped on its own"
            acknowledged.append(int(line))
        time.sleep(random.uniform(0, 0.005))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(TIMEOUT_S)
    acknowledged += [int(line) for line in child.stdout.read().split()]  # acknowledged before the kill
    child.stdout.close()
    return acknowledged


def test_two_processes_appending_at_once_leave_every_record_intact(tmp_path: Path) -> None:
    # Given two processes appending bodies of various sizes to the same directory at the same time
    count = 400
    children = [start("append-tagged", str(tmp_path), tag, str(count)) for tag in ("a", "b")]
    for child in children:
        out, _ = child.communicate(timeout=TIMEOUT_S)
        assert (child.returncode, out) == (0, "done\n")

    # When the spool is drained
    numbers = [read_body(body) for body in drained(tmp_path)]  # raises on a garbled body

    # Then each process's bodies are all there, once, in the order it appended them
    for tag in ("a", "b"):
        assert [number for written_by, number in numbers if written_by == tag] == list(range(count))
    assert len(numbers) == 2 * count


def test_the_segment_of_a_live_writer_process_is_drained_up_to_its_last_complete_record(tmp_path: Path) -> None:
    # Given a process that appended bodies and keeps its segment open
    child = start("append-on-demand", str(tmp_path), "live", stdin=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def append(count: int) -> None:
        child.stdin.write(f"{count}\n")
        child.stdin.flush()
        assert child.stdout.readline() == "ok\n"

    try:
        append(5)

        # When the spool is drained while the process lives, and again after it appended more and stopped
        first = drained(tmp_path)
        append(3)
        second = drained(tmp_path)
        assert list(tmp_path.glob("*.seg")) != []
        child.stdin.close()
        assert child.wait(TIMEOUT_S) == 0
        third = drained(tmp_path)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(TIMEOUT_S)

    # Then each drain gives what was new, and nothing twice
    assert [read_body(body)[1] for body in first] == [0, 1, 2, 3, 4]
    assert [read_body(body)[1] for body in second] == [5, 6, 7]
    assert third == []
    assert list(tmp_path.glob("*.seg")) == []
