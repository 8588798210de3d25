"""Publish torchvision's IMAGENET1K_V1 GoogLeNet to the Hub in this project's format.

    python -m googlenet.publish --repo-id OWNER/NAME [--output DIR] [--no-push] [--private]

The token comes from ``HF_TOKEN`` or ``hf auth login``; it is never printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torchvision.models import GoogLeNet_Weights

from .convert import from_torchvision
from .hub import WeightsError, check_repo_id
from .weights import TORCHVISION_URL

MODEL_CARD = """---
license: bsd-3-clause
library_name: inception-explorer
pipeline_tag: image-classification
tags: [googlenet, inception-v1, image-classification, pytorch_model_hub_mixin]
datasets: [imagenet-1k]
model-index:
- name: GoogLeNet (Inception v1), torchvision IMAGENET1K_V1
  results:
  - task: {{type: image-classification}}
    dataset: {{name: ImageNet-1k, type: imagenet-1k, split: validation}}
    metrics:
    - {{type: accuracy, name: top-1, value: {top1}}}
    - {{type: accuracy, name: top-5, value: {top5}}}
---

# GoogLeNet (Inception v1): torchvision's IMAGENET1K_V1 weights

GoogLeNet from Szegedy et al., "Going Deeper with Convolutions" (2014), with the ImageNet weights that
torchvision publishes ({url}), converted to `config.json` + `model.safetensors` for
Inception Explorer, a Gradio app that classifies pictures, looks inside the Inception modules and fine-tunes on
CIFAR-10.

- **Metrics** (as published by torchvision, ImageNet-1k validation, 224 px centre crop): top-1 {top1}%,
  top-5 {top5}%.
- **Source**: torchvision `GoogLeNet_Weights.IMAGENET1K_V1`; torchvision says they are ported from the paper.
- **Licence**: BSD-3-Clause (torchvision's). ImageNet's own terms apply to uses of the data.
- **Conversion**: the `.pth` was read with `torch.load(weights_only=True)`; tensors were loaded by name
  (strictly) into the project's `GoogLeNet(variant="torchvision")`, whose outputs equal torchvision's
  up to float32 rounding, and written with safetensors. The auxiliary heads' weights are included.
- **Layout**: torchvision's port, not Table 1 exactly: 3x3 convolutions where the paper's fifth-column
  branch has 5x5, BatchNorm instead of LRN. `config.json` records the variant, the 1000 class names and
  the preprocessing (resize 256 bilinear with antialias, centre crop 224, ImageNet mean/std).

```python
from googlenet import GoogLeNet
model = GoogLeNet.from_pretrained("{repo_id}")
```
"""


def build_folder(state_dict: Mapping[str, torch.Tensor], output: Path, repo_id: str) -> Path:
    """Write config, safetensors and model card for torchvision-format GoogLeNet weights."""
    model = from_torchvision(state_dict, transform_input=True)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    metrics = GoogLeNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]  # torchvision's own figures
    card = MODEL_CARD.format(url=TORCHVISION_URL, repo_id=repo_id, top1=metrics["acc@1"], top5=metrics["acc@5"])
    (output / "README.md").write_text(card, encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo-id", required=True, help="OWNER/NAME of the Hub model repo to create or update")
    parser.add_argument("--output", type=Path, default=Path("published-weights"), help="local folder to write")
    parser.add_argument("--no-push", action="store_true", help="only write the local folder")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    try:
        check_repo_id(args.repo_id)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from torchvision.models import GoogLeNet_Weights

    try:
        state = GoogLeNet_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except Exception as e:
        print(f"error: could not fetch torchvision's weights: {e}", file=sys.stderr)
        return 1
    folder = build_folder(state, args.output, args.repo_id)
    print(f"wrote {folder}")
    if args.no_push:
        return 0
    url = push_folder(folder, args.repo_id, token=None, private=args.private,
                      commit_message="GoogLeNet IMAGENET1K_V1 from torchvision, as safetensors")
    print(f"pushed to {url}")
    return 0


def push_folder(folder: Path, repo_id: str, token: str | None, *, private: bool = False,
                allow_patterns: list[str] | None = None, commit_message: str = "Upload GoogLeNet weights",
                repo_type: str = "model") -> str:
    """Create the repo if needed and upload the folder; returns the commit's URL.

    ``token=None`` means huggingface_hub's own lookup (``HF_TOKEN``, ``hf auth login``): only for the owner's
    command line. Code acting for a visitor must pass the visitor's token.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), allow_patterns=allow_patterns,
                             commit_message=commit_message, repo_type=repo_type)
    return str(getattr(info, "commit_url", info))


if __name__ == "__main__":
    sys.exit(main())
