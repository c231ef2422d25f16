"""The headless Chromium every browser test drives, launched once per session."""

from __future__ import annotations

import pytest
from browsing import CHROMIUM, CHROMIUM_ARGS, missing_browser, skip_or_fail


@pytest.fixture(scope="session")
def browser():
    reason = missing_browser()
    if reason:
        skip_or_fail(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
