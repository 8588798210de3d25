"""The app's caches in memory (the disk cache is ``training.storage.DiskCache``):

* ``ExampleAnswers``: answers for the example photos, computed once per photo, model weights and options and then
  served from memory: a click on an example spends no GPU time (no ZeroGPU quota) after the first. A picture
  counts as an example by its content (Gradio copies an example into its cache under a new name), and a model by
  the fingerprint of all its weights and class names (``answer_fingerprint``), so a retrained run never gets a
  stale answer, and two runs that share a frozen backbone never get each other's.
* ``fingerprint``: a model's backbone fingerprint, hashed once per model object (the key of every cached view).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from explorer.concurrency import KeyedLock
from googlenet import GoogLeNet

T = TypeVar("T")


def digest(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks (``hashlib.file_digest`` needs Python 3.11; ZeroGPU runs 3.10)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_FINGERPRINTS: weakref.WeakKeyDictionary[GoogLeNet, str] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def fingerprint(model: GoogLeNet) -> str:
    """``model.backbone_fingerprint()``, computed once per model object (hashing the weights takes a while)."""
    with _LOCK:
        if model not in _FINGERPRINTS:
            _FINGERPRINTS[model] = model.backbone_fingerprint()
        return _FINGERPRINTS[model]


_ANSWERS: weakref.WeakKeyDictionary[GoogLeNet, str] = weakref.WeakKeyDictionary()


def answer_fingerprint(model: GoogLeNet) -> str:
    """The backbone's fingerprint with the classifier heads and the class names: the key of anything the head
    decides (a classification). Runs that froze the same backbone share ``fingerprint`` but not this."""
    with _LOCK:
        known = _ANSWERS.get(model)
    if known is None:
        h = hashlib.sha256(fingerprint(model).encode())
        for layer in model.classifier_heads():
            for name, tensor in sorted(layer.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
        h.update(repr(list(model.class_names)).encode())
        known = h.hexdigest()[:32]
        with _LOCK:
            _ANSWERS[model] = known
    return known


class ExampleAnswers:
    def __init__(self, photos: Iterable[Path], capacity: int = 128) -> None:
        photos = tuple(photos)  # read twice below
        self._photos = {digest(p) for p in photos}
        self._sizes = {Path(p).stat().st_size for p in photos}
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock, self._computing = threading.Lock(), KeyedLock()
        self.capacity = capacity

    def photo(self, image: str) -> str | None:
        """The example photo this picture is (its digest), or None for any other picture (a file of another size
        is not even read)."""
        try:
            if Path(image).stat().st_size not in self._sizes:
                return None
            found = digest(image)
        except OSError:
            return None
        return found if found in self._photos else None

    def answer(self, key: tuple | None, compute: Callable[[], T]) -> tuple[T, bool]:
        """(the answer, whether it came from the cache); computed once for concurrent first clicks."""
        if key is None:
            return compute(), False
        with self._computing(key):
            with self._lock:
                if key in self._answers:
                    self._answers.move_to_end(key)
                    return self._answers[key], True
            value = compute()
            with self._lock:
                self._answers[key] = value
                while len(self._answers) > self.capacity:
                    self._answers.popitem(last=False)
            return value, False
