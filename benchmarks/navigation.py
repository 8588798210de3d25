"""Moving between pages: from a click in the navigation bar to the new page's main button being enabled, and to its
load event having answered (the visitor's id in the browser), beside a minimal two-page Gradio app in the same run.

    python benchmarks/navigation.py [--url URL] [--runs 5]

Without ``--url`` it starts the app as the README's screenshots do (realistic random weights, a small CIFAR-10
stand-in, offline). Headless Chromium through Playwright, as the browser tests start it. Each figure
is the median of ``--runs`` moves, each in a fresh browser context (nothing cached but what Chromium's disk cache
keeps, as for a visitor moving between pages). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

GOAL_S = 1.5
# (from, to, the navigation bar's link, the target page's main button)
MOVES = [("", "why", "Why?", "#why-explain"), ("", "inside", "Inside Inception", "#inside-go"),
         ("why", "inside", "Inside Inception", "#inside-go"), ("inside", "finetune", "Fine-tune", "#finetune-start"),
         ("finetune", "", "Classify", "#classify-button"), ("", "architecture", "Architecture", "#architecture-table")]
MINIMAL_APP = """
import gradio as gr
with gr.Blocks() as demo:
    gr.Navbar()
    image = gr.Image(type="filepath")
    gr.Button("Go", elem_id="one").click(lambda x: x, image, image)
with demo.route("Second", "/second"):
    gr.Navbar()
    image = gr.Image(type="filepath")
    gr.Button("Go", elem_id="two").click(lambda x: x, image, image)
demo.launch()
"""


def move(browser, base: str, start: str, target: str, link: str, button: str, settled: str | None) -> dict[str, float]:
    """Seconds from the click on ``link`` to ``button`` enabled, and to the page's load event answered."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(base + start, wait_until="load", timeout=60_000)
        if settled:
            page.wait_for_function(settled, timeout=60_000)
        page.get_by_role("link", name=link).first.wait_for(timeout=30_000)
        t = time.perf_counter()
        page.get_by_role("link", name=link).first.click()
        page.wait_for_url(lambda url: url.rstrip("/").endswith("/" + target) if target else url == base, timeout=30_000)
        page.wait_for_function(f"() => {{ const b = document.querySelector({button!r}); "
                               "return b && b.checkVisibility() && !b.disabled && !b.closest('[disabled]'); }",
                               timeout=60_000, polling=10)
        enabled = time.perf_counter() - t
        if settled:
            page.wait_for_function(settled, timeout=60_000, polling=10)
        return {"enabled_s": enabled, "settled_s": time.perf_counter() - t}
    finally:
        context.close()


def median_move(browser, base, start, target, link, button, settled, runs) -> dict[str, float]:
    results = [move(browser, base, start, target, link, button, settled) for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def main() -> None:
    from playwright.sync_api import sync_playwright

    from explorer.admission import STORAGE_KEY
    from helpers import demo_app, running_app
    from test_browser import CHROMIUM, CHROMIUM_FLAGS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app already running (default: start one)")
    parser.add_argument("--runs", type=int, default=5, help="moves per pair of pages (the median is shown)")
    args = parser.parse_args()
    settled = f"() => localStorage.getItem({STORAGE_KEY!r}) !== null"
    rows: dict[str, dict[str, float]] = {}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        (Path(tmp) / "minimal.py").write_text(MINIMAL_APP)
        with running_app(script=str(Path(tmp) / "minimal.py")) as url:
            rows["minimal two-page Gradio app, / → /second"] = median_move(browser, url, "", "second", "Second", "#two",
                                                                          None, args.runs)

        with demo_app(Path(tmp), url=args.url) as url:
            for start, target, link, button in MOVES:
                rows[f"/{start} → /{target}"] = median_move(browser, url, start, target, link, button, settled,
                                                            args.runs)
        browser.close()
    base = rows["minimal two-page Gradio app, / → /second"]["enabled_s"]
    print("| move | main button enabled (s) | load event answered (s) | × the minimal app |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        settled_s = f"{r['settled_s']:.2f}" if "settled_s" in r else ""
        print(f"| {name} | {r['enabled_s']:.2f} | {settled_s} | {r['enabled_s'] / base:.1f} |")
    worst = max(r.get("settled_s", r["enabled_s"]) for name, r in rows.items() if name.startswith("/"))
    print(f"slowest move {worst:.2f} s: " + ("goal met" if worst <= GOAL_S else f"over the {GOAL_S} s goal"))
    print(json.dumps({"navigation": rows, "goal_s": GOAL_S}))


if __name__ == "__main__":
    main()
