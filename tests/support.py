"""Test support: real servers in threads, polling, and Facebook-shaped webhook requests."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn

from airy_actors.conversations import ensure_conversation, insert_message
from airy_actors.models import Channel, Conversation
from airy_actors.timestamps import now_ms
from airy_actors.webhook_requests import store_webhook_requests

T = TypeVar("T")

APP_ID = "1517776481860111"
APP_SECRET = "test-app-secret"
WEBHOOK_SECRET = "test-verify-token"


class ThreadedServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread, over real HTTP."""

    def __init__(self, app: Any) -> None:
        # IPPROTO_TCP, so that uvicorn sets TCP_NODELAY: without it every answer waits ~40 ms on Nagle.
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10, message="uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, message: str = "condition not met"
) -> T:
    """Polls ``predicate`` until it returns something truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(interval)


# --- Facebook webhook requests ------------------------------------------------------------------------


def sign(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """The headers Facebook sends with ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def webhook_body(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"object": "page", "entry": list(entries)}).encode()


def entry(page_id: str, *events: dict[str, Any], standby: bool = False) -> dict[str, Any]:
    return {"id": page_id, "time": 1_700_000_000_000, ("standby" if standby else "messaging"): list(events)}


def text_message(page_id: str, psid: str, mid: str, text: str, timestamp: int = 1_700_000_000_000) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": timestamp,
        "message": {"mid": mid, "text": text},
    }


def echo(
    page_id: str, psid: str, mid: str, text: str, *, app_id: str | None = APP_ID, timestamp: int = 1_700_000_000_000
) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text, "is_echo": True}
    if app_id is not None:
        message["app_id"] = int(app_id)
    return {"sender": {"id": page_id}, "recipient": {"id": psid}, "timestamp": timestamp, "message": message}


def postback(page_id: str, psid: str, mid: str, payload: str, title: str, timestamp: int = 1_700_000_000_000):
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": timestamp,
        "postback": {"mid": mid, "payload": payload, "title": title},
    }


def reaction(
    page_id: str,
    psid: str,
    mid: str,
    action: str = "react",
    emoji: str = "\u2764\ufe0f",
    timestamp: int = 1_700_000_001_000,
) -> dict[str, Any]:
    body: dict[str, Any] = {"reaction": "love", "action": action, "mid": mid}
    if action == "react":
        body["emoji"] = emoji
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": timestamp, "reaction": body}


def message_edit(
    page_id: str, psid: str, mid: str, text: str, num_edit: int = 1, timestamp: int = 1_700_000_002_000
) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": timestamp,
        "message_edit": {"mid": mid, "text": text, "num_edit": num_edit},
    }


def receipt(page_id: str, psid: str, kind: str, watermark: int, mids: list[str] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": page_id}}
    if kind == "delivery":
        event["delivery"] = {"watermark": watermark, **({"mids": mids} if mids else {})}
    else:
        event["timestamp"] = watermark
        event["read"] = {"watermark": watermark}
    return event


def store_webhook_request(body: bytes) -> tuple[int, bool]:
    """Stores one signed webhook body as the web does; returns its row id and whether it is new."""
    return store_webhook_requests([body])[0]


def stored_conversation(message_id: str) -> tuple[Channel, Conversation]:
    """A channel (page 1001) with a conversation (contact 2001) holding one delivered contact message."""
    channel = Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")
    conversation = ensure_conversation(channel, "2001").conversation
    insert_message(
        conversation,
        message_id=message_id,
        source_message_id="m_1",
        content={"message": {"text": "hello"}},
        from_contact=True,
        sender_id="2001",
        sent_at=now_ms(),
        delivery_state="delivered",
    )
    return channel, conversation
