"""AIRY_SYSTEM_TOKEN protects every endpoint but the webhook, /health and signed media URLs."""

from __future__ import annotations

import logging

import pytest

from api.app import routes
from tests.support import sign

# Signed media URLs (GET /media/<key>?sig=...) need no token: the signature is the capability.
PROTECTED = sorted(
    {route.path for route in routes() if route.path not in ("/facebook", "/health") and "POST" in route.methods}
)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer wrong", "Basic c2VjcmV0", "secret", "Bearer secret2", "Bearersecret"]
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


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_case_insensitive(serve_app, scheme):
    with serve_app(system_token="secret") as client:
        answer = client.post("/conversations.list", json={}, headers={"Authorization": f"{scheme} secret"})
    assert answer.status_code == 200


@pytest.mark.parametrize("second", ["Bearer secret", "Bearer wrong"])
def test_several_authorization_headers_are_refused(serve_app, second):
    with serve_app(system_token="secret") as client:
        answer = client.post(
            "/conversations.list", json={}, headers=[("Authorization", "Bearer secret"), ("Authorization", second)]
        )
    assert answer.status_code == 401
    assert answer.json() == {"message": "unauthorized: several Authorization headers"}


def test_the_token_is_never_logged(serve_app, caplog):
    token = "tok-7c1e9f0d2b"
    caplog.set_level(logging.DEBUG)
    with serve_app(system_token=token) as client:
        for authorization in (f"Bearer {token}", f"bearer {token}x", f"Basic {token}"):
            client.post("/conversations.list", json={}, headers={"Authorization": authorization})
        client.post("/conversations.list", json={}, headers=[("Authorization", f"Bearer {token}")] * 2)
    assert token not in caplog.text
    assert all(token not in repr(record.__dict__) for record in caplog.records)


def test_webhook_and_health_stay_open(serve_app, worker):
    with serve_app(system_token="secret") as client:
        assert client.get("/health").status_code == 200
        assert client.post("/facebook", content=b"{}", headers=sign(b"{}")).status_code == 200
