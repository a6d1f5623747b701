"""Fetching a remote file into the media store: one place that follows, bounds and classifies it.

The URL comes from a signed Meta payload and is fetched as given (SPEC section 9). The outcome is one of:

- a :class:`~airy_actors.media.store.StoredMedia`;
- :class:`MediaGone` (403, 404, 410: the URL expired), :class:`MediaTooLarge` (declared or found over the
  limit), :class:`MediaRejected` (more than :data:`MAX_REDIRECTS` redirects, a content type the attachment's
  kind does not allow, another client error, a URL that cannot be fetched): permanent, record them;
- :class:`MediaUnavailable` (5xx, 408, 429, a timeout, a lost connection, the deadline): retry later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from airy_actors.media.deadline import Deadline
from airy_actors.media.errors import MediaGone, MediaRejected, MediaTooLarge, MediaUnavailable
from airy_actors.media.kinds import content_type_allowed
from airy_actors.media.store import DEFAULT_CONTENT_TYPE, MediaStore, StoredMedia

MAX_REDIRECTS = 3
GONE_STATUSES = frozenset({403, 404, 410})
RETRY_STATUSES = frozenset({408, 425, 429})


def fetch_to_store(
    client: httpx.Client,
    url: str,
    store: MediaStore,
    *,
    max_bytes: int,
    deadline_ms: int,
    kind: str | None = None,
) -> StoredMedia:
    """Streams the file at ``url`` into ``store``.

    Parameters:
      client: the HTTP client. Its own redirect and timeout settings are overridden for this fetch.
      url: the file's URL.
      store: where to keep it.
      max_bytes: the most bytes accepted; a larger declared ``Content-Length`` is refused unread.
      deadline_ms: how long the whole fetch may take, redirects and body included (the store's own work after
        the last byte, such as an upload to S3, is bounded by the store's timeouts instead).
      kind: the attachment's type (``image``, ``video``, ``audio``, ``file``, ...), to refuse a content type it
        does not allow (see :mod:`airy_actors.media.kinds`); None accepts any.

    Returns:
      The stored file, with the response's ``Content-Type`` (``application/octet-stream`` when it has none).

    Raises:
      MediaGone: the source answered 403, 404 or 410.
      MediaTooLarge: the file is, or says it is, larger than ``max_bytes``.
      MediaRejected: too many redirects, a refused content type, another 4xx, or a URL that cannot be fetched.
      MediaUnavailable: a 5xx, 408, 425 or 429, a timeout, a lost connection, or the deadline passed.
    """
    deadline = Deadline(deadline_ms)
    try:
        with _final_response(client, url, deadline) as response:
            content_type = response.headers.get("content-type", "").strip() or DEFAULT_CONTENT_TYPE
            _refuse_declared_size(response, max_bytes)
            if not content_type_allowed(kind, content_type):
                raise MediaRejected(f"the source answered {content_type!r} for an attachment of type {kind!r}")
            with deadline.cutting(response):
                return store.put(_body(response, deadline), content_type=content_type, max_bytes=max_bytes)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        raise MediaRejected(f"the media URL cannot be fetched: {error}") from None
    except httpx.DecodingError as error:
        raise MediaRejected(f"the source's body cannot be decoded: {error}") from None
    except httpx.TransportError as error:
        if deadline.expired:
            raise _late(deadline) from None
        raise MediaUnavailable(f"the source could not be reached: {type(error).__name__} {error}") from None


@contextmanager
def _final_response(client: httpx.Client, url: str, deadline: Deadline) -> Iterator[httpx.Response]:
    """Follows at most :data:`MAX_REDIRECTS` redirects, and gives the last response if it is a success."""
    request = client.build_request("GET", url, timeout=deadline.timeout())
    for hops in range(MAX_REDIRECTS + 1):
        response = client.send(request, stream=True, follow_redirects=False)
        if not response.has_redirect_location:
            break
        response.close()
        if hops == MAX_REDIRECTS or response.next_request is None:
            raise MediaRejected(f"the media URL redirects more than {MAX_REDIRECTS} times")
        request = response.next_request
        request.extensions = {**request.extensions, "timeout": deadline.timeout().as_dict()}
    try:
        _refuse_status(response)
        yield response
    finally:
        response.close()


def _refuse_status(response: httpx.Response) -> None:
    status = response.status_code
    if response.is_success:
        return
    if status in GONE_STATUSES:
        raise MediaGone(f"the source answered {status}: the media is gone")
    if status in RETRY_STATUSES or status >= 500:
        raise MediaUnavailable(f"the source answered {status}")
    raise MediaRejected(f"the source answered {status}")


def _refuse_declared_size(response: httpx.Response, max_bytes: int) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooLarge(f"the media is {declared} bytes, more than {max_bytes}", max_bytes=max_bytes)


def _body(response: httpx.Response, deadline: Deadline) -> Iterator[bytes]:
    for chunk in response.iter_bytes():
        if deadline.expired:
            raise _late(deadline)
        yield chunk


def _late(deadline: Deadline) -> MediaUnavailable:
    return MediaUnavailable(f"the fetch did not finish within {deadline.duration_ms} ms")
