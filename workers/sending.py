"""The actors that deliver outbound messages through the Send API, and their sweep.

``deliver_messages`` delivers the messages that messages.send accepted together, ``deliver_message`` one
message (a retry, a send in doubt, a sweep). They are shells over :func:`airy_actors.sending.deliver_batch`
and :func:`airy_actors.sending.deliver`, which keep the retry count and the exactly-once bookkeeping in the
database. Graph errors never reach Dramatiq's retries: a retry is a new message enqueued with a delay.
Dramatiq retries only what went wrong around the send (the database, Redis); on the last of those the
messages are failed rather than left pending.
"""

from __future__ import annotations

import logging

import dramatiq

from airy_actors import sending
from airy_actors.graph import get_graph_client
from airy_actors.throttling import PageThrottle
from workers import queues
from workers.attempts import is_last_attempt
from workers.broker import broker  # noqa: F401  (binds the actors below to the configured broker)
from workers.sweeper import register_sweep

logger = logging.getLogger(__name__)

MAX_RETRIES = 10

_throttle: PageThrottle | None = None


def get_throttle() -> PageThrottle:
    """This process's per-page throttle, on the broker's Redis."""
    global _throttle
    if _throttle is None:
        _throttle = PageThrottle(broker.client, broker.namespace)
    return _throttle


@dramatiq.actor(
    queue_name=queues.SENDING, max_retries=MAX_RETRIES, min_backoff=1_000, max_backoff=60_000, time_limit=120_000
)
def deliver_message(message_id: str) -> None:
    """Sends one outbound message to Facebook, or settles it; runs again later when it must."""
    try:
        # The run's connection is its own (the database middleware hands it back after the run): it may go back
        # to the pool while the run waits, for a throttling slot or for Facebook.
        again_in_ms = sending.deliver(
            message_id, graph=get_graph_client(), throttle=get_throttle(), release_connection=True
        )
    except Exception as exc:
        if is_last_attempt():
            _give_up([message_id], exc)
        raise
    if again_in_ms is not None:
        deliver_message.send_with_options(args=(message_id,), delay=again_in_ms)


@dramatiq.actor(
    queue_name=queues.SENDING, max_retries=MAX_RETRIES, min_backoff=1_000, max_backoff=60_000, time_limit=120_000
)
def deliver_messages(message_ids: list[str]) -> None:
    """Sends outbound messages to Facebook together, or settles them; runs them again later when it must."""
    try:
        again = sending.deliver_batch(
            message_ids, graph=get_graph_client(), throttle=get_throttle(), release_connection=True
        )
    except Exception as exc:
        if is_last_attempt():
            _give_up(message_ids, exc)
        raise
    for ids, again_in_ms in again:
        if len(ids) == 1:
            deliver_message.send_with_options(args=(ids[0],), delay=again_in_ms)
        else:
            deliver_messages.send_with_options(args=(ids,), delay=again_in_ms)


def _give_up(message_ids: list[str], exc: Exception) -> None:
    logger.exception("giving up on sends", extra={"message_ids": message_ids})
    reason = f"the message could not be sent: internal error ({type(exc).__name__})"
    for message_id in message_ids:
        try:
            sending.record_failed(message_id, reason)
        except Exception:  # the database itself is down: the sweeper will bring the message back
            logger.warning("could not mark a send failed", extra={"message_id": message_id}, exc_info=True)


@register_sweep
def sweep_sends() -> int:
    ids = sending.stale_sends()
    for message_id in ids:
        deliver_message.send(message_id)
    return len(ids)
