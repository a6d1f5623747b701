"""Which media store ``AIRY_MEDIA_STORE`` names: ``file:PATH`` (a folder) or ``s3://bucket/prefix``.

For S3 the credentials, endpoint and region come from the standard AWS variables, read by boto3 itself
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_PROFILE`` and the rest of its chain). When an endpoint is set, the store is not
AWS itself, and objects are addressed by path (``<endpoint>/<bucket>/<name>``), the one style that every
S3-compatible store (MinIO, Ceph, R2, ...) understands without DNS set up for each bucket.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from airy_actors.errors import ConfigError
from airy_actors.media.file_store import FileStore
from airy_actors.media.s3_store import S3Store
from airy_actors.media.store import MediaStore

VARIABLE = "AIRY_MEDIA_STORE"
DEFAULT_MEDIA_STORE = "file:.airy/media"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def open_media_store(url: str) -> MediaStore:
    """Opens the media store that ``url`` names. Sends no request to the store (for S3, boto3 may still ask an
    instance's metadata service for credentials, as it does everywhere).

    Parameters:
      url: ``file:PATH`` (relative or absolute; ``file:///abs/path`` too) or ``s3://bucket/prefix``; for S3
        the AWS variables are read from ``os.environ``, by boto3 itself.

    Returns:
      The store.

    Raises:
      ConfigError: naming ``AIRY_MEDIA_STORE`` when the URL is neither form, or the AWS variable at fault when
        an S3 store has no credentials or a malformed endpoint.
    """
    if url.startswith("file:"):
        return _file_store(url)
    if url.startswith("s3://"):
        return _s3_store(url)
    raise ConfigError(f"{VARIABLE} must be file:PATH or s3://bucket/prefix, got {url!r}")


def _file_store(url: str) -> FileStore:
    path = url.removeprefix("file://") if url.startswith("file:///") else url.removeprefix("file:")
    if not path:
        raise ConfigError(f"{VARIABLE} must name a folder after file:, got {url!r}")
    try:
        return FileStore(Path(path))
    except OSError as error:
        raise ConfigError(f"{VARIABLE} names a folder that cannot be made: {error}") from None


def _s3_store(url: str) -> S3Store:
    parts = urlsplit(url)
    if not _BUCKET.fullmatch(parts.netloc) or parts.query or parts.fragment:
        raise ConfigError(f"{VARIABLE} must be s3://bucket/prefix with a bucket name and no query, got {url!r}")
    elsewhere_than_aws = any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)
    config = Config(s3={"addressing_style": "path"}) if elsewhere_than_aws else None
    session = boto3.session.Session()
    try:
        client = session.client("s3", config=config)
    except ValueError as error:
        raise ConfigError(f"AWS_ENDPOINT_URL is malformed for the S3 media store: {error}") from None
    if session.get_credentials() is None:
        raise ConfigError(
            f"{VARIABLE} names an S3 store but no AWS credentials were found: "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    return S3Store(client, parts.netloc, parts.path)
