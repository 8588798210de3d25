"""What one part of a page costs in Lighthouse's total blocking time: Gradio's minimal app (one image input, one
button) with one part added at a time, each measured in the same rounds as the minimal app itself.

    python benchmarks/page_parts.py [--runs 3] [--parts tabs hidden ...]

The parts are the choices a page of this app could make differently: sub-views in ``gr.Tabs`` (with the overflow
menu or wrapped), in hidden columns, or behind a ``gr.Radio`` that shows one at a time in the browser; components of
one kind or of seven kinds, shown or in a hidden column; one event or thirty. It answers whether swapping one of them
would make a page cheaper for Gradio's client, which the pages' own figures (``benchmarks/lighthouse.py``) cannot
tell apart from the machine's hour. Lighthouse and Chromium as in ``benchmarks/lighthouse.py``. Not part of the
test suite: it needs npm.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]

from lighthouse import MINIMAL, MINIMAL_APP, in_rounds  # noqa: E402 (after the path)

SEVEN = [f"View number {i}" for i in range(7)]
KINDS = """gr.Markdown("text"); gr.Dropdown(["a", "b"], label="dropdown"); gr.Slider(label="slider")
gr.Number(label="number"); gr.Checkbox(label="checkbox"); gr.Textbox(label="textbox")
gr.Radio(["a", "b"], label="radio")"""


def tabs(arguments: str = "") -> str:
    """Seven tabs, a Markdown each; ``arguments`` go to ``gr.Tabs``."""
    return f"""with gr.Tabs({arguments}):
    for name in {SEVEN}:
        with gr.Tab(name):
            gr.Markdown(name)"""


def hidden(part: str) -> str:
    """``part`` inside a hidden column."""
    return "with gr.Column(visible=False):\n" + textwrap.indent(part, "    ")


PARTS = {
    "tabs": ("seven tabs, a Markdown each", tabs()),
    "tabs-wrapped": ("the same, overflow_behavior='wrap'", tabs('overflow_behavior="wrap"')),
    "hidden": ("seven hidden columns, a Markdown each",
               f"for name in {SEVEN}:\n" + textwrap.indent(hidden("gr.Markdown(name)"), "    ")),
    "radio": ("a radio showing one of seven columns (in the browser)", f"""\
choice = gr.Radio({SEVEN}, value={SEVEN[0]!r}, show_label=False, container=False)
columns = []
for name in {SEVEN}:
    with gr.Column(visible=name == {SEVEN[0]!r}) as column:
        gr.Markdown(name)
    columns.append(column)
choice.change(None, choice, columns,
              js="(v) => " + str({SEVEN}) + ".map(n => ({{__type__: 'update', visible: n === v}}))")"""),
    "markdowns": ("seven Markdowns, shown", f"for name in {SEVEN}:\n    gr.Markdown(name)"),
    "kinds": ("seven kinds of form component, shown", KINDS),
    "kinds-hidden": ("the same seven, in a hidden column", hidden(KINDS)),
    "events": ("thirty chained events", """more, text = gr.Button("More"), gr.Markdown("x")
event = more.click(lambda: "y", None, text, api_visibility="private", queue=False)
for _ in range(29):
    event = event.then(lambda: "z", None, text, api_visibility="private", queue=False)"""),
}


def app_with(part: str) -> str:
    """The minimal app's script with ``part`` (code) added inside its Blocks."""
    return MINIMAL_APP.replace("demo.launch()", "with demo:\n" + textwrap.indent(part, "    ") + "\ndemo.launch()")


def main() -> None:
    from helpers import running_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (the median is shown)")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls = {}
        for name, script in {MINIMAL: MINIMAL_APP, **{p: app_with(PARTS[p][1]) for p in args.parts}}.items():
            path = Path(tmp) / f"{name.replace(' ', '_')}.py"
            path.write_text(script)
            urls[name] = stack.enter_context(running_app(script=str(path)))
        rows = in_rounds(urls, args.runs)
    print("| part added to the minimal app | performance | TBT (ms) | TBT over the minimal app (ms) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        label = PARTS[name][0] if name in PARTS else "nothing (the minimal app)"
        print(f"| {label} | {r['performance']:.0f} | {r['tbt']:.0f} | {r['over_minimal']:.0f} |")


if __name__ == "__main__":
    main()
