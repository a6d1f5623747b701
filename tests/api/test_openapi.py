"""``GET /openapi.json`` and ``GET /docs``: a valid OpenAPI 3.1 document of every route, built from the schemas
that validate the requests, which real answers conform to; Swagger UI served from the installed package."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from airy_actors import integrations
from airy_actors.conversations import ensure_conversation, insert_message
from airy_actors.models import Channel
from airy_actors.timestamps import now_ms
from api import schemas
from api.app import routes
from api.docs import ASSETS_PATH
from api.openapi import MissingOperation, document
from api.operations import operation_of


@pytest.fixture
def spec(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_route_is_documented_with_its_methods(spec):
    for route in routes():
        for method in route.methods - {"HEAD"}:
            assert method.lower() in spec["paths"][route.path], (route.path, method)
    assert {"/facebook", "/health", "/messages.send", "/openapi.json", "/docs"} <= set(spec["paths"])


def test_a_route_without_an_operation_cannot_be_documented():
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def undeclared(request: Any) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(MissingOperation, match="/things.do"):
        document([*routes(), Route("/things.do", undeclared, methods=["POST"])])


def test_request_bodies_are_the_schemas_that_validate_them(spec):
    for route in routes():
        declared = operation_of(route.endpoint)
        if "POST" not in route.methods or declared.body is None:
            continue
        body = spec["paths"][route.path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{declared.body.__name__}"}
    send = spec["components"]["schemas"]["MessagesSend"]
    assert send["additionalProperties"] is False and send["required"] == ["conversation_id", "message"]
    assert send["properties"]["conversation_id"]["maxLength"] == 36  # Conversation.id is CharField(36)
    assert spec["components"]["schemas"]["FacebookConnect"]["properties"]["page_id"]["maxLength"] == 64


def test_every_operation_documents_its_errors_with_the_error_schema(spec):
    error = {"$ref": "#/components/schemas/Error"}
    for path, methods in spec["paths"].items():
        for method, described in methods.items():
            statuses = {int(status) for status in described["responses"]}
            assert statuses & {200, 202}, (path, method)
            if described.get("security") != []:
                assert 401 in statuses, (path, method)
            if "requestBody" in described:
                assert {400, 413} <= statuses, (path, method)
            for status, answer in described["responses"].items():
                if int(status) >= 400 and path != "/health":
                    assert answer["content"]["application/json"]["schema"] == error, (path, status)


def test_the_webhook_and_health_need_no_token_in_the_document(spec):
    assert spec["paths"]["/facebook"]["post"]["security"] == []
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["security"] == [{"systemToken": []}]
    assert "security" not in spec["paths"]["/messages.send"]["post"]


# --- real answers conform to the document --------------------------------------------------------------------


def conforms(spec: dict[str, Any], path: str, answer: httpx.Response, method: str = "post") -> None:
    """Checks ``answer`` against the schema that the document gives for its path and status."""
    responses = spec["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses, (path, answer.status_code, answer.text)
    schema = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
    root = {**schema, "components": spec["components"]}
    jsonschema.Draft202012Validator(root).validate(answer.json())


@pytest.fixture
def seeded(db, fake_graph) -> dict[str, str]:
    channel = Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")
    ref = ensure_conversation(channel, "2001")
    insert_message(
        ref.conversation,
        message_id="a0000000-0000-0000-0000-000000000001",
        source_message_id="m_1",
        content={"message": {"text": "hello"}},
        from_contact=True,
        sender_id="2001",
        sent_at=now_ms(),
        delivery_state="delivered",
    )
    subscription = integrations.subscribe(
        "https://hooks.example.com/x", headers={"X-Team": "7"}, events=None, signature_key="k"
    )
    return {"channel_id": channel.id, "conversation_id": ref.conversation.id, "subscription_id": subscription["id"]}


def test_answers_conform_to_their_documented_schemas(api, spec, seeded):
    calls = [
        ("/channels.list", {}, 200),
        ("/channels.info", {"channel_id": seeded["channel_id"]}, 200),
        ("/channels.update", {"channel_id": seeded["channel_id"], "name": "Support"}, 200),
        ("/conversations.list", {"page_size": 1}, 200),
        ("/conversations.info", {"conversation_id": seeded["conversation_id"]}, 200),
        ("/messages.list", {"conversation_id": seeded["conversation_id"]}, 200),
        ("/messages.info", {"message_id": "a0000000-0000-0000-0000-000000000001"}, 200),
        ("/conversations.read", {"conversation_id": seeded["conversation_id"]}, 202),
        ("/webhooks.list", {}, 200),
        ("/webhooks.info", {"id": seeded["subscription_id"]}, 200),
        ("/webhooks.deliveries", {"id": seeded["subscription_id"]}, 200),
        ("/webhooks.subscribe", {"url": "https://hooks.example.com/y", "events": ["message.created"]}, 200),
        ("/messages.send", {"conversation_id": seeded["conversation_id"], "message": {"text": "hi"}}, 200),
        ("/conversations.info", {"conversation_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ("/messages.list", {"conversation_id": 5}, 400),
        ("/jobs.info", {"job_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ("/facebook.disconnect", {"channel_id": "00000000-0000-0000-0000-000000000000"}, 400),
    ]
    for path, body, status in calls:
        answer = api.post(path, json=body)
        assert answer.status_code == status, (path, answer.text)
        conforms(spec, path, answer)
    conforms(spec, "/health", api.get("/health"), method="get")


def test_a_delivery_conforms_to_its_schema(spec, seeded, db):
    # Deliveries only exist once events were fanned out: check the representation itself
    from airy_actors.models.integrations import WebhookDelivery

    delivery = WebhookDelivery.create(
        subscription=seeded["subscription_id"], event_id=1, type="message.created", ordering_key="k", give_up_at=0
    )
    instance = integrations.delivery_json(delivery)
    root = {"$ref": "#/components/schemas/Delivery", "components": spec["components"]}
    jsonschema.Draft202012Validator(root).validate(instance)
    assert schemas.Delivery.__struct_fields__ == tuple(instance)


# --- /docs ------------------------------------------------------------------------------------------------


def test_docs_show_swagger_ui_with_assets_served_from_the_package(api):
    page = api.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'src="{ASSETS_PATH}/swagger-ui-bundle.js"' in page.text
    assert '"/openapi.json"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    script = api.get(f"{ASSETS_PATH}/swagger-ui-bundle.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert len(script.content) > 500_000
    assert api.get(f"{ASSETS_PATH}/swagger-ui.css").status_code == 200


def test_openapi_and_docs_need_the_system_token_when_it_is_set(serve_app):
    with serve_app(system_token="secret") as client:
        for path in ("/openapi.json", "/docs", f"{ASSETS_PATH}/swagger-ui.css"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"Authorization": "Bearer secret"}).status_code == 200, path
