"""CIFAR-10 in its official python format, read straight into uint8 tensors without executing code.

The batches are pickles, so they are read with a restricted unpickler that only rebuilds the builtins
and numpy array types the format uses: a tampered file cannot run anything.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
HUB_CIFAR10 = "uoft-cs/cifar10"  # the Hub's copy, in parquet: read first, with the Toronto archive as the fallback
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
DOWNLOAD_SIZE_TEXT = "about 170 MB"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
TEST_PICTURES = 10_000  # CIFAR-10's test split
META_FILE = "batches.meta"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class DataError(Exception):
    """The dataset is missing or unreadable; the message says what to do."""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def safe_unpickle(data: bytes) -> object:
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _str_keys(d: dict) -> dict:
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file -> (N x 3 x 32 x 32 uint8, N int64 labels)."""
    try:
        obj = safe_unpickle(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path} is missing.") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError ... from a damaged or tampered file
        raise DataError(f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}). Delete the folder and "
                        "download again (--download).") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch (expected a dict).")
    obj = _str_keys(obj)
    data, labels = obj.get("data"), obj.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072).")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"{path}: 'labels' must hold one class 0-9 per image.")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def dataset_folder(data_dir: str | os.PathLike) -> Path:
    root = Path(data_dir)
    return root if root.name == FOLDER else root / FOLDER


def is_available(data_dir: str | os.PathLike) -> bool:
    folder = dataset_folder(data_dir)
    return all((folder / f).is_file() for f in (*TRAIN_FILES, TEST_FILE))


def download(data_dir: str | os.PathLike) -> Path:
    """Fetch the official archive, check its published MD5, and extract it into a temporary folder that is
    renamed into place: an interrupted download or extraction never looks like a dataset."""
    import shutil
    import tempfile

    from torchvision.datasets.utils import download_and_extract_archive

    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cifar-extract-", dir=root))
    try:
        download_and_extract_archive(CIFAR10_URL, str(root), extract_root=str(staging), md5=CIFAR10_MD5)
        extracted = staging / FOLDER
        if not all((extracted / f).is_file() for f in (*TRAIN_FILES, TEST_FILE)):
            raise DataError(f"The archive from {CIFAR10_URL} does not hold {FOLDER}/ with all six batches.")
        shutil.rmtree(root / FOLDER, ignore_errors=True)  # an incomplete folder from an older crash
        os.replace(extracted, root / FOLDER)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"Could not download CIFAR-10 from {CIFAR10_URL} ({type(e).__name__}).") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset_folder(root)


def missing_data(data_dir: str | os.PathLike) -> str:
    """What to do when CIFAR-10 is not in ``data_dir`` (the command line's words; the app has its button)."""
    where = (f"The data directory {data_dir} does not exist" if not Path(data_dir).exists()
             else f"CIFAR-10 was not found in {dataset_folder(data_dir)}")
    return (f"{where}, and the Hub cache holds no copy of {HUB_CIFAR10}. Pass --download to fetch it ({HUB_CIFAR10} "
            f"from the Hub, else the Toronto archive, {DOWNLOAD_SIZE_TEXT}), or point --data-dir / CIFAR10_DIR at a "
            f"folder holding {FOLDER}/.")


@dataclass
class Cifar10:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]


def load_cifar10(data_dir: str | os.PathLike) -> Cifar10:
    folder = dataset_folder(data_dir)
    if not is_available(data_dir):
        raise DataError(missing_data(data_dir))
    parts = [read_batch(folder / f) for f in TRAIN_FILES]
    test_x, test_y = read_batch(folder / TEST_FILE)
    classes = list(CIFAR10_CLASSES)
    if (folder / META_FILE).is_file():
        try:
            meta = _str_keys(safe_unpickle((folder / META_FILE).read_bytes()))
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
            if len(names) == 10:
                classes = names
        except Exception:
            pass  # the class names are well known; a damaged meta file need not stop training
    return Cifar10(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), test_x, test_y, classes)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (first, rest): ``fraction`` of every class goes to ``first`` (20% validation, the rest the test split)."""
    g = torch.Generator().manual_seed(seed)
    first, rest = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = int(round(idx.numel() * fraction))
        first.append(idx[:k])
        rest.append(idx[k:])
    return torch.cat(first).sort().values, torch.cat(rest).sort().values


def stratified_subset(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """``size`` indices with the classes in their original proportions."""
    if size >= labels.numel():
        return torch.arange(labels.numel())
    subset, _ = stratified_split(labels, size / labels.numel(), seed)
    return subset


def write_batch(path: Path, images: np.ndarray, labels: list[int], label: str = "batch") -> None:
    """Write a batch in the official format (used by tests and tools that make small datasets)."""
    data = np.ascontiguousarray(images.reshape(len(images), -1).astype(np.uint8))
    obj = {b"batch_label": label.encode(), b"labels": list(map(int, labels)), b"data": data,
           b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_meta(folder: Path, classes: list[str] = CIFAR10_CLASSES) -> None:
    folder.joinpath(META_FILE).write_bytes(pickle.dumps({b"label_names": [c.encode() for c in classes],
                                                         b"num_cases_per_batch": 10000, b"num_vis": 3072}, protocol=2))
