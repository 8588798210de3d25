"""Lighthouse (desktop preset) on every page of the app, beside a minimal Gradio app (one image input, one button:
Gradio's own floor), in the same run and the same Chromium.

    python benchmarks/lighthouse.py [--url URL] [--runs 3]

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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PAGES = {"classify": "", "why": "why", "inside": "inside", "finetune": "finetune", "architecture": "architecture"}
GOALS = {"performance": 90, "accessibility": 95, "best-practices": 100}
MINIMAL_APP = """
import gradio as gr
with gr.Blocks() as demo:
    image = gr.Image(type="filepath")
    gr.Button("Go").click(lambda x: x, image, image)
demo.launch()
"""


def lighthouse(url: str) -> dict[str, float]:
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


def median_of(url: str, runs: int) -> dict[str, float]:
    results = [lighthouse(url) for _ in range(runs)]
    merged = {k: statistics.median(r[k] for r in results) for k in [*GOALS, "cls", "tbt"]}
    merged["failed"] = sorted({a for r in results for a in r["failed"]})
    return merged


def table(rows: dict[str, dict[str, float]]) -> None:
    print("| page | performance | accessibility | best practices | CLS | TBT (ms) |")
    print("|---|---|---|---|---|---|")
    for page, r in rows.items():
        print(f"| {page} | {r['performance']:.0f} | {r['accessibility']:.0f} | {r['best-practices']:.0f} | "
              f"{r['cls']:.3f} | {r['tbt']:.0f} |")
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
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "minimal.py").write_text(MINIMAL_APP)
        with running_app(script=str(Path(tmp) / "minimal.py")) as url:
            rows["minimal Gradio app"] = median_of(url, args.runs)
        with demo_app(Path(tmp), url=args.url) as url:
            rows |= {f"/{PAGES[t]}": median_of(f"{url}{PAGES[t]}", args.runs) for t in args.pages}
    table(rows)
    misses = [f"{page} {k} {r[k]:.0f} < {goal}" for page, r in rows.items() if page.startswith("/")
              for k, goal in GOALS.items() if r[k] < goal]
    misses += [f"{page} CLS {r['cls']:.3f} > 0.1" for page, r in rows.items() if r["cls"] > 0.1]
    misses += [f"{page} TBT {r['tbt']:.0f} ms > 200" for page, r in rows.items() if r["tbt"] > 200]
    print("all goals met" if not misses else "goals missed: " + "; ".join(misses))
    print(json.dumps({"lighthouse": rows, "missed": misses}))


if __name__ == "__main__":
    main()
