"""A precomputed atlas on disk: its folder's layout, reading it (a folder, or a Hub dataset repo through the Hub
cache) and publishing it. The folder (``VERSION`` 1)::

    atlas.json                       model fingerprint, weights, settings, method, reference set, and per channel its
                                     score (its image's mean pre-ReLU activation, the image resized to the model's
                                     input size) and its examples' captions
    vis/MODULE/BRANCH/NNNN.png       the visualisation, ``size`` px
    thumbs/MODULE/BRANCH/NNNN.png    the same at ``THUMB`` px
    examples/MODULE/BRANCH/NNNN.png  a strip of the reference patches that excite it most
    README.md                        the dataset card
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from explorer.caches import fingerprint
from googlenet import GoogLeNet

log = logging.getLogger("inception-explorer")
VERSION = 1
THUMB = 64  # px: a channel's tile in a grid, precomputed or rendered
SEED = 0  # every atlas image, precomputed or on demand, is rendered from this seed
INDEX, PROGRESS, CARD = "atlas.json", "progress.json", "README.md"


def channel_file(kind: str, module: str, branch: str, channel: int) -> str:
    """The path of one channel's picture inside an atlas folder (``kind``: vis, thumbs or examples)."""
    return f"{kind}/{module}/{branch}/{int(channel):04d}.png"


def save_png(image: Image.Image, text: dict[str, str] | None = None, compress_level: int = 1) -> Callable[[Path], None]:
    """A writer for ``atomic_write``/``DiskCache.put``; level 1 (the cache's) is 4x faster than the default and ~15%
    larger, a published atlas uses 6."""
    def write(path: Path) -> None:
        info = PngImagePlugin.PngInfo()
        for k, v in (text or {}).items():
            info.add_text(k, v)
        image.save(path, format="PNG", pnginfo=info, compress_level=compress_level)
    return write


def dataset_card(record: dict[str, Any]) -> str:
    """The Hub dataset card of an atlas."""
    s = record["settings"]
    n = len(record["channels"])
    return f"""---
tags: [feature-visualization, googlenet, inception, interpretability, inception-explorer]
license: bsd-3-clause  # as the weights it is made from (torchvision's)
---
# GoogLeNet channel atlas

{n} channels of {", ".join(record["modules"])} (branches {", ".join(record["branches"])}) of the GoogLeNet whose
backbone fingerprint is `{record["fingerprint"]}` (weights: `{record["weights"] or "not recorded"}`), made by
Inception Explorer with `python -m explorer.atlas build`.

Each channel has an image optimised to excite it ({s["steps"]} steps at {s["size"]} px, seed {s["seed"]}, method
`{s["method"]}`: a Fourier-parameterised image with decorrelated colour and random transforms, as in Lucid), a
{THUMB} px thumbnail, and a strip of the reference pictures ({record["reference"]["name"]}) that excite it most.
`atlas.json` holds, per channel, its image's mean pre-ReLU activation with the image resized to the model's input
size, and the reference pictures' captions. Set `GOOGLENET_ATLAS` to this repo to serve it from the app.
"""


@dataclass
class Atlas:
    """A precomputed atlas folder, as the app serves it."""

    folder: Path
    record: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return self.record["fingerprint"]

    def has(self, module: str, branch: str, channel: int) -> bool:
        return f"{module}/{branch}/{int(channel)}" in self.record["channels"]

    def picture(self, kind: str, module: str, branch: str, channel: int) -> Path:
        return self.folder / channel_file(kind, module, branch, channel)

    def captions(self, module: str, branch: str, channel: int) -> list[str]:
        return self.record["channels"][f"{module}/{branch}/{int(channel)}"]["examples"]

    def describes(self, model: GoogLeNet) -> bool:
        return fingerprint(model) == self.fingerprint


def load_atlas(spec: str | None) -> Atlas | None:
    """The atlas ``GOOGLENET_ATLAS`` names (a folder, or a Hub dataset repo ``OWNER/NAME[@revision]``, through the
    Hub cache), or None with one log line when there is none or it cannot be read."""
    if not spec:
        return None
    try:
        folder = Path(spec)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            from googlenet.hub import parse_weights_spec

            repo_id, revision = parse_weights_spec(spec)
            folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
        record = json.loads((folder / INDEX).read_text())
        if record.get("version") != VERSION or not isinstance(record.get("channels"), dict):
            raise ValueError(f"not an atlas of version {VERSION}")
        return Atlas(folder, record)
    except Exception as e:  # noqa: BLE001 - the app works without an atlas; say why once
        log.warning("atlas %s not used: %s", spec, str(e)[:200])
        return None


def push(out: Path, repo_id: str, token: str | None = None) -> str:
    """Upload an atlas folder as a Hub dataset repo (the maintainer's step; the token from their login)."""
    from googlenet.publish import push_folder

    return push_folder(out, repo_id, token, repo_type="dataset", allow_patterns=[INDEX, CARD, "vis/**", "thumbs/**",
                                                                                  "examples/**"],
                       commit_message="GoogLeNet channel atlas (Inception Explorer)")
