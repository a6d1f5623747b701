"""The Procfile's processes run for real, as subprocesses, so that a test can crash and restart them.

Each process gets a session of its own (``start_new_session=True``). ``airy-actors worker`` starts
``dramatiq workers`` in yet another process group, which forks the worker processes; a crash is therefore
simulated by SIGKILLing every process of the tree at once, as an OOM kill or a lost machine would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from airy_actors.processes import descendants, is_alive, signal_tree
from tests.support import wait_until

# `airy-actors` as the console script runs it, from this checkout's code.
AIRY = [sys.executable, "-m", "cli.commands"]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AiryProcess:
    """One ``airy-actors`` process (``web`` or ``worker``) and everything it starts.

    Parameters:
      name: for the log file and messages, e.g. ``"web"``.
      args: the arguments after ``airy-actors``.
      env: the complete environment of the process.
      log_dir: where ``<name>.log`` collects its stdout and stderr, across restarts.
    """

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> AiryProcess:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*AIRY, *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def tree(self) -> list[int]:
        """The pids of the process and of all its descendants alive now."""
        return descendants(self.pid)

    def crash(self) -> None:
        """SIGKILLs every process group of the tree at once, and reaps the root."""
        signal_tree(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stops the process gracefully (SIGTERM), or crashes it when it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            self.crash()  # a root that died may leave children behind
            return
        members = self.tree()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.crash()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(is_alive(pid) for pid in members) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in members:  # what outlived the graceful stop is not this test's subject
            if is_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Web(AiryProcess):
    """``airy-actors web`` on a port of its own, on 127.0.0.1."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.port = free_port()
        super().__init__("web", ["web", "--host", "127.0.0.1", "--port", str(self.port)], env, log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Web:
        super().start()
        wait_until(self._listens, timeout=START_TIMEOUT_S, interval=0.1, message=f"the web did not listen\n{self}")
        return self

    def _listens(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the web exited with {self.process.returncode}\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code in (200, 503)
        except httpx.TransportError:
            return False

    def __str__(self) -> str:
        return self.log_tail()


class Worker(AiryProcess):
    """``airy-actors worker``: the Dramatiq workers, ready once every worker process has booted."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, *, processes: int = 1, threads: int = 4) -> None:
        super().__init__("worker", ["worker", "--processes", str(processes), "--threads", str(threads)], env, log_dir)
        self.processes = processes

    def start(self) -> Worker:
        super().start()
        # Ready when every worker process has imported the actors and consumes.
        wait_until(self._booted, timeout=START_TIMEOUT_S, interval=0.1, message="the worker did not boot")
        return self

    def _booted(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited with {self.process.returncode}\n{self.log_tail()}")
        this_run = self.log_path.read_text(errors="replace").split(f"--- start #{self.starts} ---")[-1]
        return this_run.count("Worker process is ready for action") >= self.processes
