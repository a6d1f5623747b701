"""Every actor of the product. Importing this package declares them all on the broker."""

from airy_actors.actors import channels, ingestion, sending, sweeper, webhooks  # noqa: F401
