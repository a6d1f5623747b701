"""Actors of the channel endpoints: connect (a page, an Instagram account), explore, disconnect, health checks.

Broker messages carry ids only: tokens stay in the database (and, for an explore's page tokens, briefly
in Redis), because Dramatiq logs a failed message whole.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.errors import ActorNotFound

from airy_actors import channels, explore, jobs
from airy_actors.config import get_settings
from airy_actors.graph import GraphError, get_graph_client
from workers import queues
from workers.attempts import is_last_attempt
from workers.broker import broker
from workers.jobs import JOB_RETRIES, run_job
from workers.scheduler import periodic
from workers.sweeper import register_sweep

logger = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL_MS = 10 * 60_000
EXPLORE_MEMBER_PRIORITY = 10  # behind connects and disconnects that arrive during a large explore



@dramatiq.actor(queue_name=queues.CHANNELS, time_limit=60_000, **JOB_RETRIES)
def connect_page(job_id: str) -> None:
    """Runs a ``facebook.connect`` job."""
    run_job(job_id, lambda arguments: channels.connect_page(get_graph_client(), **arguments))


@dramatiq.actor(queue_name=queues.CHANNELS, time_limit=60_000, **JOB_RETRIES)
def connect_instagram_account(job_id: str) -> None:
    """Runs an ``instagram.connect`` job."""
    run_job(job_id, lambda arguments: channels.connect_instagram(get_graph_client(), **arguments))


@dramatiq.actor(queue_name=queues.CHANNELS, time_limit=10 * 60_000, **JOB_RETRIES)
def explore_pages(job_id: str) -> None:
    """Runs a ``facebook.explore`` job: pages through /me/accounts and fans the pages out to members."""
    state = explore.ExploreState(broker.client, broker.namespace, job_id)

    def fan_out(tasks: list[explore.PageTask]) -> None:
        dramatiq.group(
            explore_page.message(
                job_id, task.page_id, task.name, task.position, task.check_subscription, task.instagram_account_id
            )
            for task in tasks
        ).run()

    def work(arguments: dict[str, Any]) -> None:
        total = explore.explore_pages(get_graph_client(), state, job_id, arguments["auth_token"], fan_out)
        logger.info("explore fanned out", extra={"job_id": job_id, "pages": total})
        if state.expect(total):
            _join(state, job_id)

    run_job(job_id, work)


@dramatiq.actor(queue_name=queues.EXPLORE, priority=EXPLORE_MEMBER_PRIORITY, time_limit=60_000, **JOB_RETRIES)
def explore_page(
    job_id: str,
    page_id: str,
    name: str,
    position: int,
    check_subscription: bool,
    instagram_account_id: str | None = None,
) -> None:
    """One member of an explore: looks at one page, and finishes the job if it was the last one."""
    state = explore.ExploreState(broker.client, broker.namespace, job_id)
    task = explore.PageTask(page_id, name, position, check_subscription, instagram_account_id)
    try:
        complete = explore.explore_page(
            get_graph_client(), state, task, app_id=get_settings().facebook_app_id, last_attempt=is_last_attempt()
        )
    except GraphError as error:
        raise dramatiq.Retry(error.message, delay=error.retry_after_ms) from None
    if complete:
        _join(state, job_id)


def _join(state: explore.ExploreState, job_id: str) -> None:
    joined = explore.join(state, job_id)
    for channel_id in joined.unsubscribed_channel_ids:
        check_channel_health.send(channel_id)


@dramatiq.actor(queue_name=queues.CHANNELS, max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
def disconnect_page(channel_id: str) -> None:
    """Unsubscribes our app from a disconnected channel's page at Facebook, then deletes the channel's token.

    Serves ``facebook.disconnect`` and ``instagram.disconnect`` alike: an Instagram channel is served by its page.
    """
    try:
        channels.finish_disconnect(get_graph_client(), channel_id, last_attempt=is_last_attempt())
    except GraphError as error:
        raise dramatiq.Retry(error.message, delay=error.retry_after_ms) from None


@periodic(interval_ms=HEALTH_CHECK_INTERVAL_MS)
@dramatiq.actor(queue_name=queues.HEALTH, max_retries=0, time_limit=60_000)
def check_channels_health() -> None:
    """Enqueues one health check per connected channel, so that one slow page does not hold up the others."""
    channel_ids = channels.connected_channel_ids()
    for channel_id in channel_ids:
        check_channel_health.send(channel_id)
    logger.info("channel health checks enqueued", extra={"channels": len(channel_ids)})


@dramatiq.actor(queue_name=queues.HEALTH, max_retries=2, min_backoff=5_000, max_backoff=60_000, time_limit=60_000)
def check_channel_health(channel_id: str) -> None:
    """Checks one channel's token and webhook subscription, subscribing again where Facebook dropped us."""
    try:
        channels.check_health(get_graph_client(), channel_id, app_id=get_settings().facebook_app_id)
    except GraphError as error:
        if not is_last_attempt():
            raise dramatiq.Retry(error.message, delay=error.retry_after_ms) from None
        logger.warning("channel health unknown: Facebook unavailable", extra={"channel_id": channel_id})


@register_sweep
def sweep_jobs() -> int:
    """Fails jobs pending for too long, enqueues again those whose message was lost, deletes old ones."""
    jobs.delete_old_jobs()
    jobs.abandon_expired_jobs()
    stale = jobs.stale_jobs()
    for job_id, actor_name in stale:
        try:
            broker.get_actor(actor_name).send(job_id)
        except ActorNotFound:
            jobs.fail(job_id, f"the job's actor {actor_name} does not exist", 500)
    return len(stale)


@register_sweep
def sweep_disconnects() -> int:
    """Enqueues again the disconnects whose message was lost before the token was deleted."""
    channel_ids = channels.stale_disconnects()
    for channel_id in channel_ids:
        disconnect_page.send(channel_id)
    return len(channel_ids)
