"""Answering contacts: ``messages.send`` and the Send API, with the messaging window, retries and states.

Three modules: ``acceptance`` (options, window, storing ``pending``), ``delivery`` (the Send API calls, retries,
sweeps) and ``outcomes`` (``delivered``, ``failed``, the echo's claim).

A send is accepted by :func:`accept_send` (window checked, message stored ``pending``, committed) and
delivered by :func:`deliver`, which the ``deliver_message`` actor calls; Dramatiq carries only the news,
the database is the record. Outcomes: ``delivered`` with Facebook's ``message_id`` (``metadata.source_id``
and ``source_message_id``), or ``failed`` with a reason in ``metadata.error``.

Retries
  Throttling and transient Graph errors are retried by re-enqueuing the message with exponential backoff and
  full jitter (at least Facebook's ``Retry-After``), up to :data:`MAX_SEND_ATTEMPTS` Send API calls, counted
  in the database so that a crash or a sweep never resets them; then ``failed`` with Facebook's reason.
  Waiting for a throttling slot is not an attempt. Permanent errors fail at once; an invalid token also
  marks the channel ``token_valid: false``.

Exactly once towards Facebook
  The Send API has no idempotency key, so the danger is the gap between Facebook accepting a message and
  our commit of its answer: a worker killed there leaves a message that Facebook has but we don't know it.
  Each attempt is therefore recorded (``send_state = "in_flight"``, committed, compare-and-set so that two
  runs of the actor can't both send) right before the HTTP call, after the throttling slot is taken. A run
  that finds an attempt in flight never sends again; once the attempt is older than the Graph timeout
  (:func:`attempt_stale_ms`) its worker is dead and the send is *in doubt*, and it is settled by Facebook's
  echo: every page send comes back as a ``message_echoes`` webhook, and we ask Facebook to carry
  ``message.metadata = "airy:<message id>"`` into it (:data:`MARKER_PREFIX`), so the ingestion of the echo
  finds the message by id and stores its mid (:func:`claim_echo`). No echo within :data:`ECHO_WAIT_MS` of the
  attempt → ``failed`` with a reason that says delivery is unknown (``send_state = "unconfirmed"``); an echo
  that arrives later still turns it ``delivered``.

  The guarantee: no message is ever handed to Facebook twice because of a crash, a redelivery, a sweep or a
  duplicate enqueue (at most once per message); it is exactly once whenever the worker survives the call or
  the echo arrives in time, and otherwise the message ends ``failed`` saying it may have been delivered.
  One exception is inherent to retrying timeouts, which the contract demands: when Facebook does not answer
  at all (a timeout, a dropped connection), it may still have accepted the message, so the retry waits at
  least :data:`ECHO_GRACE_MS` and sends only if no echo claimed the message meanwhile; an echo later than
  that can mean a duplicate. When the retries run out on such an error, the failure is ``unconfirmed`` too.

  The trade-off of the marker: ``message`` is forwarded verbatim except that ``metadata`` is added when the
  caller did not set one (contacts never see it; it only travels back in echoes, which other apps on the page
  may read). When the caller did set ``metadata`` we leave it alone, and an in-doubt send of that message
  cannot be matched to its echo: it ends ``failed`` (unconfirmed) once the attempt is stale.

Cost
  CPU bounds how many messages a second are sent (bench/send.py), so the path every message takes is short,
  and its fixed costs are shared by the messages that come together. Sends posted at the same time are
  accepted together (:func:`accept_sends`, from api/send_writer.py): one SELECT, one INSERT (one statement with
  the conversations' update, on PostgreSQL), one commit, one enqueue. They are delivered together
  (:func:`deliver_batch`, the ``deliver_messages`` actor): one SELECT, one throttling request a page, one claim
  of the attempts (the same compare-and-set, row by row), the Send API calls in parallel, one record of the
  delivered ones; each statement committed on its own. Whatever is rare or went wrong takes the path of one
  message (:func:`deliver`). A run hands its database connection back to the pool while it waits for a
  throttling slot or for Facebook, so a worker can run more threads than it holds connections.
"""

from airy_actors.sending.acceptance import (
    HUMAN_AGENT,
    MAX_BATCH,
    SendRequest,
    accept_send,
    accept_sends,
    check_send_options,
    check_window,
)
from airy_actors.sending.delivery import SEND_THREADS, deliver, deliver_batch, send_body, stale_sends
from airy_actors.sending.outcomes import (
    claim_echo,
    claim_unconfirmed_echo,
    record_delivered,
    record_failed,
    send_in_flight,
)

__all__ = [
    "HUMAN_AGENT",
    "MAX_BATCH",
    "SEND_THREADS",
    "SendRequest",
    "accept_send",
    "accept_sends",
    "check_send_options",
    "check_window",
    "claim_echo",
    "claim_unconfirmed_echo",
    "deliver",
    "deliver_batch",
    "record_delivered",
    "record_failed",
    "send_body",
    "send_in_flight",
    "stale_sends",
]
