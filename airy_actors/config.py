"""Settings, read once from the environment at start-up.

Every process reads the same variables (SPEC section 1). A malformed value is a :class:`ConfigError` naming
the variable, raised before anything serves a request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from airy_actors.errors import ConfigError

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v25.0"
DEFAULT_DATA_DIR = ".airy"
MIB = 1024 * 1024
FACEBOOK_VARIABLES = ("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_WEBHOOK_SECRET")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The configuration of one airy-actors process."""

    facebook_app_id: str | None = None
    facebook_app_secret: str | None = None
    facebook_webhook_secret: str | None = None
    facebook_graph_url: str = DEFAULT_GRAPH_URL
    database_url: str = f"sqlite:///{DEFAULT_DATA_DIR}/airy.db"
    redis_url: str | None = None
    system_token: str | None = None
    sync_timeout_ms: int = 10_000
    graph_timeout_ms: int = 10_000
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    broker_namespace: str = "airy"
    public_url: str | None = None  # unset: http://<host>:<port> of the web, known once it serves
    media_store: str = f"file:{DEFAULT_DATA_DIR}/media"
    media_max_bytes: int = 25 * MIB
    media_secret: str | None = None
    media_fetch_timeout_ms: int = 120_000
    webhooks_allow_private: bool = False
    delivery_timeout_ms: int = 10_000
    spool_max_bytes: int = 1024 * MIB
    metrics: bool = True  # AIRY_METRICS=off: no /metrics, no metric files, no metrics middleware
    stream_heartbeat_ms: int = 15_000  # an idle event stream gets a comment line this often
    stream_buffer_events: int = 10_000  # events held for one stream client; past it the client is disconnected

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Reads the settings from ``environ`` (default: ``os.environ``).

        Raises:
          ConfigError: naming the variable whose value is malformed.
        """
        env = os.environ if environ is None else environ
        data_dir = Path(_text(env, "AIRY_DATA_DIR") or DEFAULT_DATA_DIR)
        settings = cls(
            facebook_app_id=_text(env, "FACEBOOK_APP_ID"),
            facebook_app_secret=_text(env, "FACEBOOK_APP_SECRET"),
            facebook_webhook_secret=_text(env, "FACEBOOK_WEBHOOK_SECRET"),
            facebook_graph_url=_url(env, "FACEBOOK_GRAPH_URL", DEFAULT_GRAPH_URL, ("http", "https")).rstrip("/"),
            database_url=_url(
                env, "DATABASE_URL", f"sqlite:///{data_dir}/airy.db", ("sqlite", "postgresql", "postgres")
            ),
            redis_url=_optional_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            system_token=_text(env, "AIRY_SYSTEM_TOKEN"),
            sync_timeout_ms=_milliseconds(env, "AIRY_SYNC_TIMEOUT_MS", 10_000),
            graph_timeout_ms=_milliseconds(env, "AIRY_GRAPH_TIMEOUT_MS", 10_000),
            data_dir=data_dir,
            broker_namespace=_text(env, "AIRY_BROKER_NAMESPACE") or "airy",
            public_url=_optional_url(env, "AIRY_PUBLIC_URL", ("http", "https")),
            media_store=_text(env, "AIRY_MEDIA_STORE") or f"file:{data_dir}/media",
            media_max_bytes=_bytes(env, "AIRY_MEDIA_MAX_BYTES", 25 * MIB),
            media_secret=_text(env, "AIRY_MEDIA_SECRET"),
            media_fetch_timeout_ms=_milliseconds(env, "AIRY_MEDIA_FETCH_TIMEOUT_MS", 120_000),
            webhooks_allow_private=_flag(env, "AIRY_WEBHOOKS_ALLOW_PRIVATE"),
            delivery_timeout_ms=_milliseconds(env, "AIRY_DELIVERY_TIMEOUT_MS", 10_000),
            spool_max_bytes=_bytes(env, "AIRY_SPOOL_MAX_BYTES", 1024 * MIB),
            metrics=_flag(env, "AIRY_METRICS", default="on"),
            stream_heartbeat_ms=_milliseconds(env, "AIRY_STREAM_HEARTBEAT_MS", 15_000),
            stream_buffer_events=_count(env, "AIRY_STREAM_BUFFER_EVENTS", 10_000),
        )
        return settings

    @property
    def missing_facebook_variables(self) -> list[str]:
        """Names of the Facebook variables that are not set (empty when the source is configured)."""
        values = (self.facebook_app_id, self.facebook_app_secret, self.facebook_webhook_secret)
        return [name for name, value in zip(FACEBOOK_VARIABLES, values, strict=True) if not value]

    def log_warnings(self) -> None:
        """Logs what an operator should know about this configuration, without any secret."""
        if not self.system_token:
            logger.warning("AIRY_SYSTEM_TOKEN is not set: the API is open to anyone who can reach it")
        if self.missing_facebook_variables:
            logger.warning(
                "the Facebook source is not configured; its endpoints answer 503",
                extra={"missing": ",".join(self.missing_facebook_variables)},
            )


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = _text(env, name) or default
    scheme = urlparse(value).scheme
    if scheme not in schemes:
        raise ConfigError(f"{name} must be a URL starting with one of {', '.join(s + '://' for s in schemes)}")
    return value


def _optional_url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    return _url(env, name, "", schemes) if _text(env, name) else None


def _milliseconds(env: Mapping[str, str], name: str, default: int) -> int:
    value = _text(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of milliseconds, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, got {number}")
    return number


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    return _count(env, name, default, unit=" of bytes")


def _count(env: Mapping[str, str], name: str, default: int, unit: str = "") -> int:
    value = _text(env, name)
    if value is None:
        return default
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"{name} must be a positive whole number{unit}, got {value!r}")
    return int(value)


def _flag(env: Mapping[str, str], name: str, default: str = "false") -> bool:
    value = (_text(env, name) or default).lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value in ("true", "1", "yes", "on")


_settings: Settings | None = None


def get_settings() -> Settings:
    """Returns this process's settings, reading the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings.from_environ()
    return _settings


def use_settings(settings: Settings) -> None:
    """Makes ``settings`` this process's settings (start-up code and tests)."""
    global _settings
    _settings = settings
