"""Keeping the Dramatiq workers of ``airy-actors serve`` alive: restarted when they die, with a backoff.

``serve`` is the whole service in one command, with no process supervisor above it: when its workers die
(Dramatiq stops them all once one of its worker processes dies), it starts them again itself, rather than
answering webhooks that nothing processes. ``airy-actors worker`` does not restart anything: it exits
non-zero, and the supervisor that runs the Procfile restarts it.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STABLE_AFTER_S = 60.0


class RestartBackoff:
    """How long to wait before a restart: 1 s, doubling up to 30 s, and 1 s again after a run that stayed up a
    minute (a crash now and then is not a crash loop).
    """

    def __init__(
        self, first_s: float = FIRST_DELAY_S, max_s: float = MAX_DELAY_S, stable_after_s: float = STABLE_AFTER_S
    ) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.stable_after_s = stable_after_s
        self._next_s = first_s

    def after_exit(self, uptime_s: float) -> float:
        """The delay before restarting a process that ran for ``uptime_s`` seconds, and counts the restart."""
        if uptime_s >= self.stable_after_s:
            self._next_s = self.first_s
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay


class WorkerSupervisor:
    """Runs a process in a thread of its own and starts it again whenever it exits, until :meth:`stop`.

    The thread that starts a child must outlive it: Linux sends the parent-death signal (see
    ``airy_actors.processes.die_with_parent``) when that *thread* ends. This one ends only once the child has
    stopped.

    Parameters:
      spawn: starts the process (``dramatiq workers.boot ...``).
      stop_process: stops it gracefully, or kills its tree when it does not stop in time.
      backoff: the delays between restarts.
    """

    def __init__(
        self,
        spawn: Callable[[], subprocess.Popen[bytes]],
        stop_process: Callable[[subprocess.Popen[bytes]], None],
        backoff: RestartBackoff | None = None,
    ) -> None:
        self._spawn = spawn
        self._stop_process = stop_process
        self._backoff = backoff or RestartBackoff()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="airy-worker-supervisor", daemon=True)
        self.restarts = 0

    def start(self) -> WorkerSupervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the process and the restarts; returns once both have stopped."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            self._stop_process(process)
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._process = self._spawn()
                except Exception:  # e.g. out of memory or of pids: try again later, like a crash
                    logger.exception("could not start the workers")
                    self._process = None
            code = self._process.wait() if self._process is not None else None
            if self._stopping.is_set():
                return
            delay = self._backoff.after_exit(time.monotonic() - started)
            self.restarts += 1
            logger.error(
                f"the workers exited unexpectedly (code {code}); restarting them in {delay:g} s",
                extra={"code": code, "restart_in_s": delay, "restarts": self.restarts},
            )
            if self._stopping.wait(delay):
                return
