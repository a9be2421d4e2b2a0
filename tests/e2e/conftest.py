"""On an end-to-end failure: attach the server's output to the report and keep the browser's view.

``expect(...)`` failures only describe the page; what the server printed (a traceback, a refused
port) is usually the real cause, so every failed e2e test's report gets a "make run output"
section, and the page it was on is saved as ``test-artifacts/screenshots/FAILED-<test>.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    page = funcargs.get("page")
    if page is not None and report.when == "call":
        try:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"FAILED-{item.name}.png"), timeout=10_000)
        except Exception as exc:  # the browser may be the thing that broke
            report.sections.append(("failure screenshot", f"not taken: {exc!r}"))
    server = funcargs.get("server")
    if server is not None:
        report.sections.append(("make run output (last 200 lines)", server.output()))
