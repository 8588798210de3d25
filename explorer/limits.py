"""Server-side limits on fine-tuning: what any visitor may ask of a shared server, API calls included.

Defaults depend on the device kind and each can be changed by environment variable for a private
server. A setting beyond a limit is refused at once, naming the limit; so is a run whose estimated
memory would not fit (no run may take the process down).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import torch

from training.trainer import train_memory_bytes

ENV = {"epochs": "GOOGLENET_MAX_EPOCHS", "train_size": "GOOGLENET_MAX_TRAIN_SIZE",
       "image_size": "GOOGLENET_MAX_IMAGE_SIZE", "batch_size": "GOOGLENET_MAX_BATCH_SIZE",
       "run_seconds": "GOOGLENET_MAX_RUN_SECONDS"}
MAX_RUNS_ENV, MAX_RUNS_DEFAULT = "GOOGLENET_MAX_RUNS", 20
ZEROGPU_MEMORY_BYTES = 70 << 30  # a ZeroGPU slice; it cannot be asked from the main process
MEMORY_SHARE = 0.5  # a run may use at most this share of the memory that is free when it starts


class LimitError(ValueError):
    """A fine-tuning setting beyond what this server allows."""


@dataclass(frozen=True)
class Limits:
    epochs: int
    train_size: int
    image_size: int
    batch_size: int
    run_seconds: int

    @classmethod
    def for_device(cls, kind: str) -> Limits:
        """``kind``: "cpu", "cuda" or "zerogpu"; each value may be overridden by its environment variable."""
        defaults = {"cpu": cls(epochs=10, train_size=10_000, image_size=128, batch_size=128, run_seconds=600),
                    "cuda": cls(epochs=30, train_size=50_000, image_size=224, batch_size=512, run_seconds=1800),
                    "zerogpu": cls(epochs=10, train_size=20_000, image_size=160, batch_size=256, run_seconds=110)}
        base = defaults.get(kind, defaults["cpu"])
        values = {}
        for f in fields(cls):
            raw = os.environ.get(ENV[f.name], "").strip()
            values[f.name] = int(raw) if raw.isdigit() and int(raw) > 0 else getattr(base, f.name)
        return cls(**values)

    def check(self, epochs: int, train_size: int, image_size: int, batch_size: int) -> None:
        asked = {"epochs": epochs, "train_size": train_size, "image_size": image_size, "batch_size": batch_size}
        words = {"epochs": "epochs", "train_size": "training images", "image_size": "px image size",
                 "batch_size": "images per batch"}
        for name, value in asked.items():
            if value > getattr(self, name):
                raise LimitError(f"This server allows at most {getattr(self, name)} {words[name]} per run "
                                 f"({ENV[name]}); {value} was asked for.")


def max_runs() -> int:
    raw = os.environ.get(MAX_RUNS_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else MAX_RUNS_DEFAULT


def available_memory(device: torch.device, zero_gpu: bool = False) -> int:
    """Bytes a run could use now: free GPU memory, or the machine's available memory."""
    if zero_gpu:
        return ZEROGPU_MEMORY_BYTES
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_memory(batch_size: int, image_size: int, available: int) -> None:
    """Refuse a run whose estimated peak memory exceeds its share of what is available."""
    need = train_memory_bytes(batch_size, image_size)
    if need > MEMORY_SHARE * available:
        raise LimitError(f"A batch of {batch_size} at {image_size} px needs about {need / 2**30:.1f} GiB, more than "
                         f"this server can spare ({MEMORY_SHARE * available / 2**30:.1f} GiB). Use a smaller batch "
                         "size or image size.")
