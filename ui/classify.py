"""The Classify page (``/``, the home page): a picture in, the top-k ImageNet (or fine-tuned) labels out, and links
that open the same picture on the "Why?" and "Inside Inception" pages."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import classify as service
from explorer.links import handoff
from explorer.profile import EXAMPLE_PHOTOS
from explorer.runs import IMAGENET_MODEL
from explorer.state import CATALOG, PROFILE
from ui.common import image_input, models, result_panel, visitor_errors
from ui.page import header

INTRO = ("Upload a picture (or take one, paste one, or choose an example) and see what GoogLeNet makes of it: ImageNet's "
         "1,000 classes, or a run's own classes. Then ask why, or look inside.")


@visitor_errors
def classify(image: str | None, model: str = IMAGENET_MODEL, top_k: int = 5,
             thorough: bool = False) -> tuple[dict[str, float], str]:
    """Classify a picture with GoogLeNet (Inception v1): the most likely ImageNet classes, or CIFAR-10 classes for a
    model fine-tuned in this app.

    Args:
        image: the picture (an uploaded file, at most 10 MB; a URL is refused).
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run.
        top_k: how many labels to return, 1 to 1000 (default 5).
        thorough: average the paper's 10 crops instead of one centre crop (slower, slightly more accurate).

    Returns:
        the labels with their probabilities, and a line with the time taken, the device and the model.
    """
    return service.classify(image, model, top_k, thorough)


def classify_batch(images: list, models: list, top_ks: list, thoroughs: list) -> tuple[list, list]:
    """Gradio's dynamic batching (``GOOGLENET_BATCH=1``): plain requests for one model share a forward pass."""
    return service.classify_batch(images, models, top_ks, thoroughs)


def page(demo: gr.Blocks) -> None:
    """The page's components and events."""
    top = header(demo, INTRO)
    batching, limits = PROFILE.batching, PROFILE.concurrency
    with gr.Row():
        with gr.Column():
            image = image_input(label="Image", elem_id="classify-image", height=300)
            with gr.Row():
                model = gr.Dropdown(choices=CATALOG.names(), value=IMAGENET_MODEL, label="Model",
                                    allow_custom_value=True, scale=2)
                top_k = gr.Slider(1, 10, value=5, step=1, label="Top-k", scale=1)
            thorough = gr.Checkbox(False, label="Thorough (10-crop, paper Sec. 7)")
            go = gr.Button("Classify", variant="primary", elem_id="classify-button")
            with gr.Row():  # the same picture on the other pages
                why = gr.Button("Ask why →", link=handoff("why"), size="sm", elem_id="classify-why")
                inside = gr.Button("Look inside →", link=handoff("inside"), size="sm", elem_id="classify-inside")
            gr.Examples([str(p) for p in EXAMPLE_PHOTOS], inputs=image)
        with result_panel("The most likely classes appear here, with how long it took.",
                          "classify-result") as panel:
            labels = gr.Label(num_top_classes=10, label="Prediction", elem_id="classify-labels")
            timing = gr.Markdown()
    panel.reveal_on(go.click)
    go.click(classify_batch if batching else classify, [image, model, top_k, thorough], [labels, timing],
             api_name="classify", concurrency_limit=limits["infer"], concurrency_id="infer", batch=batching,
             max_batch_size=16)

    def linked(token: str | None) -> dict[Any, Any]:
        """The links to the other pages carry the picture."""
        return {why: gr.Button(link=handoff("why", token)), inside: gr.Button(link=handoff("inside", token))}

    top.carry(image, linked, [why, inside])
    top.on_open(lambda view, picture: {model: models(view.get("model")), **(
        {image: picture.path, **linked(picture.token)} if picture else {})}, [model, image, why, inside])
