"""Media URLs: the signature is the capability."""

from __future__ import annotations

import hashlib

import pytest

from airy_actors.media import media_url, verify

KEY = hashlib.sha256(b"a picture").hexdigest()
SECRET = "media-secret"


def test_media_url_is_the_public_url_the_key_and_a_signature() -> None:
    url = media_url("https://airy.example.com/", KEY, SECRET)

    prefix = f"https://airy.example.com/media/{KEY}?sig="
    assert url.startswith(prefix)
    signature = url.removeprefix(prefix)
    assert len(signature) == 64 and int(signature, 16) >= 0
    assert verify(KEY, signature, SECRET)


def test_same_key_and_secret_give_the_same_url() -> None:
    assert media_url("http://h:1", KEY, SECRET) == media_url("http://h:1", KEY, SECRET.encode())


@pytest.mark.parametrize(
    "wrong",
    [
        "",
        "0" * 64,
        "not hex at all",
        "é" * 64,
        "\udcff",
    ],
)
def test_wrong_signature_is_refused(wrong: str) -> None:
    assert not verify(KEY, wrong, SECRET)


def test_signature_of_another_key_or_secret_is_refused() -> None:
    other_key = hashlib.sha256(b"another picture").hexdigest()
    signature = media_url("http://h", KEY, SECRET).rsplit("=", 1)[1]

    assert not verify(other_key, signature, SECRET)
    assert not verify(KEY, signature, "another secret")
    assert not verify(KEY, signature.upper(), SECRET)
