"""One entry point for every webhook body Meta sends: the parser of the body's platform, chosen by ``object``.

Messenger (``"object": "page"``) and Instagram (``"object": "instagram"``) post to the same webhook, signed by the
same app. Each platform has its parser; they share what the platforms send alike (:mod:`airy_actors.events.common`).
"""

from __future__ import annotations

from collections.abc import Callable

from airy_actors.events import instagram, messenger
from airy_actors.events.types import IgnoredEvent, InboundEvent

_PARSERS: dict[str, Callable[..., list[InboundEvent]]] = {
    messenger.OBJECT: messenger.parse_messenger_body,
    instagram.OBJECT: instagram.parse_instagram_body,
}


def parse_webhook_body(body: object, *, received_at_ms: int | None = None) -> list[InboundEvent]:
    """Turn a decoded webhook body into a flat list of domain events.

    Parameters:
      body(object): The JSON-decoded webhook body, ``{"object": "page" | "instagram", "entry": [...]}``. Any
        value is accepted: what is not such a body gives one :class:`IgnoredEvent`.
      received_at_ms(int | None): When the request was received (epoch ms): the time of an event that has no
        ``timestamp`` and whose entry has no usable ``time``. Without it such an event is unusable.

    Returns:
      list[InboundEvent]: The events, in the order Meta sent them; each names its ``platform``.
    """
    if not isinstance(body, dict):
        return [IgnoredEvent(None, "body is not an object", body, kind="body")]
    platform = body.get("object")
    parser = _PARSERS.get(platform) if isinstance(platform, str) else None
    if parser is None:
        return [IgnoredEvent(None, "object is neither page nor instagram", body, kind="body")]
    return parser(body, received_at_ms=received_at_ms)
