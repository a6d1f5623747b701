"""The former home of the webhook parser, kept so that ``from airy_actors.facebook_events import ...`` still works.

The parser is now :mod:`airy_actors.events`, one parser per platform (Messenger, Instagram) sharing what the
platforms send alike. New code imports from there; this module only re-exports its public face.
"""

from airy_actors.events import (
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
    decode_emoji,
    event_key,
    parse_webhook_body,
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
