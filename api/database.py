"""Running synchronous domain code (Peewee) from async endpoints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from airy_actors.db import database

P = ParamSpec("P")
T = TypeVar("T")


async def in_database(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs ``function`` in the thread pool with a database connection, handed back afterwards."""
    return await run_in_threadpool(functools.partial(_with_connection, function, *args, **kwargs))


def _with_connection(function: Callable[..., T], *args: object, **kwargs: object) -> T:
    with database.connection_context():
        return function(*args, **kwargs)
