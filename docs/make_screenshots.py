"""Screenshots of each tab for the README (headless Chromium via Playwright).

    python docs/make_screenshots.py [--why]  # starts the app with realistic random weights and a small dataset;
                                             # --why: only the "Why?" tab's
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    from playwright.sync_api import sync_playwright
    from data.make_cifar import make_dataset
    from helpers import PHOTOS, running_app, write_realistic_weights
    from test_browser import CHROMIUM, CHROMIUM_FLAGS

    out = ROOT / "docs" / "screenshots"
    tmp = Path(tempfile.mkdtemp())
    only_why = "--why" in sys.argv
    named = [a for a in sys.argv[1:] if not a.startswith("--")]
    weights = named[0] if named else None
    if weights is None:
        weights = str(write_realistic_weights(tmp / "weights"))
    make_dataset(tmp / "cifar", per_class_train=60, per_class_test=30)
    with running_app({"GOOGLENET_WEIGHTS": weights, "CIFAR10_DIR": str(tmp / "cifar"),
                      "RUNS_DIR": str(tmp / "runs"), "HF_HUB_OFFLINE": "1"}) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            why(page, url, out)
            if only_why:
                browser.close()
                return
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#classify-image input[type=file]").set_input_files(str(PHOTOS[1]))
            page.wait_for_timeout(500)
            page.locator("#classify-button").click()
            page.locator("#classify-labels").get_by_text("%").first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "classify.png"), full_page=True)

            page.get_by_role("tab", name="Inside Inception").click()
            page.locator("#inside-image input[type=file]").set_input_files(str(PHOTOS[1]))
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Look inside").click()
            page.get_by_text("Grad-CAM at inception4c").wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "inside.png"), full_page=True)

            page.get_by_role("tab", name="Fine-tune on CIFAR-10").click()
            page.get_by_label("Training images").fill("400")
            page.get_by_label("Epochs").fill("3")
            page.get_by_role("button", name="Start").click()
            page.get_by_text("finished: best validation accuracy").wait_for(timeout=180_000)
            page.wait_for_timeout(1500)
            page.get_by_text("What the chosen run gets wrong").click()
            page.get_by_role("button", name="Show report").click()
            page.get_by_text("Test accuracy").wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "finetune.png"), full_page=True)

            # A full fine-tune watched live: the drift map and the probe picture after every epoch.
            page.get_by_label("Freeze backbone").uncheck()
            page.get_by_text("Probe picture: watch the run see it").click()
            page.locator("#probe-image input[type=file]").set_input_files(str(PHOTOS[1]))
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Start").click()
            finished = page.get_by_text("finished: best validation accuracy")
            finished.wait_for(state="detached", timeout=60_000)  # the first run's line gives way to this one's
            finished.wait_for(timeout=300_000)
            page.wait_for_timeout(2500)
            live = page.locator("#finetune-live")
            live.scroll_into_view_if_needed()
            page.screenshot(path=str(out / "finetune-live.png"), clip={**live.bounding_box(), "height": 820})

            page.get_by_role("tab", name="Architecture").click()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "architecture.png"), full_page=True)

            # A shared view's URL opens the channel atlas (128 steps seen at 224 px: about 9 s on 2 CPU cores).
            page.goto(url + "?tab=inside&module=inception4c&branch=3x3&channel=17", wait_until="domcontentloaded")
            page.locator("#atlas-link").get_by_text("channel=17").wait_for(timeout=180_000)
            page.locator("#atlas").first.scroll_into_view_if_needed()
            page.wait_for_timeout(4000)  # the gallery's thumbnails load lazily
            page.locator("#atlas").first.screenshot(path=str(out / "atlas.png"))

            # The branch's grid, ordered by the cat photo (Inside Inception's picture).
            page.locator("#inside-image input[type=file]").set_input_files(str(PHOTOS[1]))
            page.wait_for_timeout(1000)
            page.locator("#grid-mine").click()
            page.locator("#grid-link").get_by_text("grid=1").wait_for(timeout=120_000)
            page.locator("#atlas-grid").scroll_into_view_if_needed()
            page.wait_for_timeout(3000)
            page.locator("#atlas-grid").screenshot(path=str(out / "grid.png"))
            browser.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))


def why(page, url: str, out: Path) -> None:
    """The "Why?" tab on the cat photo: the groups, the explanation, the channels, the groups' pictures as they
    finish, and one channel accentuated."""
    from helpers import PHOTOS

    page.get_by_role("tab", name="Why?").click()
    page.locator("#why-image input[type=file]").set_input_files(str(PHOTOS[1]))
    page.wait_for_timeout(500)
    page.locator("#why-explain").click()
    page.locator("#why-text").get_by_text("Why ").first.wait_for(timeout=90_000)
    page.locator("#why-group-pictures img").nth(5).wait_for(timeout=600_000)
    page.get_by_text("Feature accentuation").click()
    page.locator("#why-branch").get_by_text("5x5").click()
    page.locator("#why-channel input").fill("3")
    page.locator("#why-accentuate").click()
    page.locator("#why-accentuated img").wait_for(timeout=120_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(out / "why.png"), full_page=True)


if __name__ == "__main__":
    main()
