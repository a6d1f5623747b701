"""The package's exception tree.

Every error a client may see derives from :class:`AiryError` and carries the HTTP status it maps to; the
mapping itself happens once, in the app's exception handlers::

    AiryError
    ├── ConfigError          the environment is missing or malforms a setting (raised at start-up)
    ├── BadRequest       400 the input is wrong; the message names the field
    │   └── GraphRejected    Facebook refused the request (its reason is the message)
    ├── Unauthorized     401
    ├── NotFound         404
    ├── PayloadTooLarge  413
    └── Unavailable      503 a dependency (database, broker, Facebook) is down, or the source is unconfigured
"""

from __future__ import annotations


class AiryError(Exception):
    """Base class of every error raised on purpose by airy-actors."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AiryError):
    """A setting is missing or malformed. Raised at start-up, naming the variable."""


class BadRequest(AiryError):
    """The request is wrong; the message names what is wrong."""

    status_code = 400


class Unauthorized(AiryError):
    status_code = 401


class NotFound(AiryError):
    status_code = 404


class PayloadTooLarge(AiryError):
    status_code = 413


class Unavailable(AiryError):
    """A dependency is down, or the Facebook source is not configured."""

    status_code = 503
