"""Write image-classification datasets as the Hub stores them (parquet, images as PNG bytes, the ``datasets``
features in the file's metadata), for the fake Hub; and the same pictures as a CIFAR-10 parquet copy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from training.data import FOLDER, TEST_FILE, TRAIN_FILES, read_batch


def png(picture: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="PNG")
    return out.getvalue()


def parquet(pictures: list[np.ndarray], labels: list, classes: list[str] | None, image_column: str = "image",
            label_column: str | None = "labels") -> bytes:
    """One split's parquet file. ``classes`` None: no ClassLabel (string or bare-number labels)."""
    columns = {image_column: pa.array([{"bytes": png(p), "path": None} for p in pictures],
                                      pa.struct([("bytes", pa.binary()), ("path", pa.string())]))}
    features: dict = {image_column: {"_type": "Image"}}
    if label_column is not None:
        columns[label_column] = pa.array(labels)
        features[label_column] = ({"names": classes, "_type": "ClassLabel"} if classes is not None else
                                  {"dtype": "string" if labels and isinstance(labels[0], str) else "int64",
                                   "_type": "Value"})
    table = pa.table(columns)
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def pictures_of(labels: np.ndarray, side: tuple[int, int] = (40, 48), seed: int = 0) -> list[np.ndarray]:
    """Learnable pictures: a colour per class with noise, ``side`` = (height, width), not square on purpose."""
    rng = np.random.default_rng(seed)
    palette = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]], float)
    return [np.clip(palette[c % 5] + rng.normal(0, 25, (*side, 3)), 0, 255).astype(np.uint8) for c in labels]


def leaves(classes: list[str], per_class: dict[str, int], seed: int = 0, **columns) -> dict[str, bytes]:
    """A small dataset in the Hub's layout: data/{split}-00000-of-00001.parquet for each split given."""
    files = {}
    for k, (split, n) in enumerate(per_class.items()):
        labels = np.repeat(np.arange(len(classes)), n)
        np.random.default_rng(seed + k).shuffle(labels)
        files[f"data/{split}-00000-of-00001.parquet"] = parquet(pictures_of(labels, seed=seed + k),
                                                               labels.tolist(), classes, **columns)
    return files


def cifar10_copy(cifar_dir: Path) -> dict[str, bytes]:
    """The CIFAR-10 batches in ``cifar_dir`` as uoft-cs/cifar10 lays them out: plain_text/{train,test}-….parquet,
    columns ``img`` and ``label``, the pictures in the batches' order."""
    from training.data import CIFAR10_CLASSES

    folder = Path(cifar_dir) / FOLDER
    files = {}
    for split, names in (("train", TRAIN_FILES), ("test", (TEST_FILE,))):
        parts = [read_batch(folder / n) for n in names]
        x = np.concatenate([p[0].numpy() for p in parts]).transpose(0, 2, 3, 1)
        y = np.concatenate([p[1].numpy() for p in parts]).tolist()
        files[f"plain_text/{split}-00000-of-00001.parquet"] = parquet(list(x), y, CIFAR10_CLASSES, "img", "label")
    return files
