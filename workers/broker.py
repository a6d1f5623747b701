"""The Dramatiq broker, built from the settings before any actor is declared.

Dramatiq binds actors to the global broker when their module is imported, so every actor module imports
this one first. The broker is Redis: ``REDIS_URL``, or the embedded server, whose URL the process that
started it puts into ``REDIS_URL`` for its children.
"""

from __future__ import annotations

import logging

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from airy_actors.config import get_settings
from airy_actors.errors import ConfigError
from workers.database_connections import DatabaseConnections
from workers.heartbeat import Heartbeat
from workers.metrics import ActorMetrics
from workers.queue_metrics import ReadyTime
from workers.scheduler import PeriodicScheduler

logger = logging.getLogger(__name__)


def build_broker() -> RedisBroker:
    """Builds the process's broker and makes it Dramatiq's global one.

    Raises:
      ConfigError: when no Redis URL is known.
    """
    settings = get_settings()
    if settings.redis_url is None:
        raise ConfigError(
            "REDIS_URL is not set and no embedded redis was started; run `airy-actors serve`, or set REDIS_URL"
        )
    pool = redis.ConnectionPool.from_url(
        settings.redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )
    redis_broker = RedisBroker(
        client=redis.Redis(connection_pool=pool),
        namespace=settings.broker_namespace,
        # A worker that dies (SIGKILL) holds its messages until its heartbeat is this old; then another
        # worker takes them back.
        heartbeat_timeout=15_000,
    )
    redis_broker.add_middleware(CurrentMessage())
    redis_broker.add_middleware(DatabaseConnections())
    redis_broker.add_middleware(PeriodicScheduler(redis_broker.client, settings.broker_namespace))
    redis_broker.add_middleware(Heartbeat(redis_broker.client, settings.broker_namespace))
    if settings.metrics:
        redis_broker.add_middleware(ActorMetrics())
        redis_broker.add_middleware(ReadyTime())
    dramatiq.set_broker(redis_broker)
    return redis_broker


broker = build_broker()
