"""What the Inside Inception tab computes: one module's four branches for a picture (feature maps, branch shares,
Grad-CAM, knockout), for one model or compared with a second."""

from __future__ import annotations

from typing import Any

from explorer import durations
from explorer.caches import fingerprint
from explorer.concurrency import in_background
from explorer.gpu import on_gpu
from explorer.params import as_text, check_image, check_module
from explorer.render import knockout_markdown, shift_markdown
from explorer.state import CATALOG, EXAMPLES, check_model, example_key
from googlenet.draw import BRANCH_TITLES
from googlenet.interpret.branches import share_shift
from googlenet.interpret.inside import InsideResult, inspect_image
from googlenet.model import BRANCH_KEYS


@on_gpu(duration=lambda model, image, module, compare=None: durations.inside_seconds(bool(compare)))
def inspect_on_device(model: str, image: str, module: str, compare: str | None = None) -> InsideResult:
    other = (CATALOG.get(compare).model_on_device(), (model, compare)) if compare else None
    return in_background(inspect_image, CATALOG.get(model).model_on_device(), image, module, compare=other)


def feature_maps(image: Any, module: Any, model: Any, compare: Any) -> tuple[Any, ...]:
    """(top labels, four grids, overlays, chart, Grad-CAM, its caption, knockout, moved shares, grid orders)."""
    image, module, model = check_image(image), check_module(module), check_model(model)
    compare = check_model(compare, "compare") if as_text(compare, "compare") else None
    compare = compare if compare != model else None
    result, _ = EXAMPLES.answer(example_key(image, model, module, compare and fingerprint(CATALOG.get(compare).model)),
                                lambda: inspect_on_device(model, image, module, compare))
    moved = shift_markdown(share_shift(result.shares, result.other_shares), (model, compare)) \
        if result.other_shares else ""
    return ({n: p for n, p in result.top}, *[result.grids[k] for k in BRANCH_KEYS],
            [(result.overlays[k], BRANCH_TITLES[k]) for k in BRANCH_KEYS],
            result.chart, result.gradcam, f"Grad-CAM at {module} for **{result.gradcam_class}**",
            knockout_markdown(result.knockout), moved, result.orders)
