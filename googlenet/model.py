"""GoogLeNet (Inception v1) as in Table 1 of Szegedy et al., "Going Deeper with Convolutions" (2014).

Two layouts share one set of module names, so weights move between them and torchvision by name:

* ``variant="paper"``: the architecture of Table 1 and Section 5, with 5x5 convolutions in the third
  branch, the stem's 1x1 reduction, and auxiliary heads with a 5x5/3 average pool.
* ``variant="torchvision"``: the layout of torchvision's pretrained port (3x3 where the paper has 5x5,
  BatchNorm eps 1e-3, ceil-mode pools, a 2x2 pool before 5a, adaptive 4x4 pools in the auxiliary heads,
  dropout 0.2), so its published ImageNet weights give exactly its outputs.

Every convolution is conv + BatchNorm + ReLU. The paper's local response normalisation is replaced by
BatchNorm (as in torchvision and most PyTorch ports), which is what makes the network trainable from scratch
without the paper's careful schedule.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from .hub import CONFIG_NAME, WEIGHTS_NAME, WeightsError, check_state_dict, load_state_dict_file, locate, read_config
from .labels import numbered_classes
from .layers import AUX_DROPOUT, BRANCH_KEYS, BasicConv2d, Inception, InceptionAux, bn_eps, init_classifier

VARIANTS = ("paper", "torchvision")
MODULE_NAMES = (
    "inception3a", "inception3b",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
    "inception5a", "inception5b",
)
DEFAULT_MODULE = "inception4c"  # the module every view opens on: mid-depth, where parts of objects show
DEFAULT_BRANCH = "3x3"  # the branch every channel view opens on
# The main path in forward order (Table 1's rows); the auxiliary heads tap the output of these stages.
STAGE_NAMES = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
               "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
               "inception5a", "inception5b")
AUX_TAPS = {"inception4a": "aux1", "inception4d": "aux2"}


def input_stage(module: str) -> str:
    """The stage whose output ``module`` reads: the previous module, the max pool between two groups of modules, or
    for inception3a the stem's last pool."""
    return STAGE_NAMES[STAGE_NAMES.index(module) - 1]


# Table 1 columns: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj (input channels are derived).
INCEPTION_SPECS: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
# The widest branch's channel count: a bound any channel number is checked against before the model's own check.
MAX_BRANCH_CHANNELS = max(max(spec[0], spec[2], spec[4], spec[5]) for spec in INCEPTION_SPECS.values())

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_preprocessing(image_size: int = 224, resize: int | None = None) -> dict[str, Any]:
    """Preprocessing as data (torchvision's ``transforms()`` idea): resize shorter side, centre crop, normalise."""
    return {
        "resize": resize if resize is not None else (image_size * 256) // 224,
        "crop": image_size,
        "interpolation": "bilinear",
        "antialias": True,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


class GoogLeNetOutputs(NamedTuple):
    """Training mode with auxiliary heads: the logits and the two auxiliary heads' (as torchvision orders them)."""

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class GoogLeNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="inception-explorer",
    tags=["image-classification", "googlenet", "inception-v1"],
    license="bsd-3-clause",
    repo_url="https://github.com/inception-explorer/inception-explorer",
):
    """GoogLeNet of Table 1; any input from 32 px up (global pooling is adaptive).

    Training mode with auxiliary heads returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``;
    eval mode returns the logits. The init arguments are the model's config (``config.json`` on the Hub),
    so class names and preprocessing travel with the weights.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        variant: str = "paper",
        transform_input: bool = False,
        dropout: float | None = None,
        dropout_aux: float = AUX_DROPOUT,
        class_names: list[str] | None = None,
        preprocessing: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, not {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.variant = variant
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.class_names = list(class_names) if class_names else numbered_classes(num_classes)
        self.preprocessing = dict(preprocessing) if preprocessing else default_preprocessing()
        self.training_info = dict(training) if training else None  # how a fine-tuned run made these weights
        # Buffers (not per-call tensors), so the forward makes no host-to-device copies: CUDA graphs need that.
        self.register_buffer("input_scale", torch.empty(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", torch.empty(1, 3, 1, 1), persistent=False)
        self._set_input_transform()
        tv = variant == "torchvision"
        eps = bn_eps(variant)

        def pool(k: int = 3) -> nn.MaxPool2d:
            return nn.MaxPool2d(k, stride=2, ceil_mode=True) if tv else nn.MaxPool2d(k, stride=2, padding=1)

        self.conv1 = BasicConv2d(3, 64, eps=eps, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = pool()
        self.conv2 = BasicConv2d(64, 64, eps=eps, kernel_size=1)  # the stem's 1x1 reduction (Table 1), which ports often skip
        self.conv3 = BasicConv2d(64, 192, eps=eps, kernel_size=3, padding=1)
        self.maxpool2 = pool()
        channels = 192
        for name, spec in INCEPTION_SPECS.items():
            setattr(self, name, Inception(channels, *spec, variant=variant))
            channels = spec[0] + spec[2] + spec[4] + spec[5]
            if name == "inception3b":
                self.maxpool3 = pool()
            elif name == "inception4e":
                self.maxpool4 = pool(2) if tv else pool()
        self.aux1: InceptionAux | None = InceptionAux(512, num_classes, variant, dropout_aux) if aux_logits else None
        self.aux2: InceptionAux | None = InceptionAux(528, num_classes, variant, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout if dropout is not None else (0.2 if tv else 0.4))
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()
        self.weights_source = "untrained (new)"

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.Linear):
                init_classifier(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _set_input_transform(self) -> None:
        # torchvision's weights expect inputs in [-1, 1]: x * scale + shift maps ImageNet-normalised input there.
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            self.input_scale.copy_(std / 0.5)
            self.input_shift.copy_((mean - 0.5) / 0.5)

    @classmethod
    def skeleton(cls, **config: Any) -> Self:
        """The model ``config`` describes, on the CPU, its weights left uninitialised because they are about to be
        loaded (drawing 7M random numbers only to overwrite them took a quarter of a second a model)."""
        with torch.device("meta"):
            model = cls(**config)
        model = model.to_empty(device="cpu")
        model._set_input_transform()  # the buffers no state dict carries
        return model

    def stages(self) -> Iterator[tuple[str, nn.Module]]:
        """The main path in forward order: what knockout, Grad-CAM and feature capture walk along."""
        return ((name, getattr(self, name)) for name in STAGE_NAMES)

    def _transform_input(self, x: Tensor) -> Tensor:
        # torchvision's weights expect inputs scaled to [-1, 1]; this maps ImageNet-normalised input there.
        if not self.transform_input:
            return x
        return x * self.input_scale.to(x.dtype) + self.input_shift.to(x.dtype)

    def forward_intermediates(self, x: Tensor, modules: Sequence[str] | None = None, *, stop_early: bool = False,
                              intermediates_only: bool = False) -> Any:
        """timm's ``forward_intermediates``, input first: the last feature map and the intermediates of ``modules``
        (stage names; default the nine Inception modules) from one pass in eval semantics, without hooks, so
        concurrent callers on one shared model never mix. An Inception module's intermediate is its four branch
        outputs ``{"1x1", "3x3", "5x5", "pool"}`` (after their last ReLU), any other stage's its output.

        ``stop_early``: stop after the last of ``modules`` (the feature map returned is then that stage's output,
        the input of the stage after it). ``intermediates_only``: return the intermediates alone."""
        wanted = list(MODULE_NAMES if modules is None else modules)
        unknown = [str(m)[:40] for m in wanted if m not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGE_NAMES)}")
        last = max((STAGE_NAMES.index(m) for m in wanted), default=-1)
        x = self._transform_input(x)
        captured: dict[str, Any] = {}
        for k, (name, layer) in enumerate(self.stages()):
            if stop_early and k > last:
                break
            if name in wanted and isinstance(layer, Inception):
                captured[name] = layer.forward_branches(x)
                x = torch.cat(list(captured[name].values()), 1)
            else:
                x = layer(x)
                if name in wanted:
                    captured[name] = x
        return captured if intermediates_only else (x, captured)

    def forward_from(self, x: Tensor, stage: str) -> Tensor:
        """The last feature map, from the output ``x`` of ``stage`` on (what knockout and Grad-CAM run; the logits
        are ``forward_head`` of it)."""
        if stage not in STAGE_NAMES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NAMES)}")
        for name in STAGE_NAMES[STAGE_NAMES.index(stage) + 1:]:
            x = getattr(self, name)(x)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """The last feature map before global pooling (N x 1024 x H/32 x W/32), as timm means the name."""
        return self._trunk(x)[0]

    def _trunk(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # The last feature map and, in training mode with auxiliary heads, their logits by head name.
        x = self._transform_input(x)
        aux: dict[str, Tensor] = {}
        use_aux = self.training and self.aux1 is not None
        for name, layer in self.stages():
            x = layer(x)
            if use_aux and name in AUX_TAPS:
                aux[AUX_TAPS[name]] = getattr(self, AUX_TAPS[name])(x)
        return x, aux

    def forward_head(self, features: Tensor) -> Tensor:
        """Global average pooling, dropout and the classifier."""
        return self.fc(self.dropout(torch.flatten(self.avgpool(features), 1)))

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        features, aux = self._trunk(x)
        logits = self.forward_head(features)
        if aux:
            return GoogLeNetOutputs(logits, aux["aux2"], aux["aux1"])
        return logits

    def classifier_heads(self) -> list[nn.Linear]:
        """The layers that map features to classes: ``fc`` and each auxiliary head's last layer."""
        return [self.fc] + [head.fc2 for head in (self.aux1, self.aux2) if head is not None]

    def reset_classifier(self, num_classes: int, class_names: list[str] | None = None) -> None:
        """New, freshly initialised class layers for another task (timm's name for it); the backbone stays."""
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        device = self.fc.weight.device
        self.fc = nn.Linear(self.fc.in_features, num_classes, device=device)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = nn.Linear(head.fc2.in_features, num_classes, device=device)
        for layer in self.classifier_heads():
            init_classifier(layer)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else numbered_classes(num_classes)

    def _save_pretrained(self, save_directory: Path) -> None:
        """safetensors weights and a config written from the live model (never a pickle, never stale)."""
        from safetensors.torch import save_file

        state = {k: v.detach().to("cpu", copy=False).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})
        (save_directory / CONFIG_NAME).write_text(json.dumps(self.config_dict(), indent=2))

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        num_classes: int | None = None,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> Self:
        """Load from a Hub repo id or a local ``save_pretrained`` folder; safetensors only, ``WeightsError`` on any
        problem.

        This overrides the mixin's ``from_pretrained`` rather than its ``_from_pretrained`` hook: the mixin fetches
        ``config.json`` itself, without the bounded probe that makes an unreachable Hub cost seconds, swallows the
        Hub's errors, and builds the model from the config unchecked. Here every problem is a typed
        ``WeightsError`` (``hub.py``), the same arguments are accepted, and ``model_kwargs`` override the config."""
        files = locate(str(pretrained_model_name_or_path), revision, force_download=force_download, token=token,
                       cache_dir=cache_dir, local_files_only=local_files_only)
        config = read_config(files.config, files.where)
        allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
        kwargs = {k: v for k, v in config.items() if k in allowed} | model_kwargs
        if num_classes is not None and kwargs.get("num_classes", 1000) != num_classes:
            raise WeightsError("mismatch", f"{files.where} has {kwargs.get('num_classes', 1000)} classes, but "
                                           f"{num_classes} were asked for.")
        try:
            model = cls.skeleton(**kwargs)
        except (TypeError, ValueError) as e:
            raise WeightsError("mismatch", f"{CONFIG_NAME} of {files.where} does not describe a valid model: "
                                           f"{e}") from None
        state = load_state_dict_file(files.weights, files.where)
        check_state_dict(model, state, files.where)
        model.load_state_dict(state, strict=True)
        model.weights_source = files.source
        return model.to(map_location).eval()

    def backbone_fingerprint(self, *extra: Any) -> str:
        """A hash of everything but the classifier heads (weights, BatchNorm statistics) and the preprocessing,
        plus ``extra`` (bytes, or anything with a stable repr): the key of every cache of backbone outputs."""
        h = hashlib.sha256()
        heads = {id(p) for layer in self.classifier_heads() for p in layer.parameters()}
        for name, tensor in self.state_dict(keep_vars=True).items():
            if id(tensor) not in heads and tensor.is_floating_point():
                h.update(name.encode())
                h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        h.update(json.dumps(self.preprocessing, sort_keys=True).encode())
        for item in extra:
            h.update(item if isinstance(item, bytes) else repr(item).encode())
        return h.hexdigest()[:32]

    @staticmethod
    def check_modules(modules: Iterable[str] | None) -> list[str]:
        """The named Inception modules (all of them for None), or a clear ``ValueError``."""
        names = list(MODULE_NAMES if modules is None else modules)
        unknown = [str(n)[:40] for n in names if n not in MODULE_NAMES]
        if unknown:
            what = f"module {unknown[0]!r}" if len(unknown) == 1 else f"modules {unknown}"
            raise ValueError(f"Unknown Inception {what}; choose from {', '.join(MODULE_NAMES)}.")
        return names

    def check_branch(self, module: str, branch: str, channels: Iterable[int] | None = None) -> None:
        """Refuse (``ValueError``, in a sentence) an unknown module or branch, or a channel the branch lacks."""
        (module,) = self.check_modules([module])
        if branch not in BRANCH_KEYS:
            raise ValueError(f"Unknown branch {str(branch)[:20]!r}; choose from {', '.join(BRANCH_KEYS)}.")
        if channels is not None:
            channels, count = list(channels), self.branch_width(module, branch)
            bad = [c for c in channels if not 0 <= int(c) < count]
            if bad or not channels:
                raise ValueError(f"{module} {branch} has channels 0..{count - 1}; got {channels[:8] or 'none'}.")

    def branch_width(self, module: str, branch: str) -> int:
        """How many channels ``branch`` of ``module`` has."""
        self.check_branch(module, branch)
        return getattr(self, module).width(branch)

    def config_dict(self) -> dict[str, Any]:
        """The config that rebuilds this model (what ``config.json`` holds)."""
        return {
            "num_classes": self.num_classes,
            "aux_logits": self.aux_logits,
            "variant": self.variant,
            "transform_input": self.transform_input,
            "dropout": self.dropout.p,
            "dropout_aux": self.aux1.dropout.p if self.aux1 is not None else AUX_DROPOUT,
            "class_names": self.class_names,
            "preprocessing": self.preprocessing,
            **({"training": self.training_info} if self.training_info else {}),
        }
