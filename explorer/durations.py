"""What each GPU call declares to ZeroGPU, computed from its request: close to what it needs on the card,
plus a margin.

ZeroGPU, as Hugging Face's documentation and its maintainers' answers put it (read on ``QUOTA_READ_ON``): a
call is admitted only if the visitor's remaining daily quota covers its *declared* duration; a shorter
declaration gets a better place in the queue; only the seconds used are charged; a call still running at its
declaration is stopped. So a declaration that is too long turns visitors away, and one that is too short
kills the call: a fine-tuning run is therefore given a time limit inside its declaration, and stops itself
(keeping its best checkpoint) before ZeroGPU would stop it.
"""

from __future__ import annotations

import math

QUOTA_READ_ON = "2026-11-29"
DAILY_QUOTA_SECONDS = {"anonymous": 120, "signed in": 210, "PRO": 1500}  # per visitor, per day (as read then)

# What the work costs on the card: H200 figures of benchmarks/gpu_check.py (docs/benchmarks.md, GPU figures). ZeroGPU's
# slices of RTX Pro 6000 cards are assumed no faster; the margin covers the difference.
WORKER_START_S = 5.0  # a fresh worker: fork and CUDA initialisation (4.8 s measured)
CLASSIFY_CROP_S = 0.01
INSIDE_S = 1.3  # feature maps, Grad-CAM and knockout of one picture for one model
ATLAS_STEP_S_128 = 0.0066  # one optimisation step at 128 px (launch-bound: barely grows with the size)
ATLAS_INDEX_S = 3.0  # the reference set's index for a model (only the first view; counted every time)
TRAIN_IMAGES_PER_S_224 = 5869  # full fine-tune, forward and backward
EVAL_IMAGES_PER_S_224 = 4 * TRAIN_IMAGES_PER_S_224  # forward only
MAX_IMAGES_PER_S = 25_000  # small pictures are bound by data movement, not by their area
RUN_SETUP_S = 10.0  # loading CIFAR-10 and the weights, the validation split, the test split's report
GPU_OVERHEAD_SECONDS = 15  # a run's declaration beyond its own time limit: the worker, loading, the final test
MARGIN = 1.5


def _declare(seconds: float) -> int:
    return math.ceil((WORKER_START_S + seconds) * MARGIN)


def classify_seconds(crops: int) -> int:
    return _declare(crops * CLASSIFY_CROP_S)


def inside_seconds(compare: bool) -> int:
    return _declare(INSIDE_S * (2 if compare else 1))


def channel_seconds(steps: int, size: int, input_size: int = 224) -> int:
    """One channel's view: its optimisation (the network sees every step at ``input_size``), the index, the
    examples and where it fires."""
    network = max(size, input_size)
    return _declare(steps * ATLAS_STEP_S_128 * max(1.0, (network / 128) ** 2) + ATLAS_INDEX_S + INSIDE_S)


def index_seconds() -> int:
    """A grid's dataset examples: the reference set's index (one pass over the set, only the first time)."""
    return _declare(ATLAS_INDEX_S)


def explain_seconds() -> int:
    """An explanation's numbers and masks: one forward and one backward pass to a module, and a factorisation of
    its activations (CPU-bound, well under a second)."""
    return _declare(INSIDE_S + 1.0)


def group_seconds(steps: int, size: int, input_size: int = 224) -> int:
    """One neuron group's visualisation: an atlas view's optimisation, through all four branches of the module
    (counted twice a branch's) and without the reference set's index."""
    network = max(size, input_size)
    return _declare(2 * steps * ATLAS_STEP_S_128 * max(1.0, (network / 128) ** 2) + INSIDE_S)


def accentuate_seconds(steps: int, input_size: int = 224) -> int:
    """An accentuation: ``steps`` forward and backward passes of the picture at the model's input size, as a
    visualisation's step through a whole module."""
    return _declare(2 * steps * ATLAS_STEP_S_128 * max(1.0, (input_size / 128) ** 2) + INSIDE_S)


def report_seconds(test_images: int = 10_000) -> int:
    """A run's test report (at most CIFAR-10's test split, at up to 224 px)."""
    return _declare(RUN_SETUP_S + test_images / _images_per_s(EVAL_IMAGES_PER_S_224, 224))


def _images_per_s(rate_224: float, image_size: int) -> float:
    return min(MAX_IMAGES_PER_S, rate_224 * (224 / image_size) ** 2)


def run_seconds(train_size: int, epochs: int, image_size: int, eval_images: int = 10_000) -> float:
    """What a full fine-tune needs on the card (a head-only run needs less: this bounds it)."""
    train = epochs * train_size / _images_per_s(TRAIN_IMAGES_PER_S_224, image_size)
    evaluate = (epochs + 1) * eval_images / _images_per_s(EVAL_IMAGES_PER_S_224, image_size)
    return RUN_SETUP_S + train + evaluate


def run_limit(train_size: int, epochs: int, image_size: int, limit: int, eval_images: int = 10_000) -> int:
    """The time limit a ZeroGPU run gets: what it needs with the margin, within the server's limit
    (``eval_images``: the dataset's validation and test pictures; CIFAR-10's test split by default)."""
    return min(limit, math.ceil(run_seconds(train_size, epochs, image_size, eval_images) * MARGIN))


def finetune_seconds(max_seconds: float, longest: int) -> int:
    """A run's declaration: its own time limit plus the overhead, never over the longest one allowed."""
    return min(longest, math.ceil(max_seconds + GPU_OVERHEAD_SECONDS))
