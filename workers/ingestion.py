"""Actors that turn received webhook requests into messages, and fetch new contacts' profiles."""

from __future__ import annotations

import logging

import dramatiq

from airy_actors import channels, event_failures, ingestion, profiles, webhook_requests
from airy_actors.config import get_settings
from airy_actors.graph import ErrorKind, GraphError, get_graph_client
from airy_actors.models import Channel, Contact
from workers import queues
from workers.broker import broker  # noqa: F401  (binds the actors below to the configured broker)
from workers.media import store_message_media
from workers.sweeper import register_sweep

logger = logging.getLogger(__name__)


# Retries here are for an unreachable database only: an event that cannot be applied is recorded on its own
# (airy_actors.event_failures) and retried by retry_failed_event, never by failing the whole request.
RETRIES = {"max_retries": 20, "min_backoff": 500, "max_backoff": 60_000}


@dramatiq.actor(queue_name=queues.INGESTION, time_limit=60_000, **RETRIES)
def ingest_webhook_request(webhook_request_id: int, together: bool = True) -> None:
    """Applies one stored webhook request; enqueues profile fetches and deferred retries after the commit.

    ``together=False`` applies each event in a savepoint of its own, contact messages included: the way a
    request whose batch failed is applied.
    """
    result = ingestion.ingest_webhook_request(
        webhook_request_id, app_id=get_settings().facebook_app_id, together=together
    )
    _after_commit([webhook_request_id], [result])


@dramatiq.actor(queue_name=queues.INGESTION, time_limit=60_000, **RETRIES)
def ingest_webhook_requests(webhook_request_ids: list[int]) -> None:
    """Applies stored webhook requests that the web stored together, in one transaction.

    One message and one transaction for several requests keep both the web's enqueueing and the worker's
    writes cheap under load. When that transaction fails, each request is applied on its own; one that fails
    again is handed to :func:`ingest_webhook_request` alone, with retries of its own, and holds up none of the
    others.
    """
    try:
        results = ingestion.ingest_webhook_requests(webhook_request_ids, app_id=get_settings().facebook_app_id)
    except Exception as error:
        logger.warning(
            "a batch of webhook requests failed; applying them one at a time",
            extra={"webhook_request_ids": webhook_request_ids, "error": type(error).__name__},
        )
        _one_at_a_time(webhook_request_ids)
        return
    _after_commit(webhook_request_ids, results)


def _one_at_a_time(webhook_request_ids: list[int]) -> None:
    for webhook_request_id in webhook_request_ids:
        try:
            ingest_webhook_request(webhook_request_id, together=False)
        except Exception as error:
            logger.warning(
                "a webhook request failed; retrying it on its own",
                extra={"webhook_request_id": webhook_request_id, "error": type(error).__name__},
            )
            ingest_webhook_request.send(webhook_request_id, False)


def _after_commit(webhook_request_ids: list[int], results: list[ingestion.IngestionResult]) -> None:
    """Enqueues the new contacts' profile fetches and the deferred events' retries; logs what was done."""
    applied = [result for result in results if not result.already_processed]
    if not applied:
        return
    for result in applied:
        for contact_id in result.contacts_created:
            fetch_contact_profile.send(contact_id)
        if result.deferred_event_id is not None:
            ingest_webhook_request.send_with_options(args=(result.deferred_event_id,), delay=result.deferred_delay_ms)
        for message_id in result.media_message_ids:
            store_message_media.send(message_id)
        for failed_event_id in result.failed_event_ids:
            retry_failed_event.send_with_options(args=(failed_event_id,), delay=event_failures.retry_delay_ms(1))
    logger.info(
        "ingested webhook requests",
        extra={
            "webhook_request_ids": webhook_request_ids,
            "messages_created": sum(result.messages_created for result in applied),
            "events_applied": sum(result.events_applied for result in applied),
            "deferred": sum(result.deferred_event_id is not None for result in applied),
            "failed": sum(len(result.failed_event_ids) for result in applied),
        },
    )


@dramatiq.actor(queue_name=queues.PROFILES, max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=30_000)
def fetch_contact_profile(contact_id: str) -> None:
    """Fetches a contact's name and picture from the Graph API, once (Messenger's or Instagram's profile)."""
    contact = Contact.get_or_none(Contact.id == contact_id)
    if contact is None or contact.profile_state != "pending":
        return
    channel = Channel.get_by_id(contact.channel_id)
    if not channel.page_token:
        profiles.apply_profile(contact_id, None)
        return
    try:
        profile = profiles.fetch_profile(get_graph_client(), channel, contact.source_contact_id)
    except GraphError as error:
        if error.retryable:
            raise
        logger.info("contact profile unavailable", extra={"contact_id": contact_id, "kind": error.kind.value})
        if error.kind is ErrorKind.TOKEN_INVALID:
            channels.flag_token_invalid(channel.id)
        profiles.apply_profile(contact_id, None)
        return
    profiles.apply_profile(contact_id, profile, source=channel.source)


@register_sweep
def sweep_webhook_requests() -> int:
    ids = webhook_requests.stale_webhook_requests()
    for webhook_request_id in ids:
        ingest_webhook_request.send(webhook_request_id)
    return len(ids)


@register_sweep
def sweep_contact_profiles() -> int:
    ids = profiles.stale_profiles()
    for contact_id in ids:
        fetch_contact_profile.send(contact_id)
    return len(ids)


@dramatiq.actor(queue_name=queues.INGESTION, time_limit=60_000, **RETRIES)
def retry_failed_event(failed_event_id: str) -> None:
    """Applies an event that could not be applied before; runs again after a backoff while attempts remain."""
    result = ingestion.retry_failed_event(failed_event_id, app_id=get_settings().facebook_app_id)
    if result is not None:
        _after_commit([], [result])
        return
    again_in_ms = event_failures.due_in_ms(failed_event_id)
    if again_in_ms is not None:
        retry_failed_event.send_with_options(args=(failed_event_id,), delay=again_in_ms)


@register_sweep
def sweep_failed_events() -> int:
    ids = event_failures.stale()
    for failed_event_id in ids:
        retry_failed_event.send(failed_event_id)
    return len(ids)
