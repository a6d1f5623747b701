"""Malformed input on every endpoint: a clear 4xx JSON error naming the problem, never a 500."""

from __future__ import annotations

import pytest

from api.app import routes

# Every POST endpoint that takes JSON (/media.upload takes the file itself).
JSON_ENDPOINTS = sorted(
    {route.path for route in routes() if "POST" in route.methods and route.path not in ("/facebook", "/media.upload")}
)


def test_every_platform_endpoint_is_covered():
    assert {"/conversations.list", "/conversations.info", "/messages.list", "/messages.info"} <= set(JSON_ENDPOINTS)


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "json"),
        (b"[1, 2, 3]", "object"),
        (b'"text"', "object"),
        (b"\xff\xfe", "utf-8"),
    ],
)
def test_malformed_body_is_a_bad_request_naming_the_problem(api, path, body, words):
    answer = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["message"].lower()


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_oversize_body_is_refused(api, path):
    answer = api.post(path, content=b'{"x": "' + b"a" * 1_048_576 + b'"}')
    assert answer.status_code == 413
    assert "larger" in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/conversations.info", {}, "conversation_id"),
        ("/conversations.info", {"conversation_id": 5}, "conversation_id"),
        ("/conversations.info", {"conversation_id": ""}, "conversation_id"),
        ("/conversations.read", {"conversation_id": ["x"]}, "conversation_id"),
        ("/messages.list", {}, "conversation_id"),
        ("/messages.info", {"message_id": None}, "message_id"),
        ("/conversations.list", {"filters": "x"}, "filters"),
        ("/conversations.list", {"filters": {"channel_id": 3}}, "filters.channel_id"),
        ("/conversations.list", {"filters": {"colour": "red"}}, "filters.colour"),
    ],
)
def test_wrong_fields_are_bad_requests_naming_the_field(api, path, body, field):
    answer = api.post(path, json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(field)


def test_unknown_path_and_wrong_method_answer_json(api):
    missing = api.post("/nothing.here", json={})
    wrong = api.get("/conversations.list")
    assert missing.status_code == 404 and "/nothing.here" in missing.json()["message"]
    assert wrong.status_code == 405 and "GET" in wrong.json()["message"]
