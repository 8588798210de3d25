"""Head-only training on cached features: with a frozen backbone, the backbone's pooled features are
computed once per weights, image size and data subset, kept on disk, and each epoch trains only the
new classifier on them (seconds instead of minutes on a CPU).

The frozen backbone is deterministic in training (its BatchNorm keeps its ImageNet statistics), so the
only randomness left is dropout and, with flips on, which of the two orientations a picture shows:
both are cached and drawn with the same random stream as the uncached path uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from googlenet import GoogLeNet
from googlenet.inference import inference_copy

from . import env
from .augment import AugmentConfig, BatchPipeline
from .recipes import Recipe
from .trainer import Trainer, eval_batch_size


def applies(recipe: Recipe) -> bool:
    """Cached features stand for the uncached path only where the input does not change from epoch to epoch
    except by a flip, and where no auxiliary head trains."""
    return recipe.freeze_backbone and not recipe.random_crop and not recipe.photometric and recipe.aux_weight <= 0


def feature_key(model: GoogLeNet, recipe: Recipe, images: torch.Tensor, flip: bool) -> str:
    """What the features depend on: the backbone's weights, the preprocessing, the images and the flips."""
    return model.backbone_fingerprint(recipe.image_size, recipe.mean, recipe.std, flip, tuple(images.shape),
                                      images.to("cpu").contiguous().numpy().tobytes())


@torch.no_grad()
def backbone_features(model: GoogLeNet, images: torch.Tensor, recipe: Recipe, device: torch.device,
                      flip: bool, check: Callable[[], None] = lambda: None) -> torch.Tensor:
    """N x V x 1024 pooled features (V = 2 with ``flip``: the picture and its mirror image)."""
    pipeline = BatchPipeline(AugmentConfig(recipe.image_size, random_crop=False, flip=False, photometric=False),
                             recipe.mean, recipe.std, device)
    net = inference_copy(model, device)
    out = []
    for i in range(0, len(images), eval_batch_size(recipe.image_size)):
        check()  # a cancel (or time limit) stops between batches
        x = pipeline.eval(images[i:i + eval_batch_size(recipe.image_size)])
        views = [x, x.flip(-1)] if flip else [x]
        out.append(torch.stack([torch.flatten(net.avgpool(net.forward_features(
            v.contiguous(memory_format=torch.channels_last))), 1) for v in views], 1))
    return torch.cat(out).float()


def cached_features(model: GoogLeNet, images: torch.Tensor, recipe: Recipe, device: torch.device,
                    log: Callable[[str], None] = print, train: bool = True,
                    check: Callable[[], None] = lambda: None) -> torch.Tensor:
    """``backbone_features``, read from the disk cache when the same weights, settings and images were seen.

    Training images get both orientations when the recipe flips; evaluation images (``train=False``) one."""
    flip = recipe.flip and train
    name = f"{feature_key(model, recipe, images, flip)}.safetensors"
    stored, hit = env.disk_cache().tensors("features", name, lambda: {
        "features": backbone_features(model, images, recipe, device, flip, check)})
    log(f"backbone features of {len(images)} images {'read from the cache' if hit else 'computed and cached'}")
    return stored["features"].to(device)


class HeadTrainer(Trainer):
    """``Trainer`` whose batches are cached features: a step runs dropout and the classifier only."""

    def train_step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n = features.shape[0]
        view = (torch.rand(n, generator=self.pipeline.generator) < 0.5).long() if self.recipe.flip else \
            torch.zeros(n, dtype=torch.long)
        x = features[torch.arange(n), view.to(features.device)]
        return self.step(F.cross_entropy(self.model.fc(self.model.dropout(x)), labels.to(self.device),
                                         label_smoothing=self.recipe.label_smoothing))

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return F.softmax(self.model.fc(features[:, 0].to(self.device)), 1).cpu()

    @torch.no_grad()
    def evaluate(self, features: torch.Tensor, labels: torch.Tensor, cancel: object = None) -> tuple[float, float]:
        self.model.eval()
        logits = self.model.fc(features[:, 0])
        y = labels.to(self.device)
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())
