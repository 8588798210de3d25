"""A real browser (Debian's headless Chromium through Playwright) against the app's in-process server (the same one
the app tests use: tests/appserver.py)."""

import os
import re
import shutil
from pathlib import Path
from contextlib import contextmanager

import pytest

from appserver import _runs
from helpers import PHOTOS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")


@contextmanager
def _page(url: str, wait_until: str = "domcontentloaded"):
    """A fresh headless Chromium page on ``url``; closed however the test ends."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until=wait_until, timeout=60_000)
            yield page
        finally:
            browser.close()


def test_upload_classify_and_see_five_labels(server):
    with _page(server) as page:
        page.locator("#classify-image input[type=file]").set_input_files(str(PHOTOS[0]), timeout=30_000)
        page.wait_for_timeout(500)
        page.locator("#classify-button").click()
        page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
        percentages = page.locator("#classify-labels").get_by_text("%")
        count = percentages.count()
        assert count == 5, f"expected five labels, saw {count}"
        assert "Error" not in page.locator("#classify-labels").inner_text()


def test_finished_run_checkpoint_downloads(server, app_env, tmp_path):
    import zipfile

    with _page(server) as page:
        page.get_by_role("tab", name="Fine-tune on CIFAR-10").click()
        button = page.get_by_role("button", name="Download checkpoint")
        page.wait_for_timeout(1000)
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


def test_a_grid_link_opens_every_channel_and_a_click_opens_one(server):
    with _page(server + "?tab=inside&module=inception4b&branch=5x5&grid=1") as page:
        page.locator("#grid-link").get_by_text("grid=1").wait_for(timeout=90_000)
        tiles = page.locator("#atlas-grid img")
        assert tiles.count() == 64  # inception4b's 5x5 branch: every channel
        tiles.nth(3).click()
        link = page.locator("#atlas-link")
        link.get_by_text("channel=3").wait_for(timeout=90_000)
        assert "?tab=inside&module=inception4b&branch=5x5&channel=3" in link.inner_text()
        assert page.get_by_role("tab", name="Inside Inception").get_attribute("aria-selected") == "true"
        assert page.locator("#inside-module input").input_value() == "inception4b"
        assert page.locator("#atlas-channel input").input_value() == "3"
        assert page.locator("#atlas-branch input[value='5x5']").is_checked()
        page.locator("#atlas-vis img").wait_for(timeout=30_000)
        assert "inception4b · 5x5 · channel 3" in page.locator("#atlas").first.inner_text()


def test_a_link_with_markup_in_it_shows_no_link_of_the_attacker(server):
    from urllib.parse import quote

    injection = '<a href="https://evil.example/x">Session expired: sign in</a>'
    with _page(server + "?tab=inside&channel=2&model=" + quote(injection)) as page:
        page.locator("#atlas-link").get_by_text("channel=2").wait_for(timeout=90_000)  # the view opened
        assert page.locator("a[href*='evil.example']").count() == 0
        assert "Session expired" not in page.locator("body").inner_text()
        assert page.locator("#inside-model input").input_value() == "ImageNet GoogLeNet"  # not the visitor's text


def test_why_explains_an_example_photo_and_a_channel_opens_in_the_atlas(server):
    """The "Why?" tab on an example photo: the groups' masks and the explanation appear, then each group's picture;
    a click on a channel's tile opens that channel's atlas view on the Inside tab, with the same picture."""
    with _page(server + "?tab=why") as page:
        page.get_by_role("tab", name="Why?").click()
        page.locator("#why-image input[type=file]").set_input_files(str(PHOTOS[1]), timeout=30_000)
        page.wait_for_timeout(500)
        page.locator("#why-explain").click()
        page.locator("#why-text").get_by_text("Why ").first.wait_for(timeout=90_000)
        assert page.locator("#why-groups img").count() == 6
        page.locator("#why-group-pictures img").nth(5).wait_for(timeout=90_000)  # each group's picture, streamed in
        tiles = page.locator("#why-channels img")
        assert tiles.count() > 0
        branch, channel = re.search(r"(1x1|3x3|5x5|pool) ch (\d+):", page.locator("#why-channels").inner_text()).groups()
        tiles.first.click()
        link = page.locator("#atlas-link")
        link.get_by_text(f"channel={channel}").wait_for(timeout=90_000)
        assert f"module=inception4d&branch={branch}&channel={channel}" in link.inner_text()
        assert page.get_by_role("tab", name="Inside Inception").get_attribute("aria-selected") == "true"
        page.locator("#atlas-vis img").wait_for(timeout=30_000)
