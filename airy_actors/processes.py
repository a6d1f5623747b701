"""Process trees: children that stop with their parent, and one way to signal a whole tree.

``airy-actors serve`` and ``worker`` start children (the Dramatiq supervisor, its worker processes, the
embedded Redis) that must never outlive them, and tests and benchmarks stop such trees as a crash would.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Loaded once, at import: a child between fork and exec must not load a library (another thread of the parent
# may have held the loader's lock at the fork).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _ask_for_parent_death_signal() -> bool:
    if _LIBC is None:
        return False
    return _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0


def stop_with_parent(parent_pid: int) -> None:
    """Has Linux send this process SIGTERM when its parent dies, even of SIGKILL, which it cannot pass on.

    For the processes that a supervisor starts (``airy-actors web --workers N``): without it, a supervisor
    killed alone leaves them serving the port, orphaned. Elsewhere than on Linux it does nothing.

    Parameters:
      parent_pid: the supervisor's pid; if it has died already, this process stops at once.
    """
    if not _ask_for_parent_death_signal():
        if sys.platform.startswith("linux"):
            logger.warning("could not ask to stop with the parent process", extra={"errno": ctypes.get_errno()})
        return
    if os.getppid() != parent_pid:  # it died before the request: nobody will send the signal
        os.kill(os.getpid(), signal.SIGTERM)


def die_with_parent() -> None:
    """A ``preexec_fn`` for children that must stop when their parent dies, even by SIGKILL.

    The child also gets a process group of its own: a Ctrl-C in the terminal reaches the parent, which then
    stops its children in order.
    """
    _ask_for_parent_death_signal()
    os.setpgrp()


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        if is_alive(pid):
            found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def signal_tree(root: int, sig: int) -> list[int]:
    """Sends ``sig`` to every process group of ``root``'s tree at once, ``root``'s own group included.

    A child started with :func:`die_with_parent` runs in a group of its own, so signalling one group
    misses processes.

    Returns:
      The tree's pids as they were found.
    """
    members = descendants(root)
    groups = {root}  # the root's own group, even when the root is gone
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    return members


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
