"""The import paths that changed when the interpretability methods moved into ``googlenet/interpret/``.

The entry points the docs showed under the old paths still import from them (``from googlenet.features import
capture_branches`` keeps working). Any other name of an old module raises an ``ImportError`` that names its new home.
No file stands at the old paths: ``install()`` (run by ``googlenet/__init__.py``) registers a small module for each.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

BRANCHES, INSIDE, FEATUREVIS = "googlenet.interpret.branches", "googlenet.interpret.inside", "googlenet.interpret.featurevis"
EXPLAIN, EXAMPLES, ACCENTUATE = "googlenet.interpret.explain", "googlenet.interpret.examples", "googlenet.interpret.accentuate"

# old module -> {name: its home now}; the names that still import from the old path.
DOCUMENTED = {
    "googlenet.features": {"capture_branches": BRANCHES, "inspect_image": INSIDE},
    "googlenet.featurevis": {"visualize": FEATUREVIS, "directions_of": FEATUREVIS},
    "googlenet.explain": {"explain": EXPLAIN, "nmf": EXPLAIN, "channel_attribution": EXPLAIN},
    "googlenet.examples": {"channel_peaks": EXAMPLES, "patch_at": EXAMPLES, "rank": EXAMPLES},
    "googlenet.accentuate": {"accentuate": ACCENTUATE},
}
# old module -> {name: its home now}; the other public names, which now import only from there.
_DRAW = ("BRANCH_TITLES", "BRANCH_COLORS", "colorize", "shared_vmax", "GRID_TILE", "GRID_PAD", "GRID_LABEL", "GRID_HEAD",
         "grid_order", "tile_at", "branch_grid", "overlay", "branch_overlays", "render_module", "share_chart")
MOVED = {
    "googlenet.features": {
        **dict.fromkeys(_DRAW, "googlenet.draw"),
        **dict.fromkeys(("Branches", "branch_shares", "knockout_output", "branch_knockout", "module_gradient",
                         "grad_cam", "share_shift"), BRANCHES),
        **dict.fromkeys(("InsideResult", "image_shares"), INSIDE),
        **dict.fromkeys(("knockout_markdown", "shift_markdown"), "explorer.render"),
    },
    "googlenet.featurevis": {
        **dict.fromkeys(("PAD", "JITTER", "FINE_JITTER", "SCALES", "ANGLES", "METHOD", "LEARNING_RATE", "DEFAULT_STEPS",
                         "DEFAULT_SIZE", "random_transform", "channel_seed", "objectives", "channel_scores",
                         "visualize_tensor", "visualize_directions"), FEATUREVIS),
        "pre_relu": BRANCHES, "FourierImage": "googlenet.interpret.fourier",
        "shared_inference_copy": "googlenet.inference", "to_pictures": "googlenet.images",
    },
    "googlenet.explain": dict.fromkeys(("MIN_GROUPS", "MAX_GROUPS", "DEFAULT_GROUPS", "DEFAULT_EXPLAIN_MODULE",
                                        "NMF_ITERATIONS", "NMF_TOLERANCE", "TOP_CHANNELS", "relative_error",
                                        "branch_sizes", "branch_of", "Group", "Explanation"), EXPLAIN),
    "googlenet.examples": dict.fromkeys(("PATCH_STRIDES", "Peaks", "channel_activation"), EXAMPLES),
    "googlenet.accentuate": {
        **dict.fromkeys(("ACCENT_STEPS", "LEARNING_RATE", "PENALTY", "DECAY", "SHIFT", "BLUR", "Accentuation",
                         "response", "jpeg_and_shift"), ACCENTUATE),
        "to_tensor": "googlenet.images",
    },
}


def _old_module(old: str) -> types.ModuleType:
    module = types.ModuleType(old, f"Moved: its documented names import from here still; see {__name__}.")

    def attribute(name: str) -> Any:
        if name in DOCUMENTED[old]:
            return getattr(importlib.import_module(DOCUMENTED[old][name]), name)
        if name in MOVED[old]:
            raise ImportError(f"{name} is no longer in {old}: import it from {MOVED[old][name]}")
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    setattr(module, "__getattr__", attribute)  # PEP 562: looked up when a name is not in the module
    return module


def install(package: types.ModuleType) -> None:
    """Register the old modules (once), so that ``import googlenet.features`` finds them."""
    for old in DOCUMENTED:
        if old not in sys.modules:
            sys.modules[old] = _old_module(old)
            setattr(package, old.rsplit(".", 1)[1], sys.modules[old])
