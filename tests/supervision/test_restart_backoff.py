"""``serve``'s restarts of its workers: 1 s doubling to 30 s, reset after a minute up; stopped on request."""

from __future__ import annotations

import subprocess
import sys

from cli.supervision import RestartBackoff, WorkerSupervisor
from tests.support import wait_until


def test_the_delay_doubles_up_to_thirty_seconds_while_the_workers_keep_dying():
    backoff = RestartBackoff()
    assert [backoff.after_exit(uptime_s=2.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_the_delay_is_one_second_again_after_workers_that_stayed_up_a_minute():
    backoff = RestartBackoff()
    for _ in range(4):
        backoff.after_exit(uptime_s=0.5)
    assert backoff.after_exit(uptime_s=61.0) == 1
    assert backoff.after_exit(uptime_s=0.5) == 2


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


def test_a_process_that_exits_is_started_again_until_the_supervisor_stops(caplog):
    # Given a supervisor of a process that exits at once, with short delays
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        started.append(python("raise SystemExit(3)" if len(started) < 3 else "import time; time.sleep(60)"))
        return started[-1]

    supervisor = WorkerSupervisor(spawn, stop, RestartBackoff(first_s=0.01, max_s=0.05)).start()
    # Then it is started again after each exit, with one line each time
    wait_until(lambda: len(started) == 4, timeout=10, message="the process was not restarted")
    assert supervisor.restarts == 3
    lines = [record.getMessage() for record in caplog.records if record.name == "cli.supervision"]
    assert lines[0].startswith("the workers exited unexpectedly (code 3); restarting them in 0.01 s")
    assert len(lines) == 3
    # When the supervisor stops, Then the running process is stopped and not started again
    supervisor.stop()
    assert started[-1].returncode is not None
    assert len(started) == 4


def test_a_supervisor_stopped_during_its_backoff_starts_nothing_more():
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        started.append(python("pass"))
        return started[-1]

    supervisor = WorkerSupervisor(spawn, stop, RestartBackoff(first_s=30)).start()
    wait_until(lambda: started and started[0].poll() is not None, timeout=10, message="the process did not exit")
    supervisor.stop()  # returns at once, although the next start was 30 s away
    assert len(started) == 1
