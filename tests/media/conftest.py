"""Fixtures of the media tests: a real S3 protocol server (moto, in a process of its own), every media store
through one parametrized fixture, and a real HTTP server to fetch from.

The S3 tests skip when moto cannot start, but fail in CI (``CI=true``).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import boto3
import httpx
import pytest

from airy_actors.media import FileStore, MediaStore, S3Store, open_media_store
from tests.media.source_server import SourceServer

IN_CI = os.environ.get("CI", "").lower() == "true"
MOTO_START_SECONDS = 30.0


@dataclass
class S3Server:
    endpoint: str
    environ: dict[str, str]


@dataclass
class StoreUnderTest:
    """A store with what a test needs to look behind it.

    Parameters:
      store: the store.
      contents: its objects' names, each with what changes when it is written again.
      leftovers: the temporary files waiting in its staging folder.
    """

    store: MediaStore
    contents: Callable[[], dict[str, Any]]
    leftovers: Callable[[], list[Path]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"moto's S3 server could not start: {reason}; CI must be able to run it")
    pytest.skip(f"moto's S3 server could not start: {reason}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1, with the AWS variables that point boto3 at it."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except OSError as error:
        log.close()
        _unavailable(str(error))
    ends_at = time.monotonic() + MOTO_START_SECONDS
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > ends_at:
            process.kill()
            process.wait()
            log.close()
            _unavailable(f"it did not answer on port {port} (see {log.name})")
        time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    environ = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        for name, value in environ.items():
            patch.setenv(name, value)
        yield S3Server(endpoint, environ)
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    bucket = f"airy-media-{secrets.token_hex(4)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


def _file_store(root: Path) -> StoreUnderTest:
    store = FileStore(root)

    def contents() -> dict[str, Any]:
        return {
            str(path.relative_to(root)): (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in root.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        }

    return StoreUnderTest(store, contents, lambda: sorted(root.glob(".incoming-*")))


def _s3_store(bucket: str, prefix: str, staging: Path) -> StoreUnderTest:
    store = open_media_store(f"s3://{bucket}/{prefix}")
    assert isinstance(store, S3Store)
    store.staging_directory = staging
    writes: Counter[str] = Counter()

    def count_write(params: dict[str, Any], **_: Any) -> None:
        writes[params["Key"]] += 1

    for operation in ("PutObject", "CreateMultipartUpload"):
        store.client.meta.events.register(f"before-parameter-build.s3.{operation}", count_write)

    def contents() -> dict[str, Any]:
        listed = store.client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
        return {item["Key"]: writes[item["Key"]] for item in listed.get("Contents", [])}

    return StoreUnderTest(store, contents, lambda: sorted(staging.glob(".incoming-*")))


@pytest.fixture(params=["file", "s3"])
def media(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    """Each media store, empty: a folder, and a prefix of its own in a bucket of the moto server."""
    staging = tmp_path / "staging"
    staging.mkdir()
    if request.param == "file":
        return _file_store(tmp_path / "media")
    bucket = request.getfixturevalue("s3_bucket")
    return _s3_store(bucket, f"test-{secrets.token_hex(4)}", staging)


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "media")


@pytest.fixture(scope="session")
def source_server() -> Iterator[SourceServer]:
    server = SourceServer().start()
    yield server
    server.stop()


@pytest.fixture
def source(source_server: SourceServer) -> SourceServer:
    source_server.files.clear()
    return source_server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client
