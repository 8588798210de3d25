"""Lighthouse (desktop preset) on every page of the app, beside a minimal Gradio app (one image input, one button:
Gradio's own floor), in the same run and the same Chromium.

    python benchmarks/lighthouse.py [--url URL] [--runs 3]

The runs go in rounds: each round measures the minimal app, then every page, so the machine's speed (which moves
Gradio's own floor from about 10 to about 400 ms of blocking time within a day on a shared 2-core machine) weighs on
both alike. Besides each figure's median, the table gives each page's blocking time over the minimal app's in the
same round (the median of those differences): the part of the figure that is the page's own.

Without ``--url`` it starts the app as the README's screenshots do (realistic random weights, a small CIFAR-10
stand-in, offline). Lighthouse is the npm package: ``LIGHTHOUSE`` names its command, else ``npx --yes
lighthouse@13``; Chromium is Debian's (``CHROME_PATH``, default /usr/bin/chromium). Each figure is the median of
``--runs`` runs. Not part of the test suite: it needs npm.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from explorer.links import PAGES  # noqa: E402 (after the path)

MINIMAL = "minimal Gradio app"
GOALS = {"performance": 90, "accessibility": 95, "best-practices": 100}
MINIMAL_APP = """
import gradio as gr
with gr.Blocks() as demo:
    image = gr.Image(type="filepath")
    gr.Button("Go").click(lambda x: x, image, image)
demo.launch()
"""


def lighthouse(url: str) -> dict[str, Any]:
    """One Lighthouse run: the three category scores (0-100), CLS and total blocking time (ms)."""
    command = shlex.split(os.environ.get("LIGHTHOUSE", "npx --yes lighthouse@13"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        subprocess.run([*command, url, "--preset=desktop", "--output=json", f"--output-path={out}", "--quiet",
                        "--only-categories=performance,accessibility,best-practices",
                        "--chrome-flags=--headless=new --no-sandbox --disable-gpu"],
                       check=True, env={**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")})
        report = json.loads(out.read_text())
    scores = {k: round(100 * report["categories"][k]["score"]) for k in GOALS}
    audits = report["audits"]
    failed = sorted(a for a, v in audits.items() if v.get("score") is not None and v["score"] < 1
                    and v.get("scoreDisplayMode") == "binary")
    return {**scores, "cls": audits["cumulative-layout-shift"]["numericValue"],
            "tbt": audits["total-blocking-time"]["numericValue"], "failed": failed}


def in_rounds(urls: dict[str, str], runs: int) -> dict[str, dict[str, Any]]:
    """``runs`` rounds, each every URL in order (the minimal app first); per URL, the median of each figure and
    ``over_minimal``: the median, over rounds, of its blocking time less the minimal app's in the same round."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    for _ in range(runs):
        for name, url in urls.items():
            results[name].append(lighthouse(url))
    floor = [r["tbt"] for r in results[MINIMAL]]
    rows = {}
    for name, runs_of in results.items():
        merged: dict[str, Any] = {k: statistics.median(r[k] for r in runs_of) for k in [*GOALS, "cls", "tbt"]}
        merged["over_minimal"] = statistics.median(r["tbt"] - f for r, f in zip(runs_of, floor))
        merged["failed"] = sorted({a for r in runs_of for a in r["failed"]})
        rows[name] = merged
    return rows


def table(rows: dict[str, dict[str, Any]]) -> None:
    print("| page | performance | accessibility | best practices | CLS | TBT (ms) | TBT over the minimal app (ms) |")
    print("|---|---|---|---|---|---|---|")
    for page, r in rows.items():
        print(f"| {page} | {r['performance']:.0f} | {r['accessibility']:.0f} | {r['best-practices']:.0f} | "
              f"{r['cls']:.3f} | {r['tbt']:.0f} | {r['over_minimal']:.0f} |")
    for page, r in rows.items():
        if r["failed"]:
            print(f"{page}: failed audits: {', '.join(r['failed'])}")


def main() -> None:
    from helpers import demo_app, running_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app already running (default: start one)")
    parser.add_argument("--runs", type=int, default=3, help="Lighthouse runs per page (the median is shown)")
    parser.add_argument("--pages", nargs="*", default=list(PAGES), choices=list(PAGES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "minimal.py").write_text(MINIMAL_APP)
        with running_app(script=str(Path(tmp) / "minimal.py")) as minimal, demo_app(Path(tmp), url=args.url) as url:
            rows = in_rounds({MINIMAL: minimal} | {f"/{PAGES[t]}": f"{url}{PAGES[t]}" for t in args.pages},
                             args.runs)
    table(rows)
    misses = [f"{page} {k} {r[k]:.0f} < {goal}" for page, r in rows.items() if page.startswith("/")
              for k, goal in GOALS.items() if r[k] < goal]
    misses += [f"{page} CLS {r['cls']:.3f} > 0.1" for page, r in rows.items() if r["cls"] > 0.1]
    misses += [f"{page} TBT {r['tbt']:.0f} ms > 200" for page, r in rows.items() if r["tbt"] > 200]
    print("all goals met" if not misses else "goals missed: " + "; ".join(misses))
    print(json.dumps({"lighthouse": rows, "missed": misses}))


if __name__ == "__main__":
    main()
