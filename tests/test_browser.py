"""A real browser (Debian's headless Chromium through Playwright) uploads a photo and reads five labels."""

import os
import shutil
from pathlib import Path
from contextlib import contextmanager

import pytest

from helpers import PHOTOS, quick_config, running_app, write_realistic_weights

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def browser_base(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def page_server(browser_base, cifar_dir):
    _need_chromium()  # before training and starting a server for nothing
    from training import train

    base = browser_base
    train(quick_config(cifar_dir, base / "runs" / "finished-run", epochs=1, train_size=200))
    with running_app({"GOOGLENET_WEIGHTS": str(write_realistic_weights(base / "weights")),
                      "CIFAR10_DIR": str(cifar_dir), "RUNS_DIR": str(base / "runs"), "HF_HUB_OFFLINE": "1",
                      "CUDA_VISIBLE_DEVICES": "", "GOOGLENET_ATLAS_STEPS": "8", "GOOGLENET_ATLAS_SIZE": "32",
                      "GOOGLENET_ATLAS_PER_CLASS": "3", "GRADIO_TEMP_DIR": str(base / "gradio")}) as url:
        yield url


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


def test_upload_classify_and_see_five_labels(page_server):
    with _page(page_server) as page:
        page.locator("#classify-image input[type=file]").set_input_files(str(PHOTOS[0]), timeout=30_000)
        page.wait_for_timeout(500)
        page.locator("#classify-button").click()
        page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
        percentages = page.locator("#classify-labels").get_by_text("%")
        count = percentages.count()
        assert count == 5, f"expected five labels, saw {count}"
        assert "Error" not in page.locator("#classify-labels").inner_text()


def test_finished_run_checkpoint_downloads(page_server, browser_base, tmp_path):
    import zipfile

    with _page(page_server) as page:
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
    assert target.name == "finished-run.zip"
    with zipfile.ZipFile(target) as z:
        assert {"finished-run/config.json", "finished-run/model.safetensors"} <= set(z.namelist())
    zips = [p.relative_to(browser_base) for p in browser_base.rglob("*.zip")]
    assert zips == [Path("gradio/checkpoints/finished-run.zip")]  # made where Gradio serves it: no second copy


def test_a_view_url_opens_that_channel_of_the_atlas(page_server):
    with _page(page_server + "?tab=inside&module=inception4b&branch=5x5&channel=3") as page:
        link = page.locator("#atlas-link")
        link.get_by_text("channel=3").wait_for(timeout=90_000)
        assert "?tab=inside&module=inception4b&branch=5x5&channel=3" in link.inner_text()
        assert page.get_by_role("tab", name="Inside Inception").get_attribute("aria-selected") == "true"
        assert page.locator("#inside-module input").input_value() == "inception4b"
        assert page.locator("#atlas-channel input").input_value() == "3"
        assert page.locator("#atlas-branch input[value='5x5']").is_checked()
        page.locator("#atlas-vis img").wait_for(timeout=30_000)
        assert "inception4b · 5x5 · channel 3" in page.locator("#atlas").first.inner_text()


def test_a_link_with_markup_in_it_shows_no_link_of_the_attacker(page_server):
    from urllib.parse import quote

    injection = '<a href="https://evil.example/x">Session expired: sign in</a>'
    with _page(page_server + "?tab=inside&channel=2&model=" + quote(injection)) as page:
        page.locator("#atlas-link").get_by_text("channel=2").wait_for(timeout=90_000)  # the view opened
        assert page.locator("a[href*='evil.example']").count() == 0
        assert "Session expired" not in page.locator("body").inner_text()
        assert page.locator("#inside-model input").input_value() == "ImageNet GoogLeNet"  # not the visitor's text
