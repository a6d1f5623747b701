"""This process's media store and URL signer, built once from the settings.

The signing secret must be the same in every process and across restarts, or the URLs handed out before stop
working: ``AIRY_MEDIA_SECRET`` when set; else one derived from ``FACEBOOK_APP_SECRET``; else (a first run with
nothing configured) a random one kept in ``AIRY_DATA_DIR/media.secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from airy_actors.config import get_settings
from airy_actors.media.location import open_media_store
from airy_actors.media.signing import media_url
from airy_actors.media.store import MediaStore

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"

_lock = threading.Lock()
_store: MediaStore | None = None
_secret: bytes | None = None


def get_media_store() -> MediaStore:
    """The media store of ``AIRY_MEDIA_STORE``."""
    global _store
    with _lock:
        if _store is None:
            _store = open_media_store(get_settings().media_store)
        return _store


def use_media_store(store: MediaStore | None) -> None:
    """Replaces this process's media store (None: build it again from the settings)."""
    global _store
    with _lock:
        _store = store


def signed_url(key: str) -> str:
    """The service's own, permanent URL of a stored file: ``<AIRY_PUBLIC_URL>/media/<key>?sig=...``."""
    return media_url(get_settings().public_url or DEFAULT_PUBLIC_URL, key, media_secret())


def media_secret() -> bytes:
    """The secret that signs media URLs (see the module's docstring for where it comes from)."""
    global _secret
    with _lock:
        if _secret is None:
            settings = get_settings()
            if settings.media_secret:
                _secret = settings.media_secret.encode()
            elif settings.facebook_app_secret:
                _secret = hmac.new(settings.facebook_app_secret.encode(), b"airy-media-urls", hashlib.sha256).digest()
            else:
                _secret = _kept_secret(settings.data_dir / "media.secret")
        return _secret


def _kept_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of processes starting together, one writes the secret and the others read it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip() or _kept_secret_again(path)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
        file.flush()
        os.fsync(file.fileno())
    return path.read_bytes().strip()


def _kept_secret_again(path: Path) -> bytes:
    # Another process created the file and has not written it yet.
    for _ in range(100):
        value = path.read_bytes().strip()
        if value:
            return value
        threading.Event().wait(0.01)
    raise OSError(f"{path} stays empty")
