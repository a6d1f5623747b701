"""A worker SIGKILLed while its sends are in flight: every message still reaches Facebook exactly once, or
ends failed with a reason; none stays pending.

The worker runs as the Procfile runs it (``airy-actors worker``), in a session of its own, so that the
whole tree can be killed at once as an OOM kill or a lost machine would.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airy_actors.models import Message
from tests.fake_graph import FakeGraph
from tests.sending.sends import send
from tests.support import APP_SECRET, wait_until

MESSAGES = 40


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants alive now, from /proc."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[parent].append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILLs every process group of the tree at once, and reaps the root."""
    groups = set()
    for pid in process_tree(process.pid):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with open(tmp_path / f"worker-{len(started)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.commands", "worker", "--processes", "1", "--threads", "4"],
                env=os.environ.copy(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(process)


@pytest.mark.parametrize("echoes", [True, False], ids=["echoes", "no-echoes"])
def test_a_worker_killed_mid_send_neither_duplicates_nor_loses_a_message(
    api, conversation, fake_graph: FakeGraph, start_worker, echoes
):
    # Given Facebook answers in 300 ms (and echoes every message to our webhook, or never), and a worker runs
    fake_graph.latency_ms = 300
    if echoes:
        fake_graph.deliver_echoes_to(f"{api.base_url}/facebook", APP_SECRET)
    chats = [conversation(psid=f"30{n:02d}") for n in range(6)]
    first = start_worker()
    ids = [send(api, chats[n % len(chats)].id, {"text": f"reply {n}"}).json()["id"] for n in range(MESSAGES)]

    # When the worker is SIGKILLed while several sends wait for Facebook's answer
    def in_flight() -> list[str]:
        return [m.id for m in Message.select().where(Message.send_state == "in_flight")]

    wait_until(lambda: len(fake_graph.find_requests("POST", "/me/messages")) >= 6 and len(in_flight()) >= 2, timeout=60)
    kill_tree(first)
    interrupted = in_flight()
    assert interrupted, "no send was in flight when the worker died"
    # And another worker takes over
    start_worker()

    # Then no message stays pending
    wait_until(
        lambda: Message.select().where(Message.id.in_(ids) & (Message.delivery_state == "pending")).count() == 0,
        timeout=180,
        interval=0.5,
        message="messages still pending after the crash",
    )
    fake_graph.flush_echoes()
    sent = fake_graph.sent_messages
    handed = collections.Counter(body["message"]["metadata"] for body in sent)
    # And Facebook never got a message twice
    assert max(handed.values()) == 1, handed.most_common(3)
    for message in Message.select().where(Message.id.in_(ids)):
        if message.delivery_state == "delivered":
            # A delivered message reached Facebook exactly once, under the mid we show
            [body] = [body for body in sent if body["message"]["metadata"] == f"airy:{message.id}"]
            assert message.metadata["source_id"] == body["message_id"] == message.source_message_id
        else:
            assert message.delivery_state == "failed"
            assert isinstance(message.metadata["error"], str) and message.metadata["error"]
            # Only a send that was in flight may fail: its outcome is unknown without an echo
            assert message.id in interrupted
            assert "may or may not have been delivered" in message.metadata["error"]
    # And echoes became no second message
    assert Message.select().count() == MESSAGES
