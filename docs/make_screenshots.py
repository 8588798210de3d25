"""Screenshots of every page for the docs (headless Chromium via Playwright).

    python docs/make_screenshots.py [WEIGHTS] [--why | --no-why]

``WEIGHTS``: a Hub repo id or a folder (real predictions; the Hub must be reachable for a repo id); without it, the
tests' realistic random weights (what a machine without network can make: the labels are not ImageNet answers, and
docs/pages.md says so under each picture that depends on them). It starts the app with a small generated CIFAR-10
stand-in. ``--why``: only the "Why?" page's. Each picture is a 1400x900 first screen, but phone.png: a 390 px wide
page, whole.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_browser import upload_photo  # noqa: E402  (the browser tests' own step: a photo into an image input)


def main() -> None:
    from playwright.sync_api import sync_playwright
    from helpers import demo_app
    from test_browser import CHROMIUM, CHROMIUM_FLAGS

    out = ROOT / "docs" / "screenshots"
    tmp = Path(tempfile.mkdtemp())
    only_why = "--why" in sys.argv
    named = [a for a in sys.argv[1:] if not a.startswith("--")]
    with demo_app(tmp, named[0] if named else None, GOOGLENET_ATLAS_CACHE=str(tmp / "atlas")) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport=SCREEN)  # each picture is a first screen, as a visitor sees it
            if "--no-why" not in sys.argv:
                page.goto(url + "why", wait_until="domcontentloaded")
                why(page, out)
            if not only_why:
                pages(page, url, out)
                phone(browser, url, out)
            browser.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))


SCREEN = {"width": 1400, "height": 900}


def why(page, out: Path) -> None:
    """The "Why?" page on the cat photo: the groups and the explanation; the groups' pictures as they finish; one
    channel accentuated."""
    from helpers import PHOTOS

    upload_photo(page, "#why-image", PHOTOS[1])
    page.locator("#why-explain").click()
    page.locator("#why-text").get_by_text("Why ").first.wait_for(timeout=90_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "why.png"))
    page.get_by_role("tab", name="Group pictures").click()
    page.locator("#why-group-pictures img").nth(5).wait_for(timeout=600_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "why-groups.png"))


def pages(page, url: str, out: Path) -> None:
    """Classify, Inside Inception (its branches, then every channel of a branch), then Fine-tune and the rest."""
    from helpers import PHOTOS

    page.goto(url, wait_until="domcontentloaded")
    if "--from-finetune" in sys.argv:
        return finetune_and_after(page, url, out)
    upload_photo(page, "#classify-image", PHOTOS[1])
    page.locator("#classify-button").click()
    page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "classify.png"))

    page.goto(url + "inside", wait_until="domcontentloaded")  # the picture follows: it is uploaded here again
    upload_photo(page, "#inside-image", PHOTOS[1])
    page.locator("#inside-go").click()
    page.locator("#inside-grids img").nth(3).wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "inside.png"))

    # Every channel of a branch with no atlas: each tile is its channel's strongest dataset example.
    page.get_by_role("tab", name="Every channel").click()
    page.locator("#grid-show").click()
    page.locator("#grid-link").get_by_text("grid=1").wait_for(timeout=180_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(out / "grid.png"))
    finetune_and_after(page, url, out)


def finetune_and_after(page, url: str, out: Path) -> None:
    from helpers import PHOTOS

    page.goto(url + "finetune", wait_until="domcontentloaded")
    page.get_by_label("Training images").fill("400")
    page.get_by_label("Epochs").fill("3")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("finished: best validation accuracy").wait_for(timeout=180_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "finetune.png"))
    page.get_by_role("tab", name="Mistakes").click()
    page.get_by_role("button", name="Show what the chosen run gets wrong").click()
    page.locator("#report-result").get_by_text("Test accuracy").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "finetune-report.png"))

    # A full fine-tune watched live: the drift map and the probe picture after every epoch.
    page.get_by_label("Freeze backbone").uncheck()
    page.get_by_role("tab", name="Probe").click()
    upload_photo(page, "#probe-image", PHOTOS[1])
    page.get_by_role("button", name="Start").click()
    page.get_by_role("tab", name="Run").click()
    finished = page.get_by_text("finished: best validation accuracy")
    finished.wait_for(state="detached", timeout=60_000)  # the first run's line gives way to this one's
    finished.wait_for(timeout=300_000)
    page.get_by_role("tab", name="Probe").click()
    page.wait_for_timeout(2500)
    page.screenshot(path=str(out / "finetune-live.png"))

    page.goto(url + "architecture", wait_until="domcontentloaded")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "architecture.png"))

    # A shared view's URL opens the channel atlas (128 steps seen at 224 px: about 9 s on 2 CPU cores).
    page.goto(url + "?tab=inside&module=inception4c&branch=3x3&channel=17", wait_until="domcontentloaded")
    page.locator("#atlas-link").get_by_text("channel=17").wait_for(timeout=180_000)
    page.wait_for_timeout(4000)  # the gallery's thumbnails load lazily
    page.screenshot(path=str(out / "atlas.png"))


def phone(browser, url: str, out: Path) -> None:
    """The Classify page on a 390 px wide phone, after classifying: the whole page, top to bottom."""
    from helpers import PHOTOS

    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url, wait_until="domcontentloaded")
    upload_photo(page, "#classify-image", PHOTOS[0])
    page.locator("#classify-button").click()
    page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "phone.png"), full_page=True)
    page.close()


if __name__ == "__main__":
    main()
