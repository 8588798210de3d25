"""Running the network fast for inference: ``inference_copy``, the one way to make a copy of a model for inference
(classification, evaluation, feature caches, the atlas, looking inside on a GPU), ``shared_inference_copy`` (one per
model object), and ``InferenceEngine`` (the folded float32 network on a CPU; bfloat16, channels_last and CUDA graphs
on a GPU), which ``Classifier`` runs."""

from __future__ import annotations

import os
import threading
import weakref

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .layers import BasicConv2d
from .model import GoogLeNet


def inference_copy(model: GoogLeNet, device: str | torch.device | None = None, *, fold: bool = True) -> GoogLeNet:
    """A copy in eval mode, rebuilt from the model's config and weights (``copy.deepcopy`` takes about 20 s
    under ZeroGPU's patched torch, measured with spaces 0.51; this well under a second).

    ``fold``: every BatchNorm folded into its convolution, the auxiliary heads dropped, channels_last and no
    parameter gradients: 1.8x faster on a CPU and equal to the model in eval mode to float32 rounding. Without
    it, the same network as the model (what looking inside a branch must see)."""
    twin = type(model).skeleton(**model.config_dict())
    twin.load_state_dict(model.state_dict())
    twin.weights_source = model.weights_source
    twin.eval()
    if fold:
        twin.aux1 = twin.aux2 = None
        for module in twin.modules():
            if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fuse_conv_bn_eval(module.conv, module.bn)
                module.bn = nn.Identity()
        twin.requires_grad_(False)
        twin = twin.to(memory_format=torch.channels_last)
    return twin.to(device) if device is not None else twin


_COPIES: weakref.WeakKeyDictionary[GoogLeNet, GoogLeNet] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def shared_inference_copy(model: GoogLeNet) -> GoogLeNet:
    """``inference_copy`` on the model's device, made once per model object: the atlas's views, accentuations and
    dataset indexes of one model share it (they need a gradient for the image only)."""
    with _COPIES_LOCK:
        net = _COPIES.get(model)
        if net is None:
            net = _COPIES[model] = inference_copy(model, next(model.parameters()).device)
        return net


GRAPH_BATCHES = (1, 2, 4, 8, 16)
# One capture at a time in the process, and in thread-local mode, so a training run or another engine
# working on the same GPU from another thread can neither break a capture nor be captured into it.
_CAPTURE_LOCK = threading.Lock()


class _GraphedForward:
    """One CUDA graph for one batch size: replay costs microseconds instead of ~60 kernel launches."""

    def __init__(self, model: nn.Module, example: Tensor) -> None:
        self.static_in = example.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                model(self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"), torch.inference_mode():
            self.static_out = model(self.static_in)

    def __call__(self, x: Tensor) -> Tensor:
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out.clone()


class InferenceEngine:
    """The network prepared for fast inference on one device; thread-safe.

    CUDA graphs belong to the process that captured them: they are captured lazily, per process, so a
    ZeroGPU worker (a fork of the main process, which never touches real CUDA) captures its own.
    """

    def __init__(self, model: GoogLeNet, device: torch.device, fast: bool = True, cuda_graphs: bool = True,
                 compile_large: bool = False, warm_up: bool = True) -> None:
        self.device = device
        self.image_size = int(model.preprocessing["crop"])
        self.dtype = torch.bfloat16 if device.type == "cuda" and fast else torch.float32
        self.net = inference_copy(model, fold=fast).to(device=device, dtype=self.dtype)
        self.fast = fast
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
        self._lock = threading.Lock()
        self._graphs: dict[tuple[int, int], _GraphedForward] = {}  # (process id, batch bucket)
        # A training thread may lower torch's default thread count for threads started after it; inference
        # keeps the count the process started with.
        self._threads = torch.get_num_threads()
        self._use_graphs = fast and cuda_graphs and device.type == "cuda"
        self._large = torch.compile(self.net, dynamic=False) if compile_large and device.type == "cuda" else self.net
        if device.type == "cuda" and warm_up:  # False on ZeroGPU: its main process must not touch CUDA
            self.warm_up()

    def warm_up(self) -> None:
        self.logits(torch.zeros(1, 3, self.image_size, self.image_size, device=self.device))

    def _prepare(self, x: Tensor) -> Tensor:
        x = x.to(self.device, dtype=self.dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.fast else x

    def logits(self, batch: Tensor) -> Tensor:
        """Normalised NCHW batch -> float32 logits on the CPU."""
        n = batch.shape[0]
        if self.device.type == "cpu" and torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        with self._lock, torch.inference_mode():
            x = self._prepare(batch)
            same_size = tuple(x.shape[-2:]) == (self.image_size, self.image_size)
            bucket = next((b for b in GRAPH_BATCHES if b >= n), None)
            if self._use_graphs and same_size and bucket is not None:
                key = (os.getpid(), bucket)
                if key not in self._graphs:
                    with _CAPTURE_LOCK:
                        self._graphs[key] = _GraphedForward(self.net, torch.zeros_like(x[:1]).expand(
                            bucket, *x.shape[1:]).contiguous(memory_format=torch.channels_last))
                if bucket != n:
                    x = torch.cat([x, x.new_zeros(bucket - n, *x.shape[1:])]).contiguous(
                        memory_format=torch.channels_last)
                out = self._graphs[key](x)[:n]
            else:
                out = (self._large if n > GRAPH_BATCHES[-1] else self.net)(x)
            return out.float().cpu()
