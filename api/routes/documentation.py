"""``GET /openapi.json`` (the document of every route, :mod:`api.openapi`) and ``GET /docs`` (Swagger UI
showing it, its JavaScript and CSS served from the installed ``swagger-ui-bundle-v2`` package under
``/docs/assets``: no CDN, the page works offline).

Both, and the assets, are behind the system token like every endpoint (SPEC section 1: only the webhook and
/health are open); with no token set, as in development, they are open.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from api.openapi import document
from api.operations import Operation, Text, documented

ASSETS_PATH = "/docs/assets"

PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>airy-actors API</title>
    <link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
    <link rel="icon" type="image/png" href="{root}{assets}/favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{root}{assets}/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        url: "{root}/openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      }});
    </script>
  </body>
</html>
"""


@documented(Operation("This document: OpenAPI 3.1", answers={200: {"type": "object"}}))
async def openapi_json(request: Request) -> Response:
    """The document of the app's routes, built once per app."""
    built = getattr(request.app.state, "openapi", None)
    if built is None:
        built = request.app.state.openapi = orjson.dumps(document(request.app.routes))
    return Response(built, media_type="application/json")


@documented(Operation("This API's documentation: Swagger UI over /openapi.json", answers={200: Text("text/html")}))
async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(root=request.scope.get("root_path", ""), assets=ASSETS_PATH))


ROUTES: list[Route | Mount] = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    # Swagger UI's files, as the package installed them.
    Mount(ASSETS_PATH, app=StaticFiles(directory=swagger_ui_path), name="docs-assets"),
]
