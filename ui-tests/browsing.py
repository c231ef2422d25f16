"""What the browser tests share: finding Chromium, skipping or failing without it, free ports,
and keeping every request on localhost.

Debian's ``chromium`` is driven by Playwright for Python through ``executable_path``
(downloading a browser is impossible here). Without Chromium or Playwright the tests skip with
a message, unless ``KVMVIZ_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns the skip into a
failure. The ``browser`` fixture itself is in ``conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "ui-tests" / "artifacts"  # screenshots, kept after the run
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("KVMVIZ_REQUIRE_BROWSER", "") not in ("", "0")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Headless Chromium as root, on a machine whose network is closed: no sandbox, and none of the
# background connections it would otherwise try at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when ``KVMVIZ_REQUIRE_BROWSER`` is set."""
    if REQUIRED:
        pytest.fail(f"browser tests required (KVMVIZ_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if CHROMIUM is None:
        return "no chromium on PATH (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def keep_local(context) -> tuple[list[str], list[str]]:
    """Route every request of a Playwright ``context``: local ones go through, any other is
    aborted (never lets it leave the machine). Returns the lists (all, aborted) it fills."""
    requests: list[str] = []
    outside: list[str] = []

    def route(route):
        requests.append(route.request.url)
        if is_local(route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return requests, outside
