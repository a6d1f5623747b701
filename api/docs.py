"""``GET /docs``: Swagger UI showing /openapi.json, with its JavaScript and CSS served from the installed
``swagger-ui-bundle-v2`` package (under /docs/assets): no CDN at run time."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

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


def assets() -> Mount:
    """Swagger UI's files, as the package installed them."""
    return Mount(ASSETS_PATH, app=StaticFiles(directory=swagger_ui_path), name="docs-assets")


@documented(Operation("This API's documentation: Swagger UI over /openapi.json", answers={200: Text("text/html")}))
async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(root=request.scope.get("root_path", ""), assets=ASSETS_PATH))
