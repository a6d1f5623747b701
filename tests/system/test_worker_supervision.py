"""No half-alive service: workers that die are restarted by ``serve``, or make ``worker`` exit non-zero, and
``GET /health`` names the queues that no live worker serves. Real processes on real Redis and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from airy_actors.models import Channel, Message
from airy_actors.processes import descendants, is_alive
from tests import support
from tests.fake_graph import FakeGraph
from tests.faults.processes import AiryProcess, free_port
from tests.support import wait_until
from workers import queues

PAGE_ID = "1001"
BOOT_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 30.0


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def dramatiq_groups(root: int) -> dict[int, list[int]]:
    """The Dramatiq main processes that ``root`` started, each with the worker processes it forked."""
    tree = [pid for pid in descendants(root) if pid != root]
    mains = [pid for pid in tree if parent_of(pid) == root and b"dramatiq" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return {main: [pid for pid in tree if parent_of(pid) == main] for main in mains}


def dramatiq_processes(root: int) -> tuple[int, list[int]]:
    """The one Dramatiq main process that ``root`` started, and the worker processes it forked."""
    groups = dramatiq_groups(root)
    assert len(groups) == 1, f"expected one Dramatiq main process under {root}, found {list(groups)}"
    [(main, workers)] = groups.items()
    return main, workers


def health(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/health", timeout=2)
    except httpx.TransportError:
        return None


def health_is(url: str, status: int) -> Callable[[], httpx.Response | None]:
    def check() -> httpx.Response | None:
        answer = health(url)
        return answer if answer is not None and answer.status_code == status else None

    return check


def ready_workers(process: AiryProcess) -> int:
    """How many Dramatiq worker processes said they are ready since the process's last start."""
    this_run = process.log_path.read_text(errors="replace").split(f"--- start #{process.starts} ---")[-1]
    return this_run.count("Worker process is ready for action")


@pytest.fixture
def run(process_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable]:
    """Starts ``airy-actors <args>`` in a session of its own: ``run("worker", "--queues", "deliveries")``.

    Every process is stopped at the end; what any of them left alive is killed and fails the test.
    """
    started: list[AiryProcess] = []

    def start(*args: str) -> AiryProcess:
        process = AiryProcess(f"{args[0]}-{len(started)}", list(args), process_env, tmp_path)
        started.append(process.start())
        return process

    yield start
    left_behind = {}
    for process in started:
        left_behind[process.name] = stop_gracefully(process)
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"\n===== {process.name} log (last lines) =====\n{process.log_tail(60)}")
    assert {name: pids for name, pids in left_behind.items() if pids} == {}, "processes outlived their parent"


def stop_gracefully(process: AiryProcess) -> list[int]:
    """SIGTERMs the process and waits for its whole tree to stop; kills and returns what did not."""
    members = process.tree()
    if process.process is not None and process.process.poll() is None:
        process.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.process.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(is_alive(pid) for pid in members) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in members if is_alive(pid)]
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process.process is not None and process.process.poll() is None:
        process.process.wait(timeout=10)
    return survivors


@pytest.fixture
def channel(db: object, fake_graph: FakeGraph) -> Channel:
    fake_graph.add_page(PAGE_ID, "Acme", token="PAGE-TOKEN")
    return Channel.create(source_channel_id=PAGE_ID, name="Acme", page_token="PAGE-TOKEN")


def test_serve_restarts_its_killed_workers_and_health_names_the_queues_meanwhile(run, channel):
    # Given `airy-actors serve`, healthy once its worker serves every queue
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = run("serve", "--port", str(port), "--processes", "1", "--threads", "4")
    wait_until(health_is(url, 200), timeout=BOOT_TIMEOUT_S, interval=0.2, message="serve did not become healthy")
    # (two groups: the queues that wait on others, media and deliveries, have worker processes of their own)
    groups = dramatiq_groups(serve.pid)
    assert len(groups) == 2 and all(groups.values())

    # When all its Dramatiq worker processes are SIGKILLed, while Dramatiq's main processes are held still so
    # that the time without a live worker outlasts the heartbeats' expiry however fast the restart would be
    for main in groups:
        os.kill(main, signal.SIGSTOP)
    try:
        for pid in [pid for workers in groups.values() for pid in workers]:
            os.kill(pid, signal.SIGKILL)
        # Then /health answers 503 naming every queue (each process's heartbeat expires on its own clock: the
        # first 503 may name one group's queues only)
        def no_queue_served() -> httpx.Response | None:
            answer = health_is(url, 503)()
            return answer if answer is not None and not any(answer.json()["queues"].values()) else None

        answer = wait_until(no_queue_served, timeout=15, interval=0.2, message="/health did not name every queue")
    finally:
        for main in groups:
            os.kill(main, signal.SIGCONT)
    assert answer.json()["message"] == f"no live worker serves: {', '.join(queues.ALL)}"
    assert answer.json()["queues"] == {queue: 0 for queue in queues.ALL}

    # And serve starts workers again by itself: /health answers 200 again, after one clear line a group in the log
    wait_until(health_is(url, 200), timeout=BOOT_TIMEOUT_S, interval=0.2, message="the workers did not come back")
    log = serve.log_path.read_text()
    assert log.count("the workers exited unexpectedly (code 1); restarting them in 1 s") == 2
    assert serve.process is not None and serve.process.poll() is None
    assert not set(dramatiq_groups(serve.pid)) & set(groups)

    # And a message that Facebook posts now is processed
    body = support.webhook_body(
        support.entry(PAGE_ID, support.text_message(PAGE_ID, "2001", "m_after_restart", "still there?"))
    )
    answer = httpx.post(f"{url}/facebook", content=body, headers=support.sign(body), timeout=10)
    assert answer.status_code == 200, answer.text
    wait_until(
        lambda: Message.select().where(Message.source_message_id == "m_after_restart").exists(),
        timeout=20,
        interval=0.2,
        message="the message posted after the restart was not processed",
    )


def test_a_worker_of_one_queue_serves_that_queue_only(run):
    # Given the web, and `airy-actors worker --queues deliveries` as the only worker
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run("web", "--host", "127.0.0.1", "--port", str(port))
    worker = run("worker", "--queues", queues.DELIVERIES, "--processes", "1", "--threads", "2")
    wait_until(lambda: ready_workers(worker) == 1, timeout=BOOT_TIMEOUT_S, message="the worker did not boot")

    # Then /health counts it for webhooks, and names every other queue as unserved
    def webhooks_served() -> httpx.Response | None:
        answer = health(url)
        return answer if answer is not None and answer.json().get("queues", {}).get(queues.DELIVERIES) == 1 else None

    answer = wait_until(webhooks_served, timeout=BOOT_TIMEOUT_S, interval=0.2, message="webhooks were not served")
    others = [queue for queue in queues.ALL if queue != queues.DELIVERIES]
    assert answer.status_code == 503
    assert answer.json()["message"] == f"no live worker serves: {', '.join(others)}"
    assert all(answer.json()["queues"][queue] == 0 for queue in others)


@pytest.mark.parametrize("victim", ["a worker process", "Dramatiq's main process"])
def test_worker_exits_non_zero_when_its_dramatiq_processes_die(run, victim):
    # Given `airy-actors worker` with two Dramatiq worker processes
    worker = run("worker", "--processes", "2", "--threads", "1")
    wait_until(lambda: ready_workers(worker) == 2, timeout=BOOT_TIMEOUT_S, message="the worker did not boot")
    dramatiq_main, worker_processes = dramatiq_processes(worker.pid)
    tree = [dramatiq_main, *worker_processes]

    # When one of its Dramatiq processes is SIGKILLed
    os.kill(worker_processes[0] if victim == "a worker process" else dramatiq_main, signal.SIGKILL)

    # Then `airy-actors worker` exits non-zero, saying why, so that its supervisor restarts it
    assert worker.process is not None
    code = worker.process.wait(timeout=30)
    assert code == 1
    assert "the workers exited unexpectedly" in worker.log_path.read_text()
    # And no Dramatiq process is left half-alive
    try:
        wait_until(lambda: not any(is_alive(pid) for pid in tree), timeout=30, message="Dramatiq processes remained")
    finally:  # orphans are out of the worker's tree: the fixture would not find them
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_an_unknown_queue_is_a_clear_error(process_env):
    result = subprocess.run(
        [sys.executable, "-m", "cli.commands", "worker", "--queues", "ingestion,webhook"],
        env=process_env,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"unknown queue 'webhook'" in result.stderr and b"Traceback" not in result.stderr
