"""Actors of the handover endpoints: passing a contact's thread to another app, and taking it back."""

from __future__ import annotations

import dramatiq

from airy_actors import handover
from airy_actors.config import get_settings
from airy_actors.graph import get_graph_client
from workers import queues
from workers.broker import broker  # noqa: F401  (binds the actors below to the configured broker)
from workers.jobs import JOB_RETRIES, run_job


@dramatiq.actor(queue_name=queues.CHANNELS, time_limit=60_000, **JOB_RETRIES)
def pass_thread_control(job_id: str) -> None:
    """Runs a ``conversations.passThreadControl`` job."""
    run_job(job_id, lambda arguments: handover.pass_thread(get_graph_client(), **arguments))


@dramatiq.actor(queue_name=queues.CHANNELS, time_limit=60_000, **JOB_RETRIES)
def take_thread_control(job_id: str) -> None:
    """Runs a ``conversations.takeThreadControl`` job."""
    app_id = get_settings().facebook_app_id
    run_job(job_id, lambda arguments: handover.take_thread(get_graph_client(), app_id=app_id, **arguments))
