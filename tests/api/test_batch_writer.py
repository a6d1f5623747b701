"""The batch writer's timing rules, on a writer that records its batches (no database needed)."""

from __future__ import annotations

import asyncio
import time

from api.batch_writer import BatchWriter


class Recorder(BatchWriter[str, str]):
    """Writes nothing: answers each item with itself and records the batches."""

    def __init__(self, gather_s: float) -> None:
        super().__init__("test-writer", max_batch=64, gather_s=gather_s)
        self.batches: list[list[str]] = []

    def write(self, batch: list[str]) -> list[str | Exception]:
        self.batches.append(list(batch))
        return list(batch)


async def submit_after(writer: Recorder, item: str, delay_s: float) -> str:
    await asyncio.sleep(delay_s)
    return await asyncio.wait_for(writer.submit(item), timeout=10)


def test_a_lone_item_after_a_batch_of_one_is_written_at_once():
    # Given a writer that would gather for 5 s under load, and a quiet start: one item, then another
    writer = Recorder(gather_s=5.0)
    started = time.monotonic()
    assert asyncio.run(submit_after(writer, "a", 0)) == "a"
    assert asyncio.run(submit_after(writer, "b", 0)) == "b"
    # Then neither waited for company
    assert time.monotonic() - started < 2.5
    assert writer.batches == [["a"], ["b"]]


def test_under_load_a_batch_waits_briefly_for_items_that_follow_its_first():
    writer = Recorder(gather_s=0.5)

    async def scenario() -> list[str]:
        # Given a batch of two items (items come together: the writer is under load)
        for attempt in range(20):  # two submits in a row are almost always one batch; make sure
            await asyncio.gather(writer.submit(f"a{attempt}"), writer.submit(f"b{attempt}"))
            if len(writer.batches[-1]) == 2:
                break
        assert len(writer.batches[-1]) == 2
        # When one item comes, and another 100 ms later, within the gathering time
        return await asyncio.gather(submit_after(writer, "c", 0), submit_after(writer, "d", 0.1))

    # Then both are answered, and were written together
    assert asyncio.run(scenario()) == ["c", "d"]
    assert writer.batches[-1] == ["c", "d"]


def test_what_after_leaves_for_later_runs_when_due_even_if_no_item_comes():
    class Deferring(Recorder):
        def __init__(self) -> None:
            super().__init__(gather_s=0.0)
            self.due_at: float | None = None
            self.done: list[str] = []

        def after(self, results: list[str | Exception]) -> None:
            self.due_at = time.monotonic() + 0.05

        def due_in(self) -> float | None:
            return None if self.due_at is None else self.due_at - time.monotonic()

        def when_due(self) -> None:
            self.due_at = None
            self.done.append("flushed")

    writer = Deferring()
    # When one item is written and nothing follows
    asyncio.run(submit_after(writer, "a", 0))
    # Then what it left for later is done within moments
    deadline = time.monotonic() + 5
    while not writer.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.done == ["flushed"]
