"""What the page shows as text, all of it (the library returns numbers and pictures): Markdown for the status line,
timings, run summaries, reports and comparisons, the knockout table and the branch shares that moved, an
explanation, an accentuation's figures, a channel's view and its circuit. Plain functions of plain values, so each is unit-tested
without a server. Names a visitor may have chosen (class names, a run's) are escaped: never markup."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.atlas.view import ChannelView
from explorer.errors import plain_text
from explorer.links import circuit_query, view_query
from googlenet.draw import BRANCH_TITLES
from googlenet.interpret.accentuate import Accentuation
from googlenet.interpret.circuits import STEM, Circuit
from googlenet.interpret.explain import Explanation
from googlenet.model import BRANCH_KEYS
from training.data import DOWNLOAD_SIZE_TEXT
from training.runfolder import RunReport, RunSummary


def status_markdown(device: str, weights: str, warning: str | None, versions: dict[str, str],
                    storage: str = "") -> str:
    """The status line: where the app runs, which weights it uses (a loud warning when untrained), versions, and
    whether runs outlive a restart (said only when they do not)."""
    shown = f"**weights:** {weights}"
    if warning:
        shown = f"<span style='color:#b00020;font-weight:bold'>⚠ {warning}</span>"
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    return f"**device:** {device} · {shown} · {listed}" + (f" · **storage:** {storage}" if storage else "")


def picture_gone(seconds: int) -> str:
    """The one line a page shows when the picture a visitor had (or a link names) is no longer on the server."""
    kept = f"{seconds // 60} minutes" if seconds % 60 == 0 and seconds >= 120 else f"{seconds} s"
    return (f"*The picture you were working on is no longer on this server (a picture is kept for {kept}): please "
            "upload it again.*")


def classify_info(ms: float, device: str, crops: int, model: str) -> str:
    return f"{ms:.0f} ms on {device} · {'10 crops' if crops == 10 else '1 centre crop'} · {model}"


def step_line(name: str, epoch: int, epochs: int, step: int, steps: int, loss: float) -> str:
    return f"Run `{name}`: epoch {epoch}/{epochs}, step {step}/{steps}, loss {loss:.3f}"


def ended_line(summary: RunSummary) -> str:
    """One line for a run that ended: its best validation and test accuracy, and why it stopped early."""
    acc = summary.best_val_accuracy
    line = (f"Run `{summary.name}` {summary.status}: best validation accuracy {100 * acc:.1f}%" if acc is not None
            else f"Run `{summary.name}` {summary.status}: no epoch finished")
    if summary.test_accuracy is not None:
        line += f", test accuracy {100 * summary.test_accuracy:.1f}%"
    if summary.message not in ("finished", ""):
        line += f" ({summary.message})"
    return line


def markdown_text(text: Any) -> str:
    """Text a visitor controls (a class name from their zip or a Hub dataset, an id) as itself in Markdown: every
    character that could make a link, emphasis, a table cell or HTML is escaped."""
    return "".join(f"\\{ch}" if ch in "\\`*_{}[]()#+-.!|~" else plain_text(ch) for ch in str(text))


def report_markdown(report: RunReport) -> str:
    """Test accuracy, then a table of per-class accuracy."""
    rows = "\n".join(f"| {markdown_text(name)} | {100 * acc:.1f}% |"
                     for name, acc in zip(report.classes, report.per_class))
    return f"**Test accuracy {100 * report.accuracy:.1f}%**\n\n| class | accuracy |\n|---|---|\n{rows}"


def cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key.endswith("accuracy"):
        return f"{100 * value:.1f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def compare_table(rows: list[dict[str, Any]]) -> str:
    """One row per run: its settings and results (accuracies as percentages)."""
    keys = list(rows[0])
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys)
    return head + "\n" + "\n".join("| " + " | ".join(cell(k, r[k]) for k in keys) + " |" for r in rows)


NO_DATA = f"CIFAR-10 is not on this server yet: press Download CIFAR-10 first ({DOWNLOAD_SIZE_TEXT})."


def data_status(available: bool) -> str:
    return "CIFAR-10 is ready on this server." if available else NO_DATA


def dataset_markdown(name: str, revision: str | None, classes: list[str], sizes: dict[str, int],
                     described: dict[str, str], side: int, skipped: int) -> str:
    """What a run on a dataset would train on: its classes and the sizes of its three parts, before it starts."""
    at = f" at `{markdown_text(revision[:12])}`" if revision else ""
    shown = ", ".join(markdown_text(c) for c in classes[:50]) + (" …" if len(classes) > 50 else "")
    text = (f"**{markdown_text(name)}**{at}: {len(classes)} classes; {sizes['train']:,} training, "
            f"{sizes['validation']:,} validation and {sizes['test']:,} test pictures (validation: "
            f"{described['validation']}; test: {described['test']}), stored at {side} px.\n\nClasses: {shown}")
    if skipped:
        text += f"\n\n{skipped:,} files were skipped: not pictures, or without a known label."
    return text


ARCHITECTURE_NOTES = ("Parameters count convolution and linear weights in K = 1024 (the paper's unit); ops are "
                      "multiply-adds in millions, traced with a 224 px forward pass. ⚠ marks rows where the paper's "
                      "own figure disagrees with its architecture by more than 2%.")


def knockout_markdown(rows: list[dict[str, Any]]) -> str:
    """The knockout results (``branch_knockout``) as a table: what the answer loses when each branch is zeroed."""
    if not rows:
        return ""
    label = plain_text(rows[0]["top1_label"])
    lines = [f"Original top-1: **{label}** ({100 * rows[0]['top1_before']:.1f}%). Zeroing one branch at a time:", "",
             "| branch zeroed | p(original top-1) | change | new top-1 | top-5 after |", "|---|---|---|---|---|"]
    for r in rows:
        change = 100 * (r["top1_after"] - r["top1_before"])
        top5 = ", ".join(f"{plain_text(n)} {100 * p:.0f}%" for n, p in r["top"])
        lines.append(f"| {BRANCH_TITLES[r['branch']]} | {100 * r['top1_after']:.1f}% | {change:+.1f} pts | "
                     f"{plain_text(r['top'][0][0])}{'' if r['still_top1'] else ' ⚠'} | {top5} |")
    return "\n".join(lines)


def shift_markdown(moved: list[tuple[str, float]], labels: tuple[str, str]) -> str:
    """The modules whose branch shares moved most between two models (``share_shift``), as a table."""
    lines = [f"Where the branch shares moved most from **{labels[0]}** to **{labels[1]}**:", "",
             "| module | share moved |", "|---|---|"]
    lines += [f"| {m} | {100 * v:.1f}% |" for m, v in moved]
    return "\n".join(lines)


def explanation_markdown(found: Explanation, model: str) -> str:
    """The explanation in words, with a link to each channel's atlas view."""
    def link(b: str, c: int) -> str:
        return f"[{b} ch {c}]({view_query(model, found.module, b, c)})"

    name = plain_text(found.class_name)
    shown = sum(g.attribution for g in found.groups)
    lines = [f"**Why {name}?** ({100 * found.probability:.1f}%) {found.module}'s activations on your picture, split "
             f"into {len(found.groups)} neuron groups (non-negative matrix factorisation: they keep "
             f"{100 * (1 - found.error ** 2):.0f}% of the activations' energy). Attribution is how much the logit of "
             f"{name} owes a group or a channel (gradient × activation, summed): the whole module's is "
             f"{found.total:+.2f}, the groups' together {shown:+.2f}. Groups that speak against it are marked ⚠.", "",
             "| group | attribution | branches (1x1 / 3x3 / 5x5 / pool) | strongest channels |", "|---|---|---|---|"]
    for k, g in enumerate(found.groups):
        mix = " / ".join(f"{100 * g.branches[b]:.0f}%" for b in BRANCH_KEYS)
        lines.append(f"| {k + 1}{' ⚠' if g.against else ''} | {g.attribution:+.2f} | {mix} | "
                     + ", ".join(link(b, c) for b, c, _ in g.channels) + " |")
    lines += ["", "**Channels that add most to it:** " + (", ".join(f"{link(b, c)} {v:+.2f}"
                                                          for b, c, v in found.channels_for) or "none"),
              "", "**Channels that take most from it:** " + (", ".join(f"{link(b, c)} {v:+.2f}"
                                                             for b, c, v in found.channels_against) or "none")]
    return "\n".join(lines)


def accentuation_markdown(done: Accentuation, which: str, module: str, treated_before: float,
                          treated_after: float) -> str:
    ratio = f"{done.ratio:.2f}×" if np.isfinite(done.ratio) else "from nothing"
    treated = f"{treated_after / treated_before:.2f}×" if treated_before > 0 else "from nothing"
    return (f"**{module} · {which}**: its response (mean over the picture, after its ReLU) went from "
            f"{done.before:.3f} to {done.after:.3f} (**{ratio}**), for a root-mean-square change of "
            f"**{done.rms:.3f}** per pixel (0 to 1). After JPEG at quality 75 and a 4-pixel shift of both pictures: "
            f"{treated} (a change that is a feature survives that; pixel noise does not). {done.seconds:.1f} s. "
            "The difference is shown four times stronger, grey where nothing changed.")


def channel_note(view: ChannelView, steps: int, size: int) -> str:
    """What a channel's atlas view shows, how it was made (``steps`` at ``size`` px) and what came from the cache."""
    cached = f" (from the cache: {', '.join(view.cached)})" if view.cached else ""
    where = ", and where it fires on your picture" if view.where is not None else \
        " (upload a picture to see where it fires on it)"
    return (f"**{view.module} · {view.branch} · channel {view.channel}**: an image optimised to excite it "
            f"({steps} steps at {size} px, Lucid's method), the {len(view.examples)} pictures of the "
            f"{view.reference} that excite it most (the patch where it peaks){where}. "
            f"{view.seconds:.1f} s{cached}.")


def grid_note(count: int, module: str, branch: str, by_picture: bool, source: str) -> str:
    """What a branch's grid shows: how many channels, in which order, and where the tiles came from."""
    order = "ordered by how strongly each responds to your picture (its output's maximum)" if by_picture else \
        "in channel order"
    return f"{count} channels of {module} · {branch}, {order}; {source}."


def input_name(branch: str, channel: int, below: str) -> str:
    """An input of a circuit as a caption names it: its module, branch and channel below, or the stem's channel."""
    return f"stem ch {channel}" if branch == STEM else f"{below} {branch} ch {channel}"


def _inputs_line(model: str, below: str, entries: list[tuple[str, int, str]]) -> str:
    """Inputs as links to their atlas views (the stem's channels have none), each with its figure."""
    def one(branch: str, channel: int, figure: str) -> str:
        name = input_name(branch, channel, below)
        if branch == STEM:  # the walk down stops at the stem: no atlas view, no circuit
            return f"{name} ({figure})"
        return f"[{name}]({view_query(model, below, branch, channel)}) ({figure}, " \
               f"[its circuit]({circuit_query(model, below, branch, channel)}))"
    return ", ".join(one(*e) for e in entries) or "none"


def circuit_markdown(model: str, view: Circuit, on_picture: list[dict[str, Any]] | None,
                     rewired: list[dict[str, Any]] | None, moved: dict[str, float] | None, why_not: str | None) -> str:
    """What a channel's circuit shows and how it was computed: the weights view, the picture's attribution beside
    it (the two answer different questions), and what fine-tuning rewired."""
    below = "the stem (its 192 channels after the last max pool)" if view.input_module == STEM else view.input_module
    how = {"1x1": "its 1x1 weights", "pool": "its 1x1 weights, which read the module's input after a 3x3 max pool"}
    how_made = how.get(view.branch, f"its 1x1 reduction and {view.branch} convolution multiplied out into one kernel "
                                    "(the ReLU between them ignored: a linear approximation, as in Olah et al.'s "
                                    "\"Zoom In\")")
    lines = [f"**{view.module} · {view.branch} · channel {view.channel}** is built from {below}: {how_made}, with "
             "BatchNorm folded in. An input's strength is its kernel's L2 norm, its sign the sign of its kernel's "
             "sum; each kernel is drawn on one scale (red excites, blue inhibits).",
             "- **For**: " + _inputs_line(model, view.input_module,
                                          [(c.branch, c.channel, f"{c.strength:.3f}") for c in view.excitatory]),
             "- **Against**: " + _inputs_line(model, view.input_module,
                                              [(c.branch, c.channel, f"{c.strength:.3f}") for c in view.inhibitory])]
    if on_picture is not None:
        def side(up: bool) -> str:
            return _inputs_line(model, view.input_module, [(e["branch"], e["channel"], f"{e['attribution']:+.3f}")
                                                           for e in on_picture if (e["attribution"] > 0) == up])
        lines += ["", "**On your picture**, through the real network (ReLU included): the gradient of the channel's "
                      "mean response before its ReLU with respect to the module's input, times that input, summed "
                      "over positions. The weights above are its linear approximation; where the two lists disagree, "
                      "both are true of their own question.",
                  f"- **Carried it**: {side(True)}", f"- **Held it back**: {side(False)}"]
    if why_not:
        lines += ["", f"**What fine-tuning rewired**: {why_not}"]
    elif rewired is not None and moved is not None:
        changed = [e for e in rewired if e["change"] > 0]
        summary = ", ".join(f"{k} {100 * v:.2f}%" for k, v in moved.items())
        lines += ["", "**What fine-tuning rewired** (against the ImageNet weights it started from; the relative L2 "
                      "change of each connection's kernel): "
                  + (_inputs_line(model, view.input_module, [(e["branch"], e["channel"], f"{100 * e['change']:.2f}%")
                                                             for e in changed])
                     if changed else "no input connection of this channel moved (its backbone was not trained here)")
                  + f". {view.module}'s incoming weights per branch moved: {summary}."]
    query = circuit_query(model, view.module, view.branch, view.channel)
    return "\n".join(lines + ["", f"Link to this circuit: [{query}]({query})"])
