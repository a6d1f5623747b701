"""``GET /openapi.json``: a valid OpenAPI 3.1 document of every route, built from the schemas that validate the
requests, which real answers conform to; ``GET /docs`` serves Swagger UI from the installed package."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.responses import JSONResponse
from starlette.routing import Route

from airy_actors import event_failures, integrations
from airy_actors.integrations.history import delivery_json
from airy_actors.models import FailedEvent
from airy_actors.models.integrations import WebhookDelivery
from api import answer_schemas, schemas
from api.app import create_app, routes
from api.openapi import MissingOperation, document
from api.operations import operation_of
from api.routes import documentation, metrics
from api.routes.documentation import ASSETS_PATH
from tests.channels.pages import PAGE_ID, PAGE_NAME, PAGE_TOKEN
from tests.support import stored_conversation

MESSAGE_ID = "a0000000-0000-0000-0000-000000000001"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def spec(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_route_of_the_app_is_documented_with_its_methods(spec):
    served = [*routes(), *metrics.ROUTES, *documentation.ROUTES]
    for route in served:
        if not isinstance(route, Route):
            continue  # the mount of Swagger UI's files
        for method in route.methods - {"HEAD"}:
            assert method.lower() in spec["paths"][route.path], (route.path, method)
    assert {"/facebook", "/health", "/metrics", "/media/{key}", "/media.upload", "/openapi.json", "/docs"} <= set(
        spec["paths"]
    )
    assert set(spec["paths"]["/facebook"]) == {"get", "post"}


def test_a_route_without_an_operation_cannot_be_documented():
    async def undeclared(request: Any) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(MissingOperation, match="/things.do"):
        document([*routes(), Route("/things.do", undeclared, methods=["POST"])])


def test_request_bodies_are_the_schemas_that_validate_them(spec):
    for route in routes():
        declared = operation_of(route.endpoint)
        if route.path in ("/facebook", "/media.upload") or "POST" not in route.methods:
            continue
        # The endpoint converts its body into this very type (api.operations.operation)
        assert declared.body is not None and issubclass(declared.body, schemas.Body), route.path
        body = spec["paths"][route.path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{declared.body.__name__}"}
    send = spec["components"]["schemas"]["MessagesSend"]
    assert send["required"] == ["conversation_id", "message"]
    assert send["properties"]["message"]["minProperties"] == 1
    assert "additionalProperties" not in send  # unknown top-level fields are ignored, as they always were
    assert spec["components"]["schemas"]["FacebookConnect"]["properties"]["page_id"]["maxLength"] == 64
    filters = spec["components"]["schemas"]["ConversationFilters"]
    assert filters["additionalProperties"] is False  # an unknown filter is refused
    upload = spec["paths"]["/media.upload"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(upload)


def test_every_operation_documents_its_errors_with_the_error_schema(spec):
    error = {"$ref": "#/components/schemas/Error"}
    for path, methods in spec["paths"].items():
        for method, described in methods.items():
            statuses = {int(status) for status in described["responses"]}
            assert statuses & {200, 202}, (path, method)
            assert 503 in statuses, (path, method)
            if described.get("security") != []:
                assert 401 in statuses, (path, method)
            if "requestBody" in described:
                assert {400, 413} <= statuses, (path, method)
            for status, answer in described["responses"].items():
                if (path, status) == ("/media/{key}", "416"):
                    assert "content" not in answer  # answered without a body
                elif int(status) >= 400 and path != "/health":
                    assert answer["content"]["application/json"]["schema"] == error, (path, status)


def test_the_system_token_is_a_bearer_scheme_and_open_endpoints_say_so(spec):
    assert spec["components"]["securitySchemes"]["systemToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "AIRY_SYSTEM_TOKEN",
    }
    assert spec["security"] == [{"systemToken": []}]
    assert spec["paths"]["/facebook"]["post"]["security"] == []
    assert spec["paths"]["/facebook"]["get"]["security"] == []
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/media/{key}"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/messages.send"]["post"]


def test_without_metrics_the_document_has_no_metrics_endpoint(settings):
    app = create_app(dataclasses.replace(settings, metrics=False))
    assert "/metrics" not in document(app.routes)["paths"]


# --- real answers conform to the document --------------------------------------------------------------------


def conforms(spec: dict[str, Any], path: str, answer: httpx.Response, method: str = "post") -> None:
    """Checks ``answer`` against the schema that the document gives for its path and status."""
    responses = spec["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses, (path, answer.status_code, answer.text)
    content = responses[str(answer.status_code)]["content"]
    media_type = answer.headers["content-type"].split(";")[0]
    if "*/*" in content:
        return  # a kept file: its own type
    assert media_type in content, (path, answer.status_code, media_type)
    if media_type == "application/json":
        root = {**content[media_type]["schema"], "components": spec["components"]}
        jsonschema.Draft202012Validator(root).validate(answer.json())


def conforms_to(spec: dict[str, Any], name: str, instance: Any) -> None:
    root = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(root).validate(instance)


@pytest.fixture
def seeded(db, fake_graph) -> dict[str, str]:
    channel, conversation = stored_conversation(MESSAGE_ID)
    subscription = integrations.subscribe(
        "https://hooks.example.com/x", headers={"X-Team": "7"}, events=None, signature_key="k"
    )
    return {"channel_id": channel.id, "conversation_id": conversation.id, "subscription_id": subscription["id"]}


def test_answers_conform_to_their_documented_schemas(api, spec, seeded):
    calls = [
        ("/channels.list", {}, 200),
        ("/channels.info", {"channel_id": seeded["channel_id"]}, 200),
        ("/channels.update", {"channel_id": seeded["channel_id"], "name": "Support"}, 200),
        ("/conversations.list", {"page_size": 1, "filters": {"display_name": "user"}}, 200),
        ("/conversations.info", {"conversation_id": seeded["conversation_id"]}, 200),
        ("/messages.list", {"conversation_id": seeded["conversation_id"]}, 200),
        ("/messages.info", {"message_id": MESSAGE_ID}, 200),
        ("/conversations.read", {"conversation_id": seeded["conversation_id"]}, 202),
        ("/webhooks.list", {}, 200),
        ("/webhooks.info", {"id": seeded["subscription_id"]}, 200),
        ("/webhooks.deliveries", {"id": seeded["subscription_id"]}, 200),
        ("/webhooks.subscribe", {"url": "https://hooks.example.com/y", "events": ["message.created"]}, 200),
        ("/messages.send", {"conversation_id": seeded["conversation_id"], "message": {"text": "hi"}}, 200),
        ("/events.failed", {"cursor": ""}, 200),
        ("/facebook.disconnect", {"channel_id": seeded["channel_id"]}, 202),
        ("/conversations.info", {"conversation_id": UNKNOWN_ID}, 404),
        ("/messages.list", {"conversation_id": 5}, 400),
        ("/conversations.list", {"filters": {"colour": "red"}}, 400),
        ("/jobs.info", {"job_id": UNKNOWN_ID}, 404),
        ("/events.retry", {"id": UNKNOWN_ID}, 404),
        ("/webhooks.replay", {"delivery_id": UNKNOWN_ID}, 404),
        ("/facebook.disconnect", {"channel_id": UNKNOWN_ID}, 400),
        ("/webhooks.unsubscribe", {"id": seeded["subscription_id"]}, 200),
    ]
    for path, body, status in calls:
        answer = api.post(path, json=body)
        assert answer.status_code == status, (path, answer.text)
        conforms(spec, path, answer)
    conforms(spec, "/health", api.get("/health"), method="get")
    conforms(spec, "/metrics", api.get("/metrics"), method="get")
    conforms(spec, "/docs", api.get("/docs"), method="get")
    conforms(spec, "/facebook", api.get("/facebook", params={"hub.mode": "subscribe"}), method="get")
    conforms(spec, "/facebook", api.post("/facebook", json={"object": "page"}))  # unsigned: 403
    conforms(spec, "/media/{key}", api.get("/media/nothing", params={"sig": "x"}), method="get")


def test_a_synchronous_connect_and_its_job_conform(api, spec, worker, fake_graph):
    fake_graph.add_page(PAGE_ID, PAGE_NAME, PAGE_TOKEN)
    connected = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})
    assert connected.status_code == 200, connected.text
    conforms(spec, "/facebook.connect", connected)
    refused = api.post("/instagram.connect", json={"page_id": PAGE_ID, "page_token": "wrong", "account_id": "17"})
    assert refused.status_code == 400, refused.text
    conforms(spec, "/instagram.connect", refused)


def test_an_upload_conforms(api, spec, db):
    uploaded = api.post("/media.upload", content=b"\x89PNG not really", headers={"Content-Type": "image/png"})
    assert uploaded.status_code == 200, uploaded.text
    conforms(spec, "/media.upload", uploaded)
    kept = api.get("/media/" + uploaded.json()["url"].split("/media/", 1)[1])  # the public URL's host aside
    assert kept.status_code == 200 and kept.content == b"\x89PNG not really"
    conforms(spec, "/media/{key}", kept, method="get")
    outside = api.get(kept.url, headers={"Range": "bytes=1000-2000"})
    assert outside.status_code == 416 and outside.content == b""
    assert "416" in spec["paths"]["/media/{key}"]["get"]["responses"]
    refused = api.post("/media.upload", content=b"<html>", headers={"Content-Type": "text/html"})
    assert refused.status_code == 415, refused.text
    conforms(spec, "/media.upload", refused)


def test_representations_without_an_endpoint_to_make_them_conform(spec, seeded, db):
    # Deliveries and failed events only exist once events were fanned out or failed: check the shapes themselves
    delivery = WebhookDelivery.create(
        subscription=seeded["subscription_id"], event_id=1, type="message.created", ordering_key="k", give_up_at=0
    )
    shown = delivery_json(delivery)
    conforms_to(spec, "Delivery", shown)
    assert tuple(answer_schemas.Delivery.__struct_fields__) == tuple(shown)
    failed = FailedEvent.create(
        webhook_request_id=1, event_index=0, page_id=None, kind="message", error="boom", status="failed", received_at=0
    )
    conforms_to(spec, "FailedEvent", event_failures.failed_event_json(failed))
    job = {"job_id": UNKNOWN_ID, "status": "pending"}
    conforms_to(spec, "JobPending", job)
    conforms_to(spec, "JobInfo", {**job, "status": "succeeded", "result": {"data": []}})


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
