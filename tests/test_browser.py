"""A real browser (Debian's headless Chromium through Playwright) against the app's in-process server (the same one
the app tests use: tests/appserver.py): every page, the picture that follows a visitor from page to page, the
hand-offs and links between pages, layout at two widths, and the keyboard."""

import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from appserver import _runs
from explorer.links import PAGES
from helpers import PHOTOS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for every browser test (each test gets its own fresh context)."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium):
    """``open_page(url, width, height)``: a page in a fresh context (its own cookies and storage) on ``url``, once
    its load event has answered (its last act: the visitor's id is stored in the browser); ``open_page.context``
    opens more pages in the same context (the same visitor)."""
    contexts = []

    def open_(url: str, width: int = 1400, height: int = 900, context=None):
        if context is None:
            contexts.append(chromium.new_context(viewport={"width": width, "height": height}))
            context = contexts[-1]
        page = context.new_page()
        page.goto(url, wait_until="domcontentloaded", timeout=60_000)
        settled(page)
        return page

    yield open_
    for context in contexts:
        context.close()


def settled(page) -> None:
    """The page's load event has answered: the visitor's id is in the browser's storage."""
    from explorer.admission import STORAGE_KEY

    page.wait_for_function(f"() => localStorage.getItem({STORAGE_KEY!r}) !== null", timeout=60_000)


EMPTY = '[aria-label="Empty value"]'  # Gradio's empty-output panel


def _empty_panels(page) -> list[str]:
    return page.evaluate(f"() => [...document.querySelectorAll('{EMPTY}')].filter(e => e.checkVisibility())"
                         ".map(e => e.closest('.block')?.id || e.className)")


def upload_photo(page, selector: str, photo) -> None:
    page.locator(f"{selector} input[type=file]").set_input_files(str(photo), timeout=30_000)
    page.locator(f"{selector} img").first.wait_for(timeout=30_000)


def _classify(page):
    upload_photo(page, "#classify-image", PHOTOS[0])
    page.locator("#classify-button").click()
    page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
    return "#classify-labels"


def _why(page):
    upload_photo(page, "#why-image", PHOTOS[1])
    page.locator("#why-explain").click()
    page.locator("#why-groups img").nth(5).wait_for(timeout=90_000)
    page.locator("#why-text").get_by_text("Why ").first.wait_for(timeout=90_000)
    return "#why-groups"


def _inside(page):
    upload_photo(page, "#inside-image", PHOTOS[0])
    page.locator("#inside-go").click()
    page.locator("#inside-grids img").nth(3).wait_for(timeout=90_000)
    return "#inside-grids"


def _finetune(page):
    for label, value in [("Training images", "64"), ("Epochs", "1"), ("Batch size", "16"), ("Image size (px)", "32")]:
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Start").click()
    page.locator("#finetune-curves .js-plotly-plot, #finetune-curves img").first.wait_for(timeout=120_000)
    return "#finetune-result"


def _architecture(page):
    page.get_by_role("button", name="Measure Table 1 from the model again").click()
    page.locator("#architecture-table").get_by_text("inception (4c)").wait_for(timeout=30_000)
    return "#architecture-table"


PRESS = {"classify": _classify, "why": _why, "inside": _inside, "finetune": _finetune, "architecture": _architecture}


@pytest.mark.parametrize("view", list(PAGES))
def test_each_page_opens_at_its_path_and_its_answer_is_on_its_first_screen(server, open_page, view):
    """At 1400x900: the page opens at its own path with the navigation bar and no empty output panel, and after
    pressing its main button the answer lies inside the window, the page unscrolled."""
    page = open_page(server + PAGES[view])
    assert page.url.rstrip("/") == (server + PAGES[view]).rstrip("/")
    assert page.get_by_role("link", name="Why?").first.is_visible()  # the navigation bar
    assert _empty_panels(page) == [], f"{view}: empty panels visible when it opens"
    answer = page.locator(PRESS[view](page)).first
    box = answer.bounding_box()
    assert page.evaluate("window.scrollY") == 0, f"{view}: the page scrolled"
    assert box is not None and box["height"] > 40, f"{view}: the answer is not shown"
    assert 0 <= box["y"] and box["y"] + min(box["height"], 200) <= 900, f"{view}: the answer is below the window"
    assert "Error" not in answer.inner_text()
    assert page.evaluate(BROKEN_WORDS) == [], f"{view}: words broken in the middle"


# Every word of a table's cells that the browser drew on more than one line ("grou / p").
BROKEN_WORDS = """() => [...document.querySelectorAll('.prose th, .prose td')].flatMap(cell => {
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), broken = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const word of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      if (new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1) broken.push(word[0]);
    }
  }
  return broken;
})"""


def _picture_on(page, selector: str) -> bytes:
    """The bytes of the picture an image input shows."""
    src = page.locator(f"{selector} img").first.get_attribute("src")
    return page.request.get(src).body()


def test_a_picture_uploaded_on_classify_is_there_on_why_from_the_navigation_bar(server, open_page):
    page = open_page(server)
    upload_photo(page, "#classify-image", PHOTOS[2])
    page.locator("#classify-why").wait_for()
    page.wait_for_function("() => document.querySelector('#classify-why').getAttribute('href').includes('picture=')",
                           timeout=30_000)  # the upload is kept on the server: the hand-off names its token
    page.get_by_role("link", name="Why?").first.click()
    page.wait_for_url(re.compile(r".*/why$"), timeout=30_000)
    settled(page)
    page.locator("#why-image img").first.wait_for(timeout=30_000)
    assert _picture_on(page, "#why-image") == PHOTOS[2].read_bytes()


def test_a_channel_tile_of_why_opens_its_atlas_view_on_inside_with_the_same_picture(server, open_page):
    """Explain a photo on /why; a click on a channel's tile lands on /inside on that channel's atlas view, where it
    fires on the same picture."""
    page = open_page(server + PAGES["why"])
    upload_photo(page, "#why-image", PHOTOS[1])
    page.locator("#why-explain").click()
    page.locator("#why-text").get_by_text("Why ").first.wait_for(timeout=90_000)
    page.get_by_role("tab", name="Channels").click()
    branch, channel = re.search(r"(1x1|3x3|5x5|pool) ch (\d+):", page.locator("#why-channels").inner_text()).groups()
    page.locator("#why-channels img").first.click()
    page.wait_for_url(re.compile(r".*/inside\?.*picture="), timeout=30_000)
    link = page.locator("#atlas-link")
    link.get_by_text(f"channel={channel}").wait_for(timeout=90_000)
    assert f"module=inception4d&branch={branch}&channel={channel}" in link.inner_text()
    assert _picture_on(page, "#inside-image") == PHOTOS[1].read_bytes()
    page.locator("#atlas-where img").wait_for(timeout=60_000)  # where the channel fires on that picture


@pytest.mark.parametrize("landing", ["", "finetune"])
def test_an_old_tab_link_opens_its_channel_whatever_page_it_lands_on(server, open_page, landing):
    """A ``?tab=inside&...&channel=N`` link (what a Space's page passes on: it lands on ``/``) opens channel N's
    atlas view on /inside, from the home page and from another page's path alike."""
    page = open_page(f"{server}{landing}?tab=inside&module=inception4b&branch=5x5&channel=3")
    assert re.search(r"/inside\?tab=inside&module=inception4b&branch=5x5&channel=3$", page.url), page.url
    page.locator("#atlas-link").get_by_text("channel=3").wait_for(timeout=90_000)
    assert page.locator("#inside-module input").input_value() == "inception4b"
    assert page.locator("#atlas-branch input[value='5x5']").is_checked()
    page.locator("#atlas-vis img").wait_for(timeout=30_000)
    assert "inception4b · 5x5 · channel 3" in page.locator("#atlas").first.inner_text()


def test_a_forged_picture_token_opens_the_page_without_a_picture_and_says_so(server, open_page):
    forged = "6b000000-" + "A" * 32  # a token's form, never issued
    page = open_page(f"{server}{PAGES['inside']}?picture={forged}")
    page.locator("#status").get_by_text("no longer on this server").wait_for(timeout=30_000)
    assert page.locator("#inside-image img").count() == 0
    assert "Error" not in page.locator("body").inner_text()


def test_a_grid_link_opens_every_channel_a_click_opens_one_and_its_circuit_walks_down(server, open_page):
    page = open_page(server + "?tab=inside&module=inception4b&branch=5x5&grid=1")
    page.locator("#grid-link").get_by_text("grid=1").wait_for(timeout=90_000)
    tiles = page.locator("#atlas-grid img")
    assert tiles.count() == 64  # inception4b's 5x5 branch: every channel
    tiles.nth(3).click()
    link = page.locator("#atlas-link")
    link.get_by_text("channel=3").wait_for(timeout=90_000)
    assert "?tab=inside&module=inception4b&branch=5x5&channel=3" in link.inner_text()
    assert page.locator("#atlas-channel input").input_value() == "3"
    page.locator("#atlas-vis img").wait_for(timeout=30_000)
    # The same channel's circuit, then one step down: an input's own circuit, one click away.
    page.get_by_role("tab", name="Circuit").click()
    page.locator("#circuit-show").click()
    note = page.locator("#circuit-note")
    note.get_by_text("inception4b · 5x5 · channel 3").wait_for(timeout=90_000)
    assert page.locator("#circuit-gallery img").count() == 2 + 2 * 8  # the diagram, the channel, 8 inputs a sign
    below = note.get_by_role("link", name="its circuit").first
    target = below.get_attribute("href")
    assert "module=inception4a" in target and target.endswith("&view=circuit")
    with page.context.expect_page(timeout=30_000) as opened:  # Gradio opens a Markdown link in a new tab
        below.click()
    walked = opened.value
    walked.wait_for_url(re.compile(r".*module=inception4a.*view=circuit"), timeout=30_000)
    branch, channel = re.search(r"branch=(\w+)&channel=(\d+)", target).groups()
    walked.locator("#circuit-note").get_by_text(f"inception4a · {branch} · channel {channel}").wait_for(timeout=90_000)
    assert "Error" not in walked.locator("body").inner_text()


def test_a_link_with_markup_in_it_shows_no_link_of_the_attacker(server, open_page):
    from urllib.parse import quote

    injection = '<a href="https://evil.example/x">Session expired: sign in</a>'
    page = open_page(server + "?tab=inside&channel=2&model=" + quote(injection))
    page.locator("#atlas-link").get_by_text("channel=2").wait_for(timeout=90_000)  # the view opened
    assert page.locator("a[href*='evil.example']").count() == 0
    assert "Session expired" not in page.locator("body").inner_text()
    assert page.locator("#inside-model input").input_value() == "ImageNet GoogLeNet"  # not the visitor's text


def test_finished_run_checkpoint_downloads(server, app_env, tmp_path, open_page):
    page = open_page(server + PAGES["finetune"])
    button = page.get_by_role("button", name="Download checkpoint")
    assert button.is_disabled()  # no zip is made for a page view
    page.get_by_role("button", name="Prepare checkpoint download").click()
    page.wait_for_function("() => [...document.querySelectorAll('button')].some("
                           "b => b.textContent.includes('Download checkpoint') && !b.disabled)", timeout=30_000)
    with page.expect_download(timeout=30_000) as download:
        button.click()
    target = tmp_path / download.value.suggested_filename
    download.value.save_as(target)
    run = target.stem  # the newest finished run, which the page chooses
    assert target.suffix == ".zip" and (_runs(app_env) / run / "model.safetensors").is_file()
    with zipfile.ZipFile(target) as z:
        assert {f"{run}/config.json", f"{run}/model.safetensors"} <= set(z.namelist())
    held = [Path(app_env["GRADIO_TEMP_DIR"]), _runs(app_env)]
    copies = [p for folder in held for p in folder.rglob(target.name)]
    assert copies == [held[0] / "checkpoints" / target.name]  # made where Gradio serves it: no second copy


OUTSIDE = """() => [...document.querySelectorAll('button, input, textarea, a, [role=slider], img')]
    .filter(e => e.checkVisibility() && e.tabIndex !== -1 && !e.closest('[role=tablist]'))
    .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -0.5 || r.right > innerWidth + 0.5); })
    .map(e => e.id || e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30) || e.tagName)"""


def test_no_page_is_wider_than_a_phone(server, open_page):
    """At 390 px wide no page scrolls sideways, and no control or picture sticks out of the window."""
    page = open_page(server, width=390, height=844)
    for view, path in PAGES.items():
        if view != "classify":
            page.goto(server + path, wait_until="domcontentloaded")
            settled(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{view} is {width} px wide"
        assert page.evaluate(OUTSIDE) == [], f"{view}: controls outside the window"


def test_classify_with_the_keyboard_alone(server, open_page):
    """Tab reaches the upload zone (Enter opens the file chooser) and the Classify button (Enter presses it)."""
    page = open_page(server)
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))

    def tab_to(focused: str) -> None:
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate(f"() => !!document.activeElement?.closest('{focused}')"):
                return
        raise AssertionError(f"Tab never reaches {focused}")

    tab_to("#classify-image button.upload-container")  # Gradio's drop zone
    page.keyboard.press("Enter")
    page.wait_for_function("() => true")  # let the chooser event arrive
    for _ in range(100):
        if choosers:
            break
        page.wait_for_timeout(100)
    assert choosers, "Enter on the drop zone opened no file chooser"
    choosers[0].set_files(str(PHOTOS[0]))
    page.locator("#classify-image img").first.wait_for(timeout=30_000)
    tab_to("#classify-button")
    page.keyboard.press("Enter")
    page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
