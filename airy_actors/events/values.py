"""Values as Meta writes them in webhook bodies, read strictly enough to store them and loosely enough to take
what Meta really sends: timestamps as integers or strings of digits, ids as strings or numbers.

A value that is missing or of the wrong shape raises :class:`Malformed` (the item is ignored, with one log line);
a value no column can hold raises :class:`Unusable` (the event is recorded as failed, never retried).
"""

from __future__ import annotations

from typing import Any

from airy_actors.models import Channel, Contact, Message

#: The longest values the columns behind them hold.
PAGE_ID_MAX = Channel.source_channel_id.max_length
CONTACT_ID_MAX = Contact.source_contact_id.max_length
MESSAGE_ID_MAX = Message.source_message_id.max_length
#: App ids, ad ids and user_refs have no column of their own (they go into JSON metadata); 255 keeps them
#: within any column someone may give them, and a longer one is not an id Meta sends.
OTHER_ID_MAX = 255

#: 9999-12-31T23:59:59.999Z, the last instant an ISO-8601 timestamp (and Python's datetime) can show.
MAX_MS = 253_402_300_799_999


class Malformed(Exception):
    """Raised by a parser to turn a messaging item into an IgnoredEvent."""


class Unusable(Exception):
    """Raised by a parser to turn a messaging item into an UnusableEvent."""


def object_at(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item[key]
    if not isinstance(value, dict):
        raise Malformed(f"{key} is not an object")
    return value


def required_str(obj: dict[str, Any], key: str, reason: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(reason)
    return value


def optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def optional_text(value: object) -> str | None:
    # Documented as strings; a number (an ad's ref, a hand-written test payload) is kept as its digits.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def short(value: object) -> str:
    # For reasons, which end up in log lines: a value from the body, bounded.
    text = value if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:40] + "…"


def party(item: dict[str, Any], key: str) -> str:
    # Chat Plugin guests come with `user_ref` instead of `id`; they have no
    # PSID yet, so they can't be a contact.
    value = item.get(key)
    party_id = as_id(value.get("id")) if isinstance(value, dict) else None
    if party_id is None:
        raise Malformed(f"missing {key}")
    return party_id


def as_id(value: object) -> str | None:
    # Meta's ids are strings, but app ids arrive as numbers and hand-written
    # test payloads often use numbers too.
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def check_length(value: str, limit: int, name: str) -> None:
    if len(value) > limit:
        raise Unusable(f"{name} longer than {limit} characters")


def millis(value: object, name: str) -> int:
    """``value`` as epoch milliseconds: an integer, or a string of digits (Meta sends both)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise Unusable(f"{name} is not an integer")
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(MAX_MS)):
            # Also keeps int() away from strings of thousands of digits, which it refuses.
            raise Unusable(f"{name} is past year 9999")
        value = int(digits)
    # bool is an int subclass, but `true` is never a timestamp; floats (1e30, NaN) are not either.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unusable(f"{name} is not an integer ({type(value).__name__})")
    if value < 0:
        raise Unusable(f"{name} is negative")
    if value > MAX_MS:
        raise Unusable(f"{name} is past year 9999")
    return value


def optional_ms(value: object) -> int | None:
    try:
        return None if value is None else millis(value, "time")
    except Unusable:
        return None
