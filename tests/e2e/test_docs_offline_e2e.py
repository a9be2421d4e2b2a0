"""End to end: ``/docs`` and ``/redoc`` render in Chromium with no internet at all.

The real ``ptsim api`` process on 127.0.0.1; every request the browser makes to any host other
than 127.0.0.1/localhost is aborted (and recorded), as on a machine without internet. Swagger UI
must list the operations and ReDoc must show the API's title and operations, from assets the
server ships itself (fastapi-offline). Swagger UI must not even try to reach another host; ReDoc
only tries its "API docs by Redocly" footer logo (an image, hard-wired in ReDoc, not needed to
render), so the test allows blocked images there and nothing else (no script, style, font, fetch).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from support import CHROMIUM, CHROMIUM_ARGS

from tests.reliability.live_server import LiveServer

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
UI_TIMEOUT_MS = 30_000  # the machine is slow and shared


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page whose every non-loopback request is aborted; the list collects them as
    ``"<resource type> <url>"``."""
    context = browser.new_context()
    blocked: list[str] = []

    def only_loopback(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            blocked.append(f"{route.request.resource_type} {route.request.url}")
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield page, blocked
    finally:
        context.close()


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``ptsim api`` for the module: both tests only read its documentation pages."""
    folder = tmp_path_factory.mktemp("docs")
    server = LiveServer(folder / "live.duckdb", folder / "server.log")
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.kill()


def test_swagger_ui_lists_the_operations_offline(
    api_url: str, offline_page: tuple[Page, list[str]]
) -> None:
    page, blocked = offline_page
    page.goto(f"{api_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "Payment Transaction Simulator", timeout=UI_TIMEOUT_MS
    )
    payment = page.locator(".opblock-post", has_text="/payment").first
    expect(payment).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator(".opblock-get", has_text="/stats").first).to_be_visible()
    assert page.locator(".opblock").count() >= 8
    assert blocked == [], f"/docs tried to reach other hosts: {blocked}"


def test_redoc_renders_title_and_operations_offline(
    api_url: str, offline_page: tuple[Page, list[str]]
) -> None:
    page, blocked = offline_page
    page.goto(f"{api_url}/redoc")
    expect(page.locator("h1", has_text="Payment Transaction Simulator")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    menu = page.locator('[role="menuitem"], .menu-content li')
    expect(menu.filter(has_text="Reset").first).to_be_attached(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("/payment", exact=False).first).to_be_attached()
    needed = [request for request in blocked if not request.startswith("image ")]
    assert needed == [], f"/redoc tried to load assets from other hosts: {blocked}"
