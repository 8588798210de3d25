"""Which weights the app and training start from: one function from a weights string to a model.

``load_weights(None, chain_start)`` is the fallback chain: ``chain_start`` (or the default repo) through the
Hub and its cache -> torchvision's IMAGENET1K_V1 -> an untrained model with a loud warning; it never
raises. ``load_weights("owner/name@rev")`` or ``load_weights(folder)`` loads exactly that, or raises
``WeightsError``. Either way the source comes back as a label a visitor may read (no server paths).
"""

from __future__ import annotations

import logging
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .convert import from_torchvision, imagenet_class_names, torchvision_imagenet_model
from .hub import NETWORK_TIMEOUT_S, WeightsError, offline, parse_weights_spec
from .model import GoogLeNet

logger = logging.getLogger(__name__)

DEFAULT_REPO_ID = "inception-explorer/googlenet-imagenet1k"
TORCHVISION_URL = "https://download.pytorch.org/models/googlenet-1378be20.pth"
TORCHVISION_LABEL = "torchvision IMAGENET1K_V1"
UNTRAINED_LABEL = "untrained"


@dataclass
class WeightsSource:
    """Where the weights in use came from, for the UI's status line."""

    kind: str  # "hub", "local", "torchvision" or "untrained"
    description: str  # repo@commit, "a local folder", TORCHVISION_LABEL or UNTRAINED_LABEL
    attempts: list[str] = field(default_factory=list)  # what failed on the way (server log only)

    @property
    def warning(self) -> str | None:
        if self.kind == "untrained":
            return "UNTRAINED weights: no pretrained weights could be loaded, so predictions are meaningless."
        return None


def load_weights(spec: str | None = None, map_location: str | torch.device = "cpu",
                 chain_start: str | None = None) -> tuple[GoogLeNet, WeightsSource]:
    """``None``: the fallback chain, from ``chain_start`` (never raises). Otherwise that repo id,
    ``repo@revision`` or folder."""
    if spec is None:
        return _fallback_chain(chain_start or DEFAULT_REPO_ID, map_location)
    repo, revision = parse_weights_spec(str(spec))
    model = GoogLeNet.from_pretrained(repo, revision=revision, map_location=map_location)
    return model, WeightsSource("local" if os.path.isdir(repo) else "hub", model.weights_source)


def _torchvision_reachable() -> bool:
    if offline():
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(TORCHVISION_URL, method="HEAD"), timeout=NETWORK_TIMEOUT_S)
        return True
    except Exception:
        return False


def _torchvision_cached() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(TORCHVISION_URL)


def _torchvision() -> GoogLeNet:
    cached = _torchvision_cached()
    if cached.is_file():
        return from_torchvision(torch.load(cached, map_location="cpu", weights_only=True), transform_input=True)
    if _torchvision_reachable():
        return torchvision_imagenet_model()
    raise WeightsError("unreachable", "torchvision's weights are not cached and download.pytorch.org is unreachable.")


def _fallback_chain(first: str, map_location: str | torch.device) -> tuple[GoogLeNet, WeightsSource]:
    attempts: list[str] = []
    try:
        return load_weights(first, map_location)
    except WeightsError as e:
        attempts.append(str(e))
        logger.warning("weights: %s", e)
    try:
        model = _torchvision()
        model.weights_source = TORCHVISION_LABEL
        logger.warning("weights: using the torchvision fallback")
        return model.to(map_location).eval(), WeightsSource("torchvision", TORCHVISION_LABEL, attempts)
    except Exception as e:  # the fallback must never take the app down
        attempts.append(f"torchvision fallback failed: {type(e).__name__}: {e}")
        logger.warning("weights: %s", attempts[-1])
    model = GoogLeNet(num_classes=1000, aux_logits=False, variant="torchvision", transform_input=True,
                      class_names=imagenet_class_names())
    model.weights_source = UNTRAINED_LABEL
    logger.error("weights: UNTRAINED, random weights in use: %s", " | ".join(attempts))
    return model.to(map_location).eval(), WeightsSource("untrained", UNTRAINED_LABEL, attempts)
