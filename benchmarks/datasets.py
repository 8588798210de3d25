"""From pressing Start to the first training step, per data source, against CIFAR-10's python batches (today's
source) in the same run.

    python benchmarks/datasets.py [--cifar-per-class 5000] [--photos 1000] [--zip 200]

A local stand-in for the Hub (tests/fakehub.py, on 127.0.0.1) serves what this script writes: CIFAR-10 in
uoft-cs/cifar10's layout (parquet, PNG pictures, generated at CIFAR-10's real size by default), and a 3-class dataset
of ``--photos`` JPEG pictures (256 x 256, train/validation/test 80/10/10), as AI-Lab-Makerere/beans is laid out.
A zip of ``--zip`` JPEG photos (640 x 480) stands for a visitor's upload. Each source is timed twice through the
engine (``training.train``, a full fine-tune from scratch at 64 px, the run cancelled at its first step): first
from the Hub cache with no decoded copy (the pictures decoded), then again (the decoded copy read). Last line: JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import ROOT, print_json, print_table

sys.path.insert(0, str(ROOT / "tests"))


def _jpeg(picture: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _pictures(n: int, shape: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3, 1, 1, 3))
    return [np.clip(base[i % 3] + rng.normal(0, 30, (*shape, 3)), 0, 255).astype(np.uint8) for i in range(n)]


def first_step_seconds(dataset: str, data_dir: Path, out: Path) -> float:
    """Seconds from ``train()`` to its first training step (then it is cancelled)."""
    from training import Callbacks, TrainConfig, train

    cancel, started, seen = threading.Event(), time.perf_counter(), []

    class First(Callbacks):
        def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
            if not seen:
                seen.append(time.perf_counter() - started)
            cancel.set()

    config = TrainConfig(dataset=dataset, data_dir=str(data_dir), weights="none", output=str(out), device="cpu",
                         epochs=1, batch_size=32, image_size=64, train_size=512, freeze_backbone=False,
                         evaluate_test=False)
    train(config, First(), cancel)
    return seen[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cifar-per-class", type=int, default=5000, help="training pictures per class (test: a fifth)")
    p.add_argument("--photos", type=int, default=1000)
    p.add_argument("--zip", type=int, default=200)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    os.environ["HF_HOME"] = str(work / "hf-home")
    from fakehub import FakeHub

    hub = FakeHub().start()
    os.environ["HF_ENDPOINT"] = hub.url
    from data.make_cifar import make_dataset
    from data.make_parquet import cifar10_copy

    t = time.perf_counter()
    cifar = make_dataset(work / "cifar", per_class_train=args.cifar_per_class,
                         per_class_test=max(1, args.cifar_per_class // 5))
    hub.add_commit("datasets/uoft-cs/cifar10", cifar10_copy(cifar))
    n = args.photos
    splits = {"train": int(n * 0.8), "validation": n // 10, "test": n // 10}
    files = {}
    for k, (split, count) in enumerate(splits.items()):
        labels = np.arange(count) % 3
        pictures = _pictures(count, (256, 256), k)
        cells = pa.array([{"bytes": _jpeg(x), "path": None} for x in pictures],
                         pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        tab = pa.table({"image": cells, "labels": pa.array(labels.tolist())}).replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": {"image": {"_type": "Image"}, "labels": {
                "_type": "ClassLabel", "names": ["angular_leaf_spot", "bean_rust", "healthy"]}}}})})
        buf = io.BytesIO()
        pq.write_table(tab, buf)
        files[f"data/{split}-00000-of-00001.parquet"] = buf.getvalue()
    hub.add_commit("datasets/bench/leaves", files)
    photos = work / "photos.zip"
    with zipfile.ZipFile(photos, "w") as z:
        for i, x in enumerate(_pictures(args.zip, (480, 640), 9)):
            z.writestr(f"{('cats', 'dogs')[i % 2]}/{i}.jpg", _jpeg(x))
    print(f"data written in {time.perf_counter() - t:.0f} s (generation, not measured below)")

    from training.sources import load_source

    empty = work / "no-batches"
    empty.mkdir()
    load_source("cifar10", data_dir=empty, image_size=64, download=True)  # the Hub cache filled, nothing decoded kept
    load_source("bench/leaves", data_dir=empty, image_size=64)
    rows, record = [], {}
    cases = [("batches", "CIFAR-10, python batches (today's source)", "cifar10", cifar),
             ("hub_cifar10", "CIFAR-10 from the Hub cache", "cifar10", work / "hub-cifar"),
             ("hub_small", f"3 classes, {n} pictures, from the Hub cache", "bench/leaves", work / "hub-leaves"),
             ("zip", f"a zip of {args.zip} photos", str(photos), work / "zip")]
    for k, (key, what, dataset, data_dir) in enumerate(cases):
        data_dir.mkdir(exist_ok=True)
        first = first_step_seconds(dataset, data_dir, work / f"run-{k}-a")
        again = first_step_seconds(dataset, data_dir, work / f"run-{k}-b")
        record[key] = {"first_s": round(first, 2), "again_s": round(again, 2)}
        rows += [(f"{what}: first run (decoding)", "", f"{first:.2f} s", ""),
                 (f"{what}: again (the decoded copy)", "", f"{again:.2f} s", "")]
    base = record["batches"]["again_s"]
    for key, (first, again) in zip(record, zip(rows[::2], rows[1::2])):
        rows[rows.index(first)] = (*first[:1], f"{base:.2f} s", first[2], f"{base / record[key]['first_s']:.2f}")
        rows[rows.index(again)] = (*again[:1], f"{base:.2f} s", again[2], f"{base / record[key]['again_s']:.2f}")
    print("seconds from train() to the first step; baseline: CIFAR-10's python batches, read again")
    print_table(rows)
    hub.stop()
    print_json(record)


if __name__ == "__main__":
    main()
