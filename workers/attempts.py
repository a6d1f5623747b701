"""Where a message stands in its retries: the one answer to "will this message be tried again?"."""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage, Retries

from workers.broker import broker


def is_last_attempt() -> bool:
    """Whether the message being processed will not be retried if it fails (True outside a worker).

    The limit is resolved as Dramatiq's Retries middleware resolves it: the message's option, else the
    actor's, else the middleware's default.
    """
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    actor = broker.get_actor(message.actor_name)
    default = next((m.max_retries for m in broker.middleware if isinstance(m, Retries)), 0)
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", default))
    return message.options.get("retries", 0) >= max_retries
