"""Choosing where the network runs: CUDA, else Apple MPS, else CPU, unless the caller names a device."""

from __future__ import annotations

import torch


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested``: 'auto' (or None), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    choice = str(requested or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise ValueError(f"Unknown device '{choice}': use auto, cpu, cuda or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for, but no CUDA GPU is available here; use 'auto' or 'cpu'.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("Apple MPS was asked for, but it is not available here; use 'auto' or 'cpu'.")
    return device


def device_label(device: torch.device, zero_gpu: bool = False) -> str:
    """A person's name for the device: the GPU's model, or 'CPU (N threads)'. ``zero_gpu``: a ZeroGPU Space's
    main process, where CUDA is only real inside its workers."""
    if device.type == "cuda" and zero_gpu:
        return "ZeroGPU (a slice of an H200, lent per call)"  # asking the card's name would initialise CUDA
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
