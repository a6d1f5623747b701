"""AIRY_SYSTEM_TOKEN protects every endpoint but the webhook and /health."""

from __future__ import annotations

import pytest

from api.app import routes
from tests.support import sign

PROTECTED = sorted({route.path for route in routes() if route.path not in ("/facebook", "/health")})


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic c2VjcmV0", "secret", "Bearer secret2", "bearer secret"]
)
def test_every_endpoint_needs_the_bearer_token(serve_app, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    with serve_app(system_token="secret") as client:
        for path in PROTECTED:
            answer = client.post(path, json={}, headers=headers)
            assert answer.status_code == 401, path
            assert "unauthorized" in answer.json()["message"]


def test_the_right_token_opens_the_api(serve_app):
    with serve_app(system_token="secret") as client:
        answer = client.post("/conversations.list", json={}, headers={"Authorization": "Bearer secret"})
    assert answer.status_code == 200


def test_webhook_and_health_stay_open(serve_app, worker):
    with serve_app(system_token="secret") as client:
        assert client.get("/health").status_code == 200
        assert client.post("/facebook", content=b"{}", headers=sign(b"{}")).status_code == 200
