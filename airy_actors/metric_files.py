"""Where the processes of one host write their metrics, so that one scrape of the web sums them all.

prometheus_client's multiprocess mode: each process writes its counters and histograms to memory-mapped files
in ``PROMETHEUS_MULTIPROC_DIR``, and a scrape merges every file. prometheus_client reads that variable once,
when it is first imported, so the console script sets it (:func:`prepare`) before anything imports
prometheus_client; the processes it starts (uvicorn's, Dramatiq's, the worker that ``serve`` supervises)
inherit it. This module therefore imports nothing of prometheus_client.

On disk, under ``AIRY_DATA_DIR/metrics``::

    <command>-<pid>/          one run of ``airy-actors serve|web|worker``: PROMETHEUS_MULTIPROC_DIR of that
                              command and of every process it starts
        owner.lock            flock'd by the command for as long as it runs; its content means nothing
        counter_<pid>.db ...  prometheus_client's files, one set per process

The Procfile runs several commands on a host (web, worker, deliveries), so each run has a directory of its own:
a command that starts must not wipe the files of one that runs. A run's files stay after it ends, so that the
counters of a process that exited keep counting in the sum (prometheus_client's rule for dead processes), until
the next command starts on the host: it removes the directories whose lock it can take, the runs that ended,
however they ended (the kernel releases a dead process's lock). Their counters then leave the sum, which
Prometheus reads as a counter reset, as for a restarted process scraped on its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO

from airy_actors.config import Settings
from airy_actors.errors import ConfigError

logger = logging.getLogger(__name__)

_claimed: list[RunDirectory] = []

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
OWNER_LOCK = "owner.lock"
NEW_PREFIX = ".new-"
ABANDONED_AFTER_S = 3600.0
"""A directory being created that never got its lock (its creator died in between) is removed after this."""


def metrics_root(data_dir: Path) -> Path:
    """The directory of the host's metric files: ``AIRY_DATA_DIR/metrics``, absolute."""
    return (data_dir / "metrics").absolute()


class RunDirectory:
    """The metrics directory of one run of a command, locked for as long as the run lasts.

    Parameters:
      path: the directory.
      lock: the open ``owner.lock``, flock'd; closing it (or dying) ends the run.
    """

    def __init__(self, path: Path, lock: IO[bytes]) -> None:
        self.path = path
        self._lock = lock

    @classmethod
    def claim(cls, root: Path, command: str) -> RunDirectory:
        """Removes the directories of ended runs, then creates and locks this run's, empty.

        The directory is made and locked under a temporary name, then renamed into place: a command starting
        meanwhile never sees a run directory that has no owner yet.

        Raises:
          OSError: when the directory cannot be created.
        """
        root.mkdir(parents=True, exist_ok=True)
        remove_ended_runs(root)
        pid = os.getpid()
        building = root / f"{NEW_PREFIX}{command}-{pid}"
        shutil.rmtree(building, ignore_errors=True)  # left by a dead process whose pid we now have
        building.mkdir()
        lock = open(building / OWNER_LOCK, "wb")  # held open, and locked, for the whole run
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = root / f"{command}-{pid}"
        shutil.rmtree(path, ignore_errors=True)  # ended (its lock was free): same pid, an earlier run
        building.rename(path)
        return cls(path, lock)

    def release(self) -> None:
        """Ends the run: its files stay, counted, until the next command on the host starts."""
        self._lock.close()


def remove_ended_runs(root: Path) -> list[Path]:
    """Removes the run directories under ``root`` whose owner is gone. Returns them."""
    removed = []
    for path in sorted(root.iterdir()):
        if not path.is_dir():
            continue
        try:
            lock = open(path / OWNER_LOCK, "rb")
        except FileNotFoundError:
            if path.name.startswith(NEW_PREFIX) and time.time() - path.stat().st_mtime > ABANDONED_AFTER_S:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its command runs
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        logger.info("removed the metrics of ended runs", extra={"directories": [path.name for path in removed]})
    return removed


def metric_files(root: Path) -> list[str]:
    """Every process's metric files under ``root``, of every run (ended or not)."""
    return sorted(str(path) for path in root.glob("*/*.db"))


def prepare(settings: Settings, command: str) -> RunDirectory | None:
    """Makes this process, and those it starts, write their metrics to a run directory of their own.

    Called by the console script before anything imports prometheus_client. With ``AIRY_METRICS=off``, the
    processes keep their metrics in memory, where nothing reads them.

    Returns:
      The run directory, kept (and locked) until this process exits; None when metrics are off.

    Raises:
      ConfigError: when the directory cannot be created under ``AIRY_DATA_DIR``.
    """
    if "prometheus_client" in sys.modules:
        logger.warning("prometheus_client was imported before its directory was set: this process keeps its own")
    if not settings.metrics:
        os.environ.pop(ENVIRONMENT_VARIABLE, None)
        return None
    root = metrics_root(settings.data_dir)
    try:
        run = RunDirectory.claim(root, command)
    except OSError as error:
        raise ConfigError(f"AIRY_DATA_DIR: cannot create the metrics directory {root} ({error})") from None
    os.environ[ENVIRONMENT_VARIABLE] = str(run.path)
    _claimed.append(run)  # its lock is released when the file closes: when this process exits
    return run


def host_root() -> Path | None:
    """The directory of the host's metric files when this process writes its own there (None: in memory)."""
    own = os.environ.get(ENVIRONMENT_VARIABLE)
    return Path(own).parent if own else None
