"""The API calls the integrator webhook tests make again and again."""

from __future__ import annotations

import httpx

from tests.support import entry, sign, webhook_body

PAGE = "1001"
PAGE_TOKEN = "PAGE-TOKEN"


def subscribe(api: httpx.Client, url: str, **fields: object) -> dict:
    response = api.post("/webhooks.subscribe", json={"url": url, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def from_facebook(api: httpx.Client, *events: dict) -> None:
    """Posts one signed webhook request carrying ``events`` for the page."""
    body = webhook_body(entry(PAGE, *events))
    response = api.post("/facebook", content=body, headers=sign(body))
    assert response.status_code == 200, response.text
