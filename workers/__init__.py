"""The Dramatiq worker entry point: ``dramatiq workers`` imports this package.

It sets up logging and the database for the process, then declares every actor on the broker.
"""

from airy_actors.runtime import prepare_process

prepare_process()

from airy_actors import actors  # noqa: E402,F401
