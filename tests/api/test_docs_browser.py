"""``GET /docs`` in a real browser: Swagger UI renders the document's endpoints from the package's own files.

Debian's Chromium (apt package ``chromium``, installed by .ci/run), driven by Playwright's Python package over
its own executable: no browser is downloaded. The app is served over real HTTP behind a system token, which
the browser sends with every request (the page, its assets, and Swagger UI's fetch of /openapi.json).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Never imported from tests/conftest.py: pytest loads it as `conftest`, and `tests.conftest` would run it again,
# choosing another session database for every process the tests start from then on.
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "docs-browser-token"
# Operations whose paths the rendered page must show, one of each family of endpoints.
SHOWN = [
    "/messages.send",
    "/conversations.list",
    "/channels.info",
    "/facebook.connect",
    "/instagram.connect",
    "/webhooks.subscribe",
    "/events.retry",
    "/media.upload",
    "/media/{key}",
    "/health",
    "/facebook",
]


@pytest.fixture
def chromium() -> str:
    if not (os.access(CHROMIUM, os.X_OK) and shutil.which("chromium")):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs the chromium package")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


def test_docs_render_the_endpoints_in_a_browser(serve_app, chromium, tmp_path: Path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with serve_app(system_token=TOKEN) as client, sync_playwright() as playwright:
        spec = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            extra_http_headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            page = browser.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            answer = page.goto(str(client.base_url.join("/docs")), wait_until="load")
            assert answer is not None and answer.status == 200

            # Swagger UI fetched /openapi.json and rendered one block per operation
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()

    shown = {text.strip().replace("\u200b", "") for text in paths}
    assert set(SHOWN) <= shown, sorted(shown)
    assert len(paths) == sum(len(methods) for methods in spec["paths"].values())  # every operation
    assert "airy-actors" in title
    assert not failed, failed  # every asset came from the service itself
