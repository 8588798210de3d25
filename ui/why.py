"""The "Why?" page (``/why``): which neuron groups of a module carried an answer, where they are, what each looks like and
which branch each lives in, the channels for and against it, and what in the picture a channel responds to."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import explain as service
from explorer.profile import EXAMPLE_PHOTOS
from explorer.runs import IMAGENET_MODEL
from explorer.state import CATALOG, FAIR
from googlenet import BRANCH_KEYS, DEFAULT_BRANCH, MODULE_NAMES
from googlenet.interpret.explain import DEFAULT_EXPLAIN_MODULE, DEFAULT_GROUPS, MAX_GROUPS, MIN_GROUPS
from explorer.links import handoff
from ui.common import NAVIGATE, Panel, admitted, image_input, models, owner, reporter, result_panel, visitor_errors
from ui.page import header

INTRO = ("Why did the network give this answer? A module's activations on your picture, split into neuron groups "
         "(Olah et al., *The Building Blocks of Interpretability*): where each group is, how much the answer owes "
         "it, which branches it lives in, and its strongest channels (click one to open it in the atlas).")


@visitor_errors
def explain(image: str | None, model: str = IMAGENET_MODEL, module: str = DEFAULT_EXPLAIN_MODULE,
            k: int = DEFAULT_GROUPS, class_index: int | None = None, request: gr.Request = None) -> tuple[Any, ...]:
    """Why did GoogLeNet give this answer? Splits one Inception module's activations on the picture into neuron
    groups (non-negative matrix factorisation over positions x channels) and attributes the class's logit to each
    group and each channel (gradient x activation, summed over positions: how much the logit owes it; negative
    means it speaks against the class).

    Args:
        image: the picture (an uploaded file, at most 10 MB; a URL is refused).
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run (CIFAR-10 classes).
        module: the Inception module, inception3a to inception5b (default inception4d).
        k: how many neuron groups, 2 to 12 (default 6).
        class_index: the class to explain, as an index of the model's classes (default: the top-1).

    Returns:
        each group as a mask over the picture (strongest attribution first), the explanation in Markdown, the same
        as a record (class, probability, total attribution, factorisation error, per group its attribution, its
        share in each branch and its strongest channels, and the channels for and against the class), and the
        listed channels as tiles showing where each fires on the picture.
    """
    with FAIR.job("explain", owner(request)):
        masks, text, record, tiles, opens, choices, groups = service.explain_view(image, model, module, k, class_index)
    return (masks, text, record, tiles, opens, gr.Dropdown(choices=choices, value=record["class_index"]), groups)


@visitor_errors
def group_pictures(groups: dict | None, request: gr.Request = None, progress: gr.Progress = gr.Progress()):
    """Each group's visualisation, shown as it finishes."""
    with FAIR.job("explain_groups", owner(request)):
        yield from service.group_pictures(groups, reporter(progress))


@visitor_errors
def accentuate(image: str | None, model: str = IMAGENET_MODEL, module: str = DEFAULT_EXPLAIN_MODULE,
               branch: str = DEFAULT_BRANCH, channel: int = 0, group: int = 0, k: int = DEFAULT_GROUPS,
               class_index: int | None = None, request: gr.Request = None,
               progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """What in this picture one channel (or one neuron group) responds to: the picture changed as little as
    possible so that the channel responds more (feature accentuation, Hamblin et al. 2024), beside the original.

    Args:
        image: the picture (an uploaded file, at most 10 MB; a URL is refused).
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run.
        module: the Inception module, inception3a to inception5b (default inception4d).
        branch: the channel's branch, one of 1x1, 3x3, 5x5 or pool (default 3x3).
        channel: the channel's number within the branch, from 0 (default 0).
        group: instead of the channel, neuron group number N (from 1) of the explanation with k groups (0: the
            channel, the default).
        k: the explanation's number of groups, when a group is chosen (default 6).
        class_index: the explanation's class, when a group is chosen (default: the top-1).

    Returns:
        the picture as the network sees it, the accentuated picture, their difference (four times stronger, grey
        where nothing changed), and its figures in Markdown: the target's response before and after (its mean over
        the picture after the ReLU), their ratio, the root-mean-square change per pixel (0 to 1), and the ratio
        after both pictures are JPEG-compressed at quality 75 and shifted by 4 pixels.
    """
    with FAIR.job("accentuate", owner(request)):
        return service.accentuate_view(image, model, module, branch, channel, group, k, class_index,
                                       reporter(progress))


def page(demo: gr.Blocks) -> None:
    """The page's components and events."""
    top = header(demo, INTRO)
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            image = image_input(label="Image", elem_id="why-image", height=240)
            with gr.Row():
                model = gr.Dropdown(choices=CATALOG.names(), value=IMAGENET_MODEL, label="Model",
                                    allow_custom_value=True, elem_id="why-model", min_width=160)
                module = gr.Dropdown(list(MODULE_NAMES), value=DEFAULT_EXPLAIN_MODULE, label="Module",
                                     allow_custom_value=True, min_width=120)
            with gr.Row():
                k = gr.Slider(MIN_GROUPS, MAX_GROUPS, value=DEFAULT_GROUPS, step=1, label="Neuron groups",
                              min_width=160)
                klass = gr.Dropdown(choices=[], value=None, label="Class (after a first answer: any of the top 5)",
                                    allow_custom_value=True, min_width=160)
            go = gr.Button("Explain", variant="primary", elem_id="why-explain")
            gr.Examples([str(p) for p in EXAMPLE_PHOTOS], inputs=image)
        with gr.Column(scale=3), gr.Tabs(elem_id="why-views"):
            answers, (masks, text, tiles, pictures) = _answer_views()
            with gr.Tab("Accentuate", id="accentuate"):
                accent, targets, accented, shown = _accentuation()
    record, opens, groups, link = gr.JSON(visible=False), gr.State([]), gr.State(None), gr.Textbox(visible=False)
    for panel in answers:
        panel.reveal_on(go.click)
    accented.reveal_on(accent.click)
    asked = [image, model, module, k, klass]
    go.click(explain, asked, [masks, text, record, tiles, opens, klass, groups], api_name="explain",
             **admitted("explain", asked)).then(group_pictures, groups, pictures, api_visibility="private",
                                                **admitted("explain_groups", [groups]))
    accent_asked = [image, model, module, *targets, k, klass]
    accent.click(accentuate, accent_asked, shown, api_name="accentuate", **admitted("accentuate", accent_asked))
    tiles.select(open_tile, [opens, top.picture], link, api_visibility="private", queue=False).then(
        None, link, None, js=NAVIGATE)  # a channel's tile opens its atlas view, with the same picture
    top.carry(image)
    top.on_open(lambda view, picture: {model: models(view.get("model")), **({image: picture.path} if picture else {}),
                                       **({module: view["module"]} if "module" in view else {})},
                [model, image, module])


def _answer_views() -> tuple[list[Panel], list[Any]]:
    """The explanation's views: the neuron groups, the channels for and against, and each group's picture (their
    panels, then the masks, the text, the channels' tiles and the groups' pictures)."""
    with gr.Tab("Neuron groups", id="groups"), result_panel(
            "Where each neuron group is in your picture, and how much the answer owes it, appear here.",
            "why-result") as answer:
        masks = gr.Gallery(label="Where each neuron group is (strongest attribution first)", columns=3,
                           height=330, elem_id="why-groups")
        text = gr.Markdown(elem_id="why-text", height=260)
    with gr.Tab("Channels", id="channels"), result_panel(
            "The channels for and against the answer, and each group's strongest, appear here.",
            "why-channels-result") as for_against:
        tiles = gr.Gallery(label="Where each channel fires on your picture (click one to open it in the atlas)",
                           columns=6, height=420, allow_preview=False, elem_id="why-channels")
    with gr.Tab("Group pictures", id="pictures"), result_panel(
            "An image optimised for each group appears here as it finishes.", "why-pictures-result") as looks:
        pictures = gr.Gallery(label="Each group's optimised image", columns=3, height=420,
                              elem_id="why-group-pictures")
    return [answer, for_against, looks], [masks, text, tiles, pictures]


def _accentuation() -> tuple[gr.Button, list[Any], Panel, list[Any]]:
    """The Accentuate view: its button, what it accentuates (branch, channel, group), its panel and its outputs."""
    gr.Markdown("What in your picture does a channel or a group respond to? The picture changed as little as possible "
                "so that it responds more.")
    with gr.Row():
        targets = [gr.Radio(list(BRANCH_KEYS), value=DEFAULT_BRANCH, label="Branch", elem_id="why-branch"),
                   gr.Number(0, label="Channel", precision=0, minimum=0, elem_id="why-channel", min_width=100),
                   gr.Number(0, label="or group (0: the channel)", precision=0, minimum=0, maximum=MAX_GROUPS,
                             min_width=100)]
    accent = gr.Button("Accentuate", elem_id="why-accentuate")
    with result_panel("Your picture, the accentuated one and their difference appear here.",
                      "why-accent-result") as accented:
        with gr.Row():
            shown = [gr.Image(label="Your picture (as the network sees it)", format="png", height=220),
                     gr.Image(label="Accentuated", format="png", elem_id="why-accentuated", height=220),
                     gr.Image(label="Difference (×4)", format="png", height=220)]
        shown.append(gr.Markdown())
    return accent, targets, accented, shown


def open_tile(opens: list | None, picture: str | None, evt: gr.SelectData) -> str | None:
    """A click on a channel's tile: the link to that channel's atlas view on the Inside page, with the same picture
    (the browser then follows it)."""
    index = evt.index if isinstance(evt.index, int) else None
    if not opens or index is None or not 0 <= index < len(opens):
        return None
    model, module, branch, channel = opens[index]
    return handoff("inside", picture, model=model if model != IMAGENET_MODEL else None, module=module, branch=branch,
                   channel=channel)
