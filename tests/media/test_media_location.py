"""AIRY_MEDIA_STORE: which store a URL names, and the clear errors for the ones it cannot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airy_actors.errors import ConfigError
from airy_actors.media import DEFAULT_MEDIA_STORE, FileStore, S3Store, open_media_store

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The AWS variables of a machine with credentials and nothing else; no config file, no instance metadata."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    return monkeypatch


def test_default_is_a_folder_under_airy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_media_store(DEFAULT_MEDIA_STORE)

    assert isinstance(store, FileStore)
    assert store.root == Path(".airy/media")
    assert (tmp_path / ".airy" / "media").is_dir()


@pytest.mark.parametrize("form", ["file:{}", "file://{}"])
def test_file_url_names_a_folder(tmp_path: Path, form: str) -> None:
    store = open_media_store(form.format(tmp_path / "media"))

    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "media"


def test_s3_url_names_a_bucket_and_prefix_with_the_aws_variables(aws: pytest.MonkeyPatch) -> None:
    store = open_media_store("s3://airy-media/inbound/media/")

    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("airy-media", "inbound/media")
    assert store.client.meta.region_name == "eu-west-1"
    assert store.client.meta.config.s3 is None or store.client.meta.config.s3.get("addressing_style") != "path"


def test_s3_store_elsewhere_than_aws_is_addressed_by_path(aws: pytest.MonkeyPatch) -> None:
    aws.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")

    store = open_media_store("s3://airy-media")

    assert isinstance(store, S3Store)
    assert store.prefix == ""
    assert store.client.meta.endpoint_url == "http://minio.internal:9000"
    assert store.client.meta.config.s3 == {"addressing_style": "path"}


@pytest.mark.parametrize("url", ["", "media", "/var/media", "s3:/bucket", "gs://bucket/x", "s3://", "s3://b?x=1"])
def test_anything_else_is_a_config_error_naming_the_variable(url: str, aws: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="AIRY_MEDIA_STORE"):
        open_media_store(url)


def test_s3_store_without_credentials_is_a_config_error(aws: pytest.MonkeyPatch) -> None:
    aws.delenv("AWS_ACCESS_KEY_ID")
    aws.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        open_media_store("s3://airy-media/x")


def test_malformed_endpoint_is_a_config_error(aws: pytest.MonkeyPatch) -> None:
    aws.setenv("AWS_ENDPOINT_URL", "not a url")

    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL"):
        open_media_store("s3://airy-media/x")
