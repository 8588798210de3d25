"""Write a small, learnable CIFAR-10-format dataset (official pickle layout) for tests and demos.

    python tests/data/make_cifar.py OUT_DIR [--per-class-train 40] [--per-class-test 20]

Each class is a colour with a class-specific stripe pattern, plus noise: easy to learn, not trivial.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from training.data import FOLDER, TEST_FILE, TRAIN_FILES, write_batch, write_meta  # noqa: E402

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [128, 128, 128]], float)


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    img = np.empty((n, 32, 32, 3))
    yy, xx = np.mgrid[0:32, 0:32]
    for i, c in enumerate(labels):
        stripes = ((xx * np.cos(c * 0.3) + yy * np.sin(c * 0.3)) // (2 + c % 4)) % 2
        img[i] = PALETTE[c] * (0.6 + 0.4 * stripes[..., None])
    img += rng.normal(0, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)  # N x 3 x 32 x 32, as the format stores


def make_dataset(out: Path, per_class_train: int = 40, per_class_test: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = np.repeat(np.arange(10), per_class_train)
    rng.shuffle(train_labels)
    for k, name in enumerate(TRAIN_FILES):
        part = train_labels[k::len(TRAIN_FILES)]
        write_batch(folder / name, make_images(part, rng), part.tolist(), f"training batch {k + 1} of 5")
    test_labels = np.repeat(np.arange(10), per_class_test)
    rng.shuffle(test_labels)
    write_batch(folder / TEST_FILE, make_images(test_labels, rng), test_labels.tolist(), "testing batch 1 of 1")
    write_meta(folder)
    return Path(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class-train", type=int, default=40)
    parser.add_argument("--per-class-test", type=int, default=20)
    a = parser.parse_args()
    print(make_dataset(a.out, a.per_class_train, a.per_class_test))
