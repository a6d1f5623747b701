"""The README's run command on a fresh directory: no configuration, embedded Redis, SQLite, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import support
from tests.support import wait_until

AIRY = str(Path(sys.executable).parent / "airy-actors")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bare_environment() -> dict[str, str]:
    """The environment of a first run: nothing of ours set."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FACEBOOK_", "AIRY_", "REDIS_URL", "DATABASE_URL"))
    }


def session_processes(session_id: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session_id and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def health(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx.HTTPError:
        return None


@pytest.fixture
def first_run(tmp_path: Path):
    port = free_port()
    process = subprocess.Popen(
        [AIRY, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=bare_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process, port
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_serve_starts_with_no_configuration_and_stops_everything_it_started(first_run, tmp_path):
    process, port = first_run
    # Healthy once the worker it started serves every queue
    answer = wait_until(
        lambda: (answer := health(port)) is not None and answer.status_code == 200 and answer,
        timeout=30,
        message="airy-actors serve did not answer /health with 200",
    )
    assert answer.json()["status"] == "ok"
    assert (tmp_path / ".airy" / "airy.db").exists() and (tmp_path / ".airy" / "redis.sock").exists()
    # The Facebook endpoints say what is missing
    refused = httpx.get(f"http://127.0.0.1:{port}/facebook", params={"hub.verify_token": "x"}, timeout=5)
    assert refused.status_code == 503 and "FACEBOOK_WEBHOOK_SECRET" in refused.json()["message"]
    assert len(session_processes(process.pid)) >= 3  # the API, the worker processes, Redis

    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    wait_until(lambda: not session_processes(process.pid), timeout=10, message="orphan processes remained")
    assert "Traceback" not in output


def test_malformed_configuration_is_a_clear_error_at_start_up(tmp_path):
    env = {**bare_environment(), "AIRY_SYNC_TIMEOUT_MS": "ten seconds"}
    result = subprocess.run([AIRY, "serve"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert b"AIRY_SYNC_TIMEOUT_MS" in result.stderr and b"Traceback" not in result.stderr


def test_unreachable_database_is_a_clear_error_at_start_up(tmp_path):
    env = {
        **bare_environment(),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    result = subprocess.run([AIRY, "web"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert b"DATABASE_URL" in result.stderr and b"Traceback" not in result.stderr


WEB_WORKERS = 2


def start_web_of_several_processes(tmp_path: Path, env: dict[str, str], output: int) -> tuple[subprocess.Popen, int]:
    """``airy-actors web --workers 2`` in a session of its own, on a free port; returns it and the port."""
    port = free_port()
    process = subprocess.Popen(
        [AIRY, "web", "--workers", str(WEB_WORKERS), "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, port


def test_a_web_of_several_processes_serves_from_all_and_stops_them_all(tmp_path):
    # Given `airy-actors web --workers 2` (several processes on one port) on a fresh directory
    env = {**bare_environment(), "FACEBOOK_APP_ID": "1", "FACEBOOK_APP_SECRET": "procfile-secret"}
    process, port = start_web_of_several_processes(tmp_path, env, subprocess.PIPE)
    try:
        wait_until(lambda: health(port), timeout=30, message="the web did not answer /health")
        # the supervisor, its web processes, multiprocessing's resource tracker, the embedded Redis
        assert len(session_processes(process.pid)) >= 1 + WEB_WORKERS + 1
        # When Facebook posts the same signed batch to whichever process answers, several times
        body = support.webhook_body(support.entry("555", support.text_message("555", "42", "m_1", "hello")))
        headers = support.sign(body, "procfile-secret")
        for _ in range(6):
            answer = httpx.post(f"http://127.0.0.1:{port}/facebook", content=body, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
        # Then it is stored once
        with sqlite3.connect(tmp_path / ".airy" / "airy.db") as stored:
            assert stored.execute("SELECT count(*) FROM webhook_event").fetchone() == (1,)
        # And SIGTERM stops every process it started
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        assert process.returncode == 0, output
        wait_until(lambda: not session_processes(process.pid), timeout=10, message="orphan processes remained")
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_web_processes_stop_when_their_supervisor_is_killed_alone(tmp_path):
    # Given `airy-actors web --workers 2` serving
    env = {
        **bare_environment(),
        "REDIS_URL": os.environ.get("AIRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'airy.db'}",
    }
    process, port = start_web_of_several_processes(tmp_path, env, subprocess.DEVNULL)
    try:
        wait_until(lambda: health(port), timeout=30, message="the web did not answer /health")
        children = [pid for pid in session_processes(process.pid) if pid != process.pid]
        assert len(children) >= WEB_WORKERS
        # When only the supervisor is killed, as SIGKILL does (it can pass nothing on)
        process.kill()
        process.wait(timeout=10)
        # Then its web processes stop too, and the port no longer answers
        try:
            wait_until(lambda: not session_processes(process.pid), timeout=20, message="orphan web processes remained")
        except AssertionError as failure:
            left = [Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in session_processes(process.pid)]
            raise AssertionError(f"{failure}: {left}") from None
        assert health(port) is None
    finally:
        remaining = session_processes(process.pid)
        for pid in remaining:
            os.kill(pid, signal.SIGKILL)
