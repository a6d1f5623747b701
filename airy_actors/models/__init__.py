"""The product's models. A new model module is imported here and its models added to MODELS."""

from airy_actors.models import integrations
from airy_actors.models.base import BaseModel, JSONField, new_id, stable_id
from airy_actors.models.channels import Channel
from airy_actors.models.conversations import Contact, Conversation
from airy_actors.models.messages import DELIVERY_STATES, Message
from airy_actors.models.work import Job, WebhookEvent

MODELS: list[type[BaseModel]] = [Channel, Contact, Conversation, Message, WebhookEvent, Job, *integrations.MODELS]

__all__ = [
    "MODELS",
    "BaseModel",
    "Channel",
    "Contact",
    "Conversation",
    "DELIVERY_STATES",
    "JSONField",
    "Job",
    "Message",
    "WebhookEvent",
    "new_id",
    "stable_id",
]
