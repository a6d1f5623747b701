"""Integrator webhook models: subscriptions, the outbox, deliveries."""

from airy_actors.models.base import BaseModel

MODELS: list[type[BaseModel]] = []
