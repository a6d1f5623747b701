"""Calling messages.send and watching a message over the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import wait_until


def send(api: httpx.Client, conversation_id: str, message: dict[str, Any], **options: Any) -> httpx.Response:
    return api.post("/messages.send", json={"conversation_id": conversation_id, "message": message, **options})


def info(api: httpx.Client, message_id: str) -> dict[str, Any]:
    answer = api.post("/messages.info", json={"message_id": message_id})
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_state(api: httpx.Client, message_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
    """Polls ``messages.info`` until the message leaves ``pending``; fails unless it ends in ``state``."""
    final = wait_until(
        lambda: (m := info(api, message_id))["delivery_state"] != "pending" and m,
        timeout=timeout,
        message=f"message {message_id} still pending",
    )
    assert final["delivery_state"] == state, final
    return final
