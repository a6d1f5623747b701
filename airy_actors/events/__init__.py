"""Meta's webhook bodies as domain events, for Messenger and Instagram: one parser per platform.

``types`` (the events), ``common`` (what both platforms send alike, parsed once), ``values`` (ids, timestamps and
strings as Meta writes them), ``messenger`` and ``instagram`` (what only each sends), ``bodies``
(:func:`parse_webhook_body`, which picks the parser by the body's ``object``).
Pure: no I/O, no database.
"""

from airy_actors.events.bodies import parse_webhook_body
from airy_actors.events.common import decode_emoji
from airy_actors.events.types import (
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    MessageRead,
    OptinReceived,
    ReactionChanged,
    ReceiptWatermark,
    ReferralReceived,
    ThreadControlChanged,
    UnusableEvent,
    event_key,
)

__all__ = [
    "IgnoredEvent",
    "InboundEvent",
    "InboundMessage",
    "MessageDeleted",
    "MessageEdited",
    "MessageRead",
    "OptinReceived",
    "ReactionChanged",
    "ReceiptWatermark",
    "ReferralReceived",
    "ThreadControlChanged",
    "UnusableEvent",
    "decode_emoji",
    "event_key",
    "parse_webhook_body",
]
