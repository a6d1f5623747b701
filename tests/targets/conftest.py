"""Fixtures of the webhook target tests: scripted receivers on 127.0.0.1, and a certificate for TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.targets.servers import Behaviour, ScriptedServer


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """Starts scripted servers on demand; all are stopped after the test."""
    started: list[ScriptedServer] = []

    def start(behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(behaviour, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for one host name, and the contexts that serve and trust it."""

    name: str
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A certificate for ``receiver.test``, made with the openssl command (the test skips without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=receiver.test",
            "-addext", "subjectAltName=DNS:receiver.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate("receiver.test", cert, key)
