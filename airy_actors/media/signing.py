"""The capability in a media URL: an HMAC-SHA256 of the key, so only the service can hand out working URLs.

``GET /media/<key>?sig=<hex>`` needs no token: the signature is the capability. A key alone, which anyone holding
the file can compute, opens nothing. The secret must stay the same across restarts and hosts, or every URL
handed out before breaks.
"""

from __future__ import annotations

import hashlib
import hmac

# Signed text is "media/<key>", so a signature of this kind never stands for another use of the same secret.
_PURPOSE = "media/"


def media_url(public_url: str, key: str, secret: str | bytes) -> str:
    """Returns the service's own, permanent URL of a stored file.

    Parameters:
      public_url: the service's base URL (``AIRY_PUBLIC_URL``), with or without a trailing slash.
      key: the file's key in the media store.
      secret: the signing secret.

    Returns:
      ``<public_url>/media/<key>?sig=<hex HMAC-SHA256>``.
    """
    return f"{public_url.rstrip('/')}/media/{key}?sig={signature(key, secret)}"


def signature(key: str, secret: str | bytes) -> str:
    """Returns the hex HMAC-SHA256 that grants access to ``key``."""
    secret_bytes = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret_bytes, f"{_PURPOSE}{key}".encode(), hashlib.sha256).hexdigest()


def verify(key: str, sig: str, secret: str | bytes) -> bool:
    """Tells, in constant time, whether ``sig`` is the signature of ``key``.

    Parameters:
      key: the key from the URL's path.
      sig: the ``sig`` from the URL's query (any text; a malformed one is simply wrong).
      secret: the signing secret.

    Returns:
      True only for the signature :func:`media_url` gives.
    """
    return hmac.compare_digest(signature(key, secret).encode(), sig.encode("utf-8", "replace"))
