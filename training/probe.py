"""The live inside view of a run: one probe picture, looked at after every epoch.

For the probe (a CIFAR-10 test picture chosen by index, or the visitor's own picture shrunk to CIFAR-10's 32 px, so
that the run sees it as it sees its training pictures) the run records, after every epoch: its top-3 classes now,
its branch shares across depth now (beside the starting model's: ImageNet's for the ``finetune`` recipe) and its
Grad-CAM at a chosen module. One picture costs one forward and one partial backward pass: nothing beside an epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from googlenet.images import ImageError, load_image
from googlenet.interpret.branches import branch_shares, grad_cam, module_output
from googlenet.labels import top_classes
from googlenet.model import MODULE_NAMES, GoogLeNet

PROBE_INDEX = 0  # CIFAR-10's first test picture (a cat): the default probe
PROBE_MODULE = "inception4e"  # the last module before the second pooling: Grad-CAM still has a few cells there


def probe_picture(test_x: Tensor, index: int | None, image: str | None, dataset: str = "CIFAR-10"
                  ) -> tuple[Tensor, str]:
    """The probe as a 3 x S x S uint8 tensor and a description: the visitor's picture when given (centre-cropped
    square and resized to S, the side the run's pictures are stored at), else the test picture ``index`` of the
    run's dataset. Raises ValueError with a clear sentence."""
    side = int(test_x.shape[-1])
    if image:
        try:
            img = ImageOps.fit(load_image(image), (side, side), Image.Resampling.BICUBIC)
        except ImageError as e:
            raise ValueError(f"The probe picture could not be used: {e}") from None
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1), "your picture"
    index = PROBE_INDEX if index is None else index
    if not 0 <= index < len(test_x):
        raise ValueError(f"The probe index must be between 0 and {len(test_x) - 1} ({dataset} test pictures); got "
                         f"{index}.")
    return test_x[index].cpu(), f"{dataset} test picture {index}"


class ProbeWatcher:
    """Made at the start of a run (it keeps the starting model's branch shares), then ``look(model, epoch)`` after
    every epoch; ``record()`` is what ``probe.json`` holds."""

    def __init__(self, model: GoogLeNet, picture: Tensor, prepare: Callable[[Tensor], Tensor], module: str,
                 description: str, start_label: str) -> None:
        (self.module,) = GoogLeNet.check_modules([module])
        self.x = prepare(picture[None]).float()
        self.description, self.start_label = description, start_label
        self.start_shares = self._with_eval(model, lambda: branch_shares(model.forward_intermediates(
            self.x, MODULE_NAMES, intermediates_only=True)))
        self.frames: list[dict[str, Any]] = []

    @staticmethod
    def _with_eval(model: GoogLeNet, work: Callable[[], Any]) -> Any:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return work()
        finally:
            model.train(was_training)

    def look(self, model: GoogLeNet, epoch: int) -> dict[str, Any]:
        """This epoch's view: {"epoch", "top": [[class, p]] x 3, "shares", "cam" (module-sized, in [0, 1]),
        "cam_class"}; kept in ``frames``."""
        def work() -> dict[str, Any]:
            features, branches = model.forward_intermediates(self.x, MODULE_NAMES)
            probs = F.softmax(model.forward_head(features).float(), 1)[0]
            cam, cls = grad_cam(model, self.x, self.module, activation=module_output(branches[self.module]))
            return {"epoch": epoch,
                    "top": [[r.name, round(r.probability, 5)] for r in top_classes(probs, model.class_names, 3)],
                    "shares": {m: {b: round(v, 5) for b, v in s.items()} for m, s in branch_shares(branches).items()},
                    "cam": np.round(cam, 4).tolist(), "cam_class": model.class_names[cls]}
        frame = self._with_eval(model, work)
        self.frames.append(frame)
        return frame

    def record(self) -> dict[str, Any]:
        return {"picture": self.description, "module": self.module, "start": self.start_label,
                "start_shares": {m: {b: round(v, 5) for b, v in s.items()} for m, s in self.start_shares.items()},
                "epochs": self.frames}
