"""Channels: connecting, disconnecting and updating Facebook pages and Instagram accounts, and their health.

Plain synchronous code over the database and the Graph client; the actors and endpoints only call it.
Every change to a channel goes through :func:`save_channel`, the one place where a ``channel.updated``
event can be emitted. Page tokens are stored on the channel and go nowhere else: not into results, errors
or log lines.

An Instagram channel is an Instagram professional account linked to a page: it is served through that page
(its token, its webhook subscription, its Send API), so one page may back two channels, a Messenger one and an
Instagram one. A disconnect leaves the page's subscription alone while the other channel still needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import peewee

from airy_actors import outbox
from airy_actors.db import is_postgres, write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.graph import ErrorKind, GraphClient, GraphError
from airy_actors.models import FACEBOOK, INSTAGRAM, SOURCES, Channel
from airy_actors.representations import channel_json
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

DISCONNECT_STALE_MS = 5 * 60_000  # a disconnected channel still holding its token this long lost its actor


def save_channel(channel: Channel, *, new: bool = False) -> Channel:
    """Writes a channel. Every change to a channel goes through here.

    Parameters:
      channel: the channel, changed in memory.
      new: True to insert it.
    """
    channel.updated_at = now_ms()
    with write_transaction():
        channel.save(force_insert=new)
        outbox.channel_updated(channel)
    return channel


def _locked(query: peewee.ModelSelect) -> Channel | None:
    """The first row of ``query``, locked until the transaction ends (SQLite locks the whole database)."""
    if is_postgres():
        query = query.for_update()
    return query.first()


def _lock_channel(channel_id: str) -> Channel | None:
    return _locked(Channel.select().where(Channel.id == channel_id))


# --- the platform endpoints ------------------------------------------------------------------------------


def get_channel(channel_id: str) -> Channel:
    """Raises NotFound when there is no such channel."""
    channel = Channel.get_or_none(Channel.id == channel_id)
    if channel is None:
        raise NotFound(f"channel_id {channel_id} is not a known channel")
    return channel


def channel_info(channel_id: str) -> dict[str, Any]:
    return channel_json(get_channel(channel_id))


def list_channels(source: str | None = None) -> dict[str, Any]:
    """The connected channels, oldest first, optionally of one source."""
    query = Channel.select().where(Channel.connected == True)  # noqa: E712
    if source is not None:
        query = query.where(Channel.source == source)
    return {"data": [channel_json(channel) for channel in query.order_by(Channel.created_at, Channel.id)]}


def update_channel(channel_id: str, *, name: str | None, image_url: str | None) -> dict[str, Any]:
    """Changes the name and picture shown for a channel; fields given as None stay as they are."""
    with write_transaction():
        channel = _lock_channel(channel_id)
        if channel is None:
            raise NotFound(f"channel_id {channel_id} is not a known channel")
        if name is not None:
            channel.name = name
        if image_url is not None:
            channel.image_url = image_url
        if name is not None or image_url is not None:
            save_channel(channel)
    return channel_json(channel)


def connected_channels(page_ids: list[str]) -> dict[str, str]:
    """page id -> channel id, for the connected Facebook channels among ``page_ids``."""
    found: dict[str, str] = {}
    for start in range(0, len(page_ids), 500):  # SQLite limits the parameters of one statement
        query = Channel.select(
            Channel.id, Channel.source_channel_id
        ).where(
            (Channel.source == FACEBOOK)
            & (Channel.connected == True)  # noqa: E712
            & Channel.source_channel_id.in_(page_ids[start : start + 500])
        )
        found.update((row.source_channel_id, row.id) for row in query)
    return found


# --- connect ---------------------------------------------------------------------------------------------


def picture_url(page: dict[str, Any]) -> str | None:
    """The URL of a Graph page node's ``picture``, when it has one."""
    picture = page.get("picture")
    data = picture.get("data") if isinstance(picture, dict) else None
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url else None


def connect_page(
    graph: GraphClient, *, page_id: str, page_token: str, name: str | None = None, image_url: str | None = None
) -> dict[str, Any]:
    """Connects a Facebook page: checks the token, subscribes our app to its webhook, stores the channel.

    Safe to run twice. Reconnecting a page keeps its channel id and replaces the token.

    Returns:
      The channel, as the API shows it.

    Raises:
      BadRequest: when the token belongs to another page.
      GraphError: when Facebook refuses the token or cannot be reached.
    """
    owner = graph.me(page_token)
    if str(owner.get("id")) != page_id:
        raise BadRequest(f"page_token does not belong to page {page_id}")
    if name is None or image_url is None:
        page = graph.page(page_id, page_token)
        name = name or page.get("name") or owner.get("name")
        image_url = image_url or picture_url(page)
    graph.subscribe_app(page_id, page_token)
    channel = _store_connected(FACEBOOK, page_id, page_id, page_token, name, image_url)
    logger.info("page connected", extra={"channel_id": channel.id, "page_id": page_id})
    return channel_json(channel)


def connect_instagram(
    graph: GraphClient,
    *,
    page_id: str,
    page_token: str,
    account_id: str,
    name: str | None = None,
    image_url: str | None = None,
) -> dict[str, Any]:
    """Connects an Instagram account through its page: checks both, subscribes our app to the page's webhook.

    Safe to run twice. Reconnecting an account keeps its channel id and replaces the token (and the page, when
    the account was linked to another page since).

    Returns:
      The channel, as the API shows it.

    Raises:
      BadRequest: when the token belongs to another page, or ``account_id`` is not the page's Instagram account.
      GraphError: when Facebook refuses the token or cannot be reached.
    """
    owner = graph.me(page_token)
    if str(owner.get("id")) != page_id:
        raise BadRequest(f"page_token does not belong to page {page_id}")
    linked = graph.linked_instagram_account(page_id, page_token)
    if linked != account_id:
        found = f"its account is {linked}" if linked else "it has none"
        raise BadRequest(f"account_id {account_id} is not the Instagram account linked to page {page_id}: {found}")
    if name is None or image_url is None:
        account = graph.instagram_account(account_id, page_token)
        name = name or _text(account.get("username"))
        image_url = image_url or _text(account.get("profile_picture_url"))
    graph.subscribe_app(page_id, page_token)
    channel = _store_connected(INSTAGRAM, account_id, page_id, page_token, name, image_url)
    logger.info("instagram account connected", extra={"channel_id": channel.id, "page_id": page_id})
    return channel_json(channel)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _store_connected(
    source: str, source_channel_id: str, page_id: str, page_token: str, name: str | None, image_url: str | None
) -> Channel:
    try:
        return _upsert_connected(source, source_channel_id, page_id, page_token, name, image_url)
    except peewee.IntegrityError:  # another connect of the same channel inserted it first: update that row
        return _upsert_connected(source, source_channel_id, page_id, page_token, name, image_url)


def _upsert_connected(
    source: str, source_channel_id: str, page_id: str, page_token: str, name: str | None, image_url: str | None
) -> Channel:
    with write_transaction():
        query = Channel.select().where((Channel.source == source) & (Channel.source_channel_id == source_channel_id))
        channel = _locked(query)
        new = channel is None
        if channel is None:
            channel = Channel(source=source, source_channel_id=source_channel_id)
        channel.page_id = page_id
        channel.name = name
        channel.image_url = image_url
        channel.page_token = page_token
        channel.connected = True
        channel.webhook_subscribed = True
        channel.token_valid = True
        return save_channel(channel, new=new)


# --- disconnect ------------------------------------------------------------------------------------------


def begin_disconnect(channel_id: str, *, source: str | None = None) -> bool:
    """Marks a channel disconnected at once: from now on its events produce nothing.

    The token stays until the disconnect actor has unsubscribed our app with it (:func:`finish_disconnect`).

    Parameters:
      source: when given, the channel must be of this source (``instagram.disconnect`` takes no page).

    Returns:
      Whether that actor has work to do.

    Raises:
      BadRequest: when there is no such channel (the seed answers 400, not 404), or it is of another source.
    """
    with write_transaction():
        channel = _lock_channel(channel_id)
        if channel is None:
            raise BadRequest(f"channel_id {channel_id} is not a known channel")
        if source is not None and channel.source != source:
            raise BadRequest(f"channel_id {channel_id} is not a channel of source {source}")
        if channel.connected:
            channel.connected = False
            save_channel(channel)
            logger.info("channel disconnected", extra={"channel_id": channel_id})
        return channel.page_token is not None


def finish_disconnect(graph: GraphClient, channel_id: str, *, last_attempt: bool) -> None:
    """Unsubscribes our app from a disconnected channel's page, then deletes the token.

    The subscription stays when another connected channel is served by the same page (its Messenger channel,
    or its Instagram account's): that channel still needs the page's events.

    Facebook saying the token is no good (or refusing the call for good) does not stop the disconnect.
    A transient error is raised to be retried, except on the last attempt, which deletes the token anyway:
    the events Facebook may keep sending are ignored, the channel being disconnected.
    """
    channel = Channel.get_or_none(Channel.id == channel_id)
    if channel is None or channel.connected or channel.page_token is None:
        return
    token = channel.page_token
    try:
        if not _page_still_serves(channel):
            graph.unsubscribe_app(channel.graph_page_id, token)
    except GraphError as error:
        if error.retryable and not last_attempt:
            raise
        logger.warning(
            "could not unsubscribe a disconnected page; deleting its token anyway",
            extra={"channel_id": channel_id, "kind": error.kind.value},
        )
    with write_transaction():
        channel = _lock_channel(channel_id)
        # A reconnect in the meantime brought a new token and a new subscription: leave them.
        if channel is not None and not channel.connected and channel.page_token == token:
            channel.page_token = None
            channel.webhook_subscribed = False
            save_channel(channel)


def _page_still_serves(channel: Channel) -> bool:
    """Whether another connected channel is served by ``channel``'s page."""
    page_id = channel.graph_page_id
    same_page = (Channel.page_id == page_id) | ((Channel.source == FACEBOOK) & (Channel.source_channel_id == page_id))
    return Channel.select().where(same_page & (Channel.id != channel.id) & (Channel.connected == True)).exists()  # noqa: E712


def stale_disconnects(limit: int = 200) -> list[str]:
    """Disconnected channels whose token is still there after DISCONNECT_STALE_MS: their actor was lost."""
    cutoff = now_ms() - DISCONNECT_STALE_MS
    query = (
        Channel.select(Channel.id)
        .where((Channel.connected == False) & Channel.page_token.is_null(False) & (Channel.updated_at < cutoff))  # noqa: E712
        .limit(limit)
    )
    return [row.id for row in query]


# --- health ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """What a health check found. None: could not tell."""

    token_valid: bool | None
    webhook_subscribed: bool | None
    resubscribed: bool = False


def flag_token_invalid(channel_id: str) -> None:
    """Records that Facebook refused a channel's token (an actor found out while using it)."""
    with write_transaction():
        channel = _lock_channel(channel_id)
        if channel is not None and channel.token_valid:
            channel.token_valid = False
            save_channel(channel)


def connected_channel_ids() -> list[str]:
    """The connected channels of every source: Facebook pages and Instagram accounts."""
    query = Channel.select(Channel.id).where(Channel.source.in_(SOURCES) & (Channel.connected == True))  # noqa: E712
    return [row.id for row in query.order_by(Channel.id)]


def check_health(graph: GraphClient, channel_id: str, *, app_id: str | None) -> Health | None:
    """Checks a connected channel's token and our app's webhook subscription of its page; subscribes again if dropped.

    Records ``token_valid`` and ``webhook_subscribed`` on the channel so that an operator sees a broken
    page. Returns what it found, or None when the channel is not connected.

    Raises:
      GraphError: transient errors, to be retried.
    """
    channel = Channel.get_or_none(Channel.id == channel_id)
    if channel is None or not channel.connected:
        return None
    token = channel.page_token
    health = _probe(graph, channel.graph_page_id, token, app_id) if token else Health(False, None)
    with write_transaction():
        channel = _lock_channel(channel_id)
        # The page was disconnected or reconnected with another token meanwhile: this finding is stale.
        if channel is None or not channel.connected or channel.page_token != token:
            return health
        changed = False
        for field in ("token_valid", "webhook_subscribed"):
            value = getattr(health, field)
            if value is not None and getattr(channel, field) != value:
                setattr(channel, field, value)
                changed = True
        if changed:
            save_channel(channel)
            logger.warning(
                "channel health changed",
                extra={
                    "channel_id": channel_id,
                    "token_valid": channel.token_valid,
                    "webhook_subscribed": channel.webhook_subscribed,
                },
            )
    return health


def _probe(graph: GraphClient, page_id: str, token: str, app_id: str | None) -> Health:
    try:
        graph.me(token)
    except GraphError as error:
        if error.retryable:
            raise
        if error.kind is ErrorKind.TOKEN_INVALID:
            return Health(token_valid=False, webhook_subscribed=None)
        logger.warning("health check: cannot read the page", extra={"page_id": page_id, "kind": error.kind.value})
        return Health(token_valid=None, webhook_subscribed=None)
    try:
        apps = graph.subscribed_apps(page_id, token)
        if any(str(app.get("id")) == app_id for app in apps):
            return Health(token_valid=True, webhook_subscribed=True)
        logger.warning(
            "health check: our app was unsubscribed from a page; subscribing again", extra={"page_id": page_id}
        )
        graph.subscribe_app(page_id, token)
        return Health(token_valid=True, webhook_subscribed=True, resubscribed=True)
    except GraphError as error:
        if error.retryable:
            raise
        logger.warning("health check: cannot subscribe to a page", extra={"page_id": page_id, "kind": error.kind.value})
        token_valid = False if error.kind is ErrorKind.TOKEN_INVALID else True
        return Health(token_valid=token_valid, webhook_subscribed=False)
