"""The toggle notebook in a real JupyterLab, driven in a real headless Chromium.

Starts JupyterLab on a free localhost port over a temporary copy of ``notebooks/`` (the lab
saves outputs into the notebooks it runs), opens chapter 04, runs every cell, flips the kernel
toggle from v5.12 to v5.15 and checks that the displayed p99 stall drops and that no cell
shows an error; then zooms the lock timeline in and checks its axis limits. Screenshots go to
``ui-tests/artifacts/``.

Needs Debian's ``chromium`` and Playwright for Python (which drives it through
``executable_path``: downloading a browser is impossible here). Without them the tests skip,
unless ``KVMVIZ_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from browsing import ARTIFACTS, ROOT, free_port, keep_local

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={work / 'notebooks'}",
        # as `make lab` (LAB_OFFLINE): no news feed, no update check, no pop-up asking
        "--LabApp.news_url=None",
        f"--LabApp.app_settings_dir={ROOT / 'jupyter' / 'lab-settings'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(work / "lab.log", "w")
    # The lab finds the kernel of this environment itself: drop kernelspec paths other tests
    # of the session may have set.
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "MPLBACKEND")}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start: {(work / 'lab.log').read_text()}"
                    ) from None
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _p99(page, kernel: str, timeout_ms: int = 60_000) -> float:
    locator = page.locator(f'.kvmviz-p99[data-kernel="{kernel}"]')
    locator.wait_for(timeout=timeout_ms)
    return float(locator.get_attribute("data-p99-us"))


def _brownout(page, kernel: str) -> float:
    locator = page.locator(f'.kvmviz-p99[data-kernel="{kernel}"]')
    return float(locator.get_attribute("data-brownout"))


def _run_all_cells(page, notebook: str) -> None:
    """Run → Run All Cells on ``notebook``, as a user would; again if the kernel was not ready
    to take it.

    The lab restores the tabs of the test before (one server for the module), and Run All
    Cells runs whichever notebook is current: ``notebook``'s tab is made current first, and
    only its own cells' prompts say whether it started (once, chapter 04's tab was still
    current, 04 ran again and 08 never did)."""
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=notebook)
    tab.first.wait_for(timeout=120_000)
    tab.first.click()
    current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    status = page.locator("#jp-main-statusbar")
    deadline = time.monotonic() + 120
    # Its kernel has started and waits for work (the status bar shows the current one's).
    while notebook not in current.first.text_content() or "Idle" not in status.inner_text():
        assert time.monotonic() < deadline, (current.first.text_content(), status.inner_text())
        time.sleep(0.5)
    prompts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt")
    for _ in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(text.strip() not in ("[ ]:", "") for text in prompts.all_inner_texts()):
                return
            time.sleep(0.5)
    raise AssertionError(f"Run All Cells did not start any cell: {prompts.all_inner_texts()}")


def test_toggle_notebook_in_jupyterlab(browser, lab):
    """Run chapter 04 in JupyterLab, flip the toggle to v5.15: on the static setup the stalls
    vanish (the brownout shown is exactly 0, and said so in words); flip the setup to volatile:
    v5.15 still stalls, all of it behind hits, nothing behind misses."""
    url, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    _, outside = keep_local(context)  # a workshop room may have no internet
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/lab/tree/04-the-optimization.ipynb?token={token}", timeout=120_000)
    page.locator(".jp-NotebookPanel").first.wait_for(timeout=120_000)
    _run_all_cells(page, "04-the-optimization.ipynb")
    try:
        # The first run in a fresh environment also compiles the engine (numba, cached after).
        before = _p99(page, "v5.12", timeout_ms=180_000)
        brownout_before = _brownout(page, "v5.12")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "04-failed.png"), full_page=True)
        raise
    page.screenshot(path=str(ARTIFACTS / "04-v5.12.png"), full_page=False)
    # the dashboard's toggle, the first of the chapter (the lock timeline has its own)
    page.get_by_role("button", name="v5.15", exact=True).first.click()
    after = _p99(page, "v5.15")
    brownout_after = _brownout(page, "v5.15")
    page.locator(".kvmviz-p99[data-kernel='v5.15']").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "04-v5.15.png"), full_page=False)
    assert before > 0
    assert after < before, (before, after)
    assert brownout_before > 0 and brownout_after == 0, (brownout_before, brownout_after)
    headline = page.locator(".kvmviz-p99[data-kernel='v5.15']")
    assert headline.get_attribute("data-setup") == "static"
    assert "no vCPU stalled" in headline.inner_text()
    # The dashboard's setup toggle (the first "volatile" button of the chapter).
    page.get_by_role("button", name="volatile", exact=True).first.click()
    volatile = page.locator(".kvmviz-p99[data-kernel='v5.15'][data-setup='volatile']")
    volatile.wait_for(timeout=60_000)
    volatile.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "04-v5.15-volatile.png"), full_page=False)
    miss = float(volatile.get_attribute("data-brownout-miss"))
    hit = float(volatile.get_attribute("data-brownout-hit"))
    assert miss == 0 < hit, (miss, hit)
    page.get_by_role("button", name="static", exact=True).first.click()
    page.locator(".kvmviz-p99[data-setup='static']").wait_for(timeout=60_000)
    # Every cell ran: wait until the last code cell has an execution count, then no errors.
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        timeout=120_000
    )
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + 120
    while "[ ]" in prompts.all_inner_texts() or "[*]:" in prompts.all_inner_texts():
        assert time.monotonic() < deadline, prompts.all_inner_texts()
        time.sleep(0.5)
    assert page.locator(".jp-OutputArea-output[data-mime-type*='stderr']").count() == 0 or all(
        "Traceback" not in t
        for t in page.locator(".jp-OutputArea-output[data-mime-type*='stderr']").all_inner_texts()
    )
    assert (
        page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count()
        == 0
    )
    assert not errors, errors
    # LAB_OFFLINE and jupyter/lab-settings: no pop-up asking to fetch Jupyter news
    assert page.get_by_text("get notified about official Jupyter news").count() == 0
    page.screenshot(path=str(ARTIFACTS / "04-end.png"), full_page=False)
    _exercise_questions_render_as_html(page)
    _zoom_the_lock_timeline(page)
    _play_the_queue_animation(page)
    _no_error_shown(page)
    assert not errors, errors
    assert not outside, f"requests left localhost: {outside}"
    context.close()


def _no_error_shown(page) -> None:
    """No cell output is an error or a traceback on stderr."""
    stderr = page.locator(".jp-OutputArea-output[data-mime-type*='stderr']")
    assert all("Traceback" not in t for t in stderr.all_inner_texts()), stderr.all_inner_texts()
    errors = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.all_inner_texts()


def _window(explorer) -> tuple[str, float, float]:
    """(kernel, start, end) of the window the timeline's axes show, from the label the
    widget writes from their x limits (``TimelineExplorer.label``)."""
    label = explorer.locator(".kvmviz-window")
    label.wait_for(state="attached", timeout=60_000)
    # One read of one element: three get_attribute calls could straddle a redraw that
    # replaces the label, and pair the new start with the old end.
    kernel, start, end = label.evaluate(
        "e => [e.dataset.kernel, e.dataset.startUs, e.dataset.endUs]"
    )
    return kernel, float(start), float(end)


def _wait_for_window(explorer, before, timeout_s: float = 30.0):
    """The window once it is no longer ``before`` (the kernel answers the click)."""
    deadline = time.monotonic() + timeout_s
    while (now := _window(explorer)) == before:
        assert time.monotonic() < deadline, f"the timeline stayed at {before}"
        time.sleep(0.2)
    return now


def _zoom_the_lock_timeline(page) -> None:
    """Press zoom in twice and later ▶ once on the zoomable lock timeline: the x limits of its
    axes (read back through its label) become the half, then the quarter of the first window
    about its centre, then move on by half that; the picture changes with each. Flipping its
    kernel to v5.15 keeps the window. No error output appears; a screenshot is kept."""
    explorer = page.locator(".kvmviz-timeline").first
    explorer.wait_for(state="attached", timeout=120_000)
    explorer.scroll_into_view_if_needed()
    image = explorer.locator("img").first
    kernel, start, end = first = _window(explorer)
    assert kernel == "v5.12" and end > start >= 0, first
    pictures = {image.get_attribute("src")}
    page.screenshot(path=str(ARTIFACTS / "04-timeline.png"), full_page=False)
    centre, width = (start + end) / 2, end - start
    shown = first
    for zoom in (2, 4):
        explorer.locator(".kvmviz-zoom-in").click()
        shown = _wait_for_window(explorer, shown)
        _, low, high = shown
        assert abs((high - low) - width / zoom) <= 0.3, (shown, width)
        assert abs((low + high) / 2 - centre) <= 0.3, (shown, centre)
        pictures.add(image.get_attribute("src"))
    explorer.locator(".kvmviz-pan-right").click()
    zoomed = _wait_for_window(explorer, shown)
    assert abs(zoomed[1] - (shown[1] + width / 8)) <= 0.3, (zoomed, shown)
    pictures.add(image.get_attribute("src"))
    assert len(pictures) == 4, "the image did not change with each window"
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "04-timeline-zoomed.png"), full_page=False)
    explorer.get_by_role("button", name="v5.15", exact=True).click()
    after = _wait_for_window(explorer, zoomed)
    assert after == ("v5.15", zoomed[1], zoomed[2]), (after, zoomed)
    explorer.screenshot(path=str(ARTIFACTS / "04-timeline-zoomed-v5.15.png"))
    _no_error_shown(page)


def _exercise_questions_render_as_html(page) -> None:
    """The exercise widgets show their question as HTML: bold, a list, code, never the
    Markdown marks (``**``, backticks) as literal text. Chapter 04's exercise 2 is
    ``grant_order(seed=4)``: the policy in bold, six requests as list items, `mmu_lock` as code.

    Texts are read from the DOM (``textContent``): the lab renders cells off screen lazily, so
    the laid-out text of a cell scrolled away may be empty.
    """
    questions = page.locator(".kvmviz-question")
    questions.first.wait_for(state="attached", timeout=60_000)
    grant = questions.filter(has_text="at what time is each request granted")
    assert grant.count() == 1
    assert grant.locator("strong").first.text_content() == "qrwlock"
    assert grant.locator("strong").filter(has_text="Ties").count() == 1
    items = grant.locator("ul > li")
    assert items.count() == 6
    assert items.first.text_content().startswith("request 0: ")
    assert grant.locator("code").filter(has_text="mmu_lock").count() >= 1
    texts = [questions.nth(i).text_content() for i in range(questions.count())]
    assert len(texts) >= 2, texts  # exercises 1 and 2
    for text in texts:
        assert "**" not in text and "`" not in text, text
    grant.scroll_into_view_if_needed()
    grant.screenshot(path=str(ARTIFACTS / "04-exercise.png"))  # the question alone


def _play_the_queue_animation(page) -> None:
    """Press ▶ on the queue animation: the frames shown in the browser change, and keep
    changing. The rate is printed (measured, not asserted: this machine is shared)."""
    player = page.locator(".kvmviz-player").first
    player.scroll_into_view_if_needed()
    image = player.locator("img").first
    # Count frame changes inside the page (a MutationObserver), not by polling from here.
    image.evaluate(
        """img => { window.kvmvizFrames = 0;
                   new MutationObserver(() => window.kvmvizFrames++)
                       .observe(img, {attributes: true, attributeFilter: ['src']}); }"""
    )
    time.sleep(6.0)  # a reader looks at the first frame; the player renders the rest meanwhile
    player.locator("button").first.click()  # the Play button
    started = time.monotonic()
    time.sleep(4.0)
    frames = page.evaluate("window.kvmvizFrames")
    elapsed = time.monotonic() - started
    page.screenshot(path=str(ARTIFACTS / "04-animation.png"), full_page=False)
    print(f"queue animation: {frames} frames in {elapsed:.1f} s = {frames / elapsed:.1f} fps")
    assert frames > 10, "the animation did not play"


def _freeze(page, kernel: str, timeout_ms: int = 120_000) -> dict:
    """The numbers chapter 08's toggle shows for ``kernel`` (its headline's data attributes)."""
    headline = page.locator(f'.kvmviz-freeze[data-kernel="{kernel}"]')
    headline.wait_for(timeout=timeout_ms)
    return headline.evaluate("e => Object.assign({}, e.dataset)")


def test_freeze_toggle_in_jupyterlab(browser, lab):
    """Run chapter 08 in JupyterLab and flip its toggle from v6.7 to v6.8: the freeze shown
    shrinks, the futile reads vanish, and the timeline's picture is redrawn; no cell errors,
    nothing leaves localhost."""
    url, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    _, outside = keep_local(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/lab/tree/08-the-freeze-that-came-back.ipynb?token={token}", timeout=120_000)
    page.locator(".jp-NotebookPanel").first.wait_for(timeout=120_000)
    _run_all_cells(page, "08-the-freeze-that-came-back.ipynb")
    try:
        before = _freeze(page, "v6.7")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "08-failed.png"), full_page=True)
        raise
    picture = page.locator("img.kvmviz-freeze-timeline").first
    picture.scroll_into_view_if_needed()
    src = picture.get_attribute("src")
    page.screenshot(path=str(ARTIFACTS / "08-v6.7.png"), full_page=False)
    page.get_by_role("button", name="v6.8", exact=True).first.click()
    after = _freeze(page, "v6.8")
    assert before["preempt"] == after["preempt"] == "voluntary"
    assert float(after["freezeMs"]) < float(before["freezeMs"]), (before, after)
    assert int(after["futileReads"]) < int(before["futileReads"]) // 100
    deadline = time.monotonic() + 30
    while picture.get_attribute("src") == src:
        assert time.monotonic() < deadline, "the timeline was not redrawn"
        time.sleep(0.2)
    page.screenshot(path=str(ARTIFACTS / "08-v6.8.png"), full_page=False)
    _no_error_shown(page)
    assert not errors, errors
    assert not outside, f"requests left localhost: {outside}"
    context.close()
