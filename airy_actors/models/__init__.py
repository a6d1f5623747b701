"""The product's models. A new model module is imported here, and its models added to ``schema.MODELS``."""

from airy_actors.models.base import BaseModel, JSONField, new_id, stable_id
from airy_actors.models.channels import FACEBOOK, INSTAGRAM, SOURCES, Channel
from airy_actors.models.conversations import Contact, Conversation
from airy_actors.models.media import Media, PageAttachment
from airy_actors.models.messages import DELIVERY_STATES, Message
from airy_actors.models.schema import MODELS, create_schema
from airy_actors.models.work import FailedEvent, Job, WebhookRequest

__all__ = [
    "MODELS",
    "BaseModel",
    "Channel",
    "Contact",
    "Conversation",
    "DELIVERY_STATES",
    "FACEBOOK",
    "INSTAGRAM",
    "FailedEvent",
    "JSONField",
    "Job",
    "Media",
    "PageAttachment",
    "SOURCES",
    "Message",
    "WebhookRequest",
    "create_schema",
    "new_id",
    "stable_id",
]
