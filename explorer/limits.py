"""How much memory a fine-tuning run may take: a run whose estimated peak would not fit is refused before it
starts (no run may take the process down). The limits on its settings are the profile's (``Limits``)."""

from __future__ import annotations

import os

import torch

from explorer.profile import LimitError
from training.trainer import train_memory_bytes

ZEROGPU_MEMORY_BYTES = 70 << 30  # a ZeroGPU slice; it cannot be asked from the main process
MEMORY_SHARE = 0.5  # a run may use at most this share of the memory that is free when it starts


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
