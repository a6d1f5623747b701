"""The Dramatiq worker entry point: ``dramatiq workers.boot`` imports this module in each worker process.

It sets up logging and the database for the process, then declares every actor on the broker.
"""

from airy_actors.runtime import prepare_process

# A thread takes a connection at its actor's first query and hands it back after the message, and a send hands
# its own back while it waits for Facebook: a pool smaller than the threads serves them, and each worker process
# keeps to a small share of PostgreSQL's connections, which the web and every other process share.
DATABASE_CONNECTIONS = 16

prepare_process(max_connections=DATABASE_CONNECTIONS)

from workers import actors  # noqa: E402,F401
