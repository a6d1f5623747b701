"""The Dramatiq worker entry point: ``dramatiq workers.boot`` imports this module in each worker process.

It ties the process's life to Dramatiq's main process, sets up logging and the database for the process, then
declares every actor on the broker.
"""

import multiprocessing

from airy_actors.processes import stop_with_parent
from airy_actors.runtime import prepare_process

# A thread takes a connection at its actor's first query and hands it back after the message, and a send hands
# its own back while it waits for Facebook: a pool smaller than the threads serves them, and each worker process
# keeps to a small share of PostgreSQL's connections, which the web and every other process share.
DATABASE_CONNECTIONS = 16

# Dramatiq forks its worker processes, and a fork does not inherit the request to stop with the parent: without
# this, a Dramatiq main process killed alone (SIGKILL, the OOM killer) would leave them consuming, orphaned.
_dramatiq_main = multiprocessing.parent_process()
if _dramatiq_main is not None and _dramatiq_main.pid is not None:
    stop_with_parent(_dramatiq_main.pid)

prepare_process(max_connections=DATABASE_CONNECTIONS)

from workers import actors  # noqa: E402,F401
