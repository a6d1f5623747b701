"""The schema: every model of the product, and creating or migrating their tables in place."""

from __future__ import annotations

import logging

import peewee
from playhouse.migrate import SchemaMigrator, migrate

from airy_actors.db import database
from airy_actors.models import integrations
from airy_actors.models.base import BaseModel
from airy_actors.models.channels import Channel
from airy_actors.models.conversations import Contact, Conversation
from airy_actors.models.media import Media, PageAttachment
from airy_actors.models.messages import Message
from airy_actors.models.work import FailedEvent, Job, WebhookRequest

logger = logging.getLogger(__name__)

MODELS: list[type[BaseModel]] = [
    Channel,
    Contact,
    Conversation,
    Message,
    WebhookRequest,
    FailedEvent,
    Job,
    Media,
    PageAttachment,
    *integrations.MODELS,
]


def create_schema() -> None:
    """Creates missing tables, adds columns that newer code declares to existing ones, then missing indexes.

    Columns are only ever added, with the model's default, so an older database is migrated in place. Indexes
    come after the columns they cover: PostgreSQL refuses an index on a column not yet added, and SQLite would
    take its double-quoted name for a string and build an index that the column's addition then corrupts.
    The caller holds the connection.
    """
    for model in peewee.sort_models(MODELS):
        model._schema.create_table(safe=True)
    _add_missing_columns()
    for model in MODELS:
        model._schema.create_indexes(safe=True)


def _add_missing_columns() -> None:
    migrator = SchemaMigrator.from_database(database.obj)
    for model in MODELS:
        table = model._meta.table_name
        existing = {column.name for column in database.get_columns(table)}
        missing = [field for field in model._meta.sorted_fields if field.column_name not in existing]
        for field in missing:
            logger.info("adding column", extra={"table": table, "column": field.column_name})
            # A column added to rows that exist needs a default or must accept NULL.
            field.null = True if field.default is None else field.null
            migrate(migrator.add_column(table, field.column_name, field))
