"""Fixtures: a guarded server of a tiny app, with the limits a test gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.server.raw_http import GuardedServer, tiny_app


@pytest.fixture
def serve() -> Iterator[Callable[..., GuardedServer]]:
    """Starts a guarded server: ``serve(header_timeout_ms=500)`` serves the tiny app with those limits."""
    started: list[GuardedServer] = []

    def start(app: Any = None, **options: Any) -> GuardedServer:
        server = GuardedServer(app or tiny_app(), **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
