"""The server profile: every setting of the app, built once from the environment (device kind, ZeroGPU or
not, and the overrides below), in one place; and the limits any visitor's fine-tuning run must keep (its
settings, and the memory it would take).

Apart from this module only ``training/env.py`` (the training CLI's own, which ``training`` may not take
from here) reads environment variables (and ``gpu.py`` ``SPACES_ZERO_GPU``, which must decide before torch is
imported whether to import ``spaces``), and huggingface_hub reads its own ``HF_*`` ones; the profile builds on
``training/env.py`` for the folders and the disk cache, and passes what the lower packages need down to them.
The configuration and limits tables of ``docs/configuration.md`` are checked against ``VARIABLES`` and
``DEVICE_LIMITS`` by a test.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from explorer import durations
from explorer.errors import LimitError
from googlenet.device import select_device
from googlenet.interpret.accentuate import ACCENT_STEPS as ACCENT_DEFAULT_STEPS
from googlenet.interpret.featurevis import DEFAULT_SIZE, DEFAULT_STEPS
from training import env
from training.env import Variable
from training.recipes import RECIPES, Recipe
from training.imagedata import Limits as SourceLimits
from training.diskcache import DiskCache
from training.trainer import train_memory_bytes

DEVICE = Variable("GOOGLENET_DEVICE", "`auto`, `cpu`, `cuda`, `cuda:N`, `mps`", "auto",
                  note="`auto` (CUDA, then MPS, then CPU)")
BATCH = Variable("GOOGLENET_BATCH", "`1` turns on Gradio's dynamic batching of `/classify` (see Reliability)", 0)
COMPILE = Variable("GOOGLENET_COMPILE", "`1` compiles the large-batch CUDA inference path with `torch.compile`", 0)
MAX_RUNS = Variable("GOOGLENET_MAX_RUNS", "ended runs kept per visitor (and 4 times as many per address); a "
                    "visitor's older runs are deleted, never another's", 5)
RUNS_BYTES = Variable("GOOGLENET_RUNS_BYTES", "disk the runs may take; beyond it a new run is refused (none is "
                      "deleted to make room)", 4 << 30)
DATA_BYTES = Variable("GOOGLENET_DATA_BYTES", "disk the datasets may take: Hub datasets in the Hub cache, their "
                      "decoded copies and visitors' uploaded zips; a download or upload beyond it is refused", 4 << 30)
PINNED_RUNS = Variable("GOOGLENET_PINNED_RUNS", "runs (names, comma-separated) that retention never deletes",
                       note="none")
ATLAS_STEPS = Variable("GOOGLENET_ATLAS_STEPS", "the channel atlas's optimisation steps", DEFAULT_STEPS)
ATLAS_SIZE = Variable("GOOGLENET_ATLAS_SIZE", "the channel atlas's image size", DEFAULT_SIZE)
ATLAS_INPUT = Variable("GOOGLENET_ATLAS_INPUT_SIZE", "the size the network sees the atlas's image at while it is "
                       "optimised (`0`: its own size, cheaper, but it excites its channel less at 224 px)",
                       note="the model's input size (224 px)")
ACCENT_STEPS = Variable("GOOGLENET_ACCENT_STEPS", "feature accentuation's optimisation steps", ACCENT_DEFAULT_STEPS)
ATLAS_PER_CLASS = Variable("GOOGLENET_ATLAS_PER_CLASS", "test pictures per class in the atlas's reference set "
                           "(CIFAR-10's, or a run's own dataset's)", note="`100` on a GPU, `30` on a CPU")
TEST_SIZE = Variable("GOOGLENET_TEST_SIZE", "held-out CIFAR-10 pictures a run in the app is tested on (`0`: all 8,000)",
                     note="`2000` on a CPU, `0` on a GPU")
ATLAS = Variable("GOOGLENET_ATLAS", "a precomputed channel atlas: a folder made by `python -m explorer.atlas build`, "
                 "or a Hub dataset repo `OWNER/NAME[@revision]`", note="none (views are rendered on demand)")
PICTURE_SECONDS = Variable("GOOGLENET_PICTURE_SECONDS", "how long the server keeps the picture a visitor is working on, "
                           "which follows them from page to page (seconds)", 3600)
FORK_GPU = Variable("GOOGLENET_FORK_GPU", "`1` runs each GPU call in a forked process, as on ZeroGPU (for tests)", 0)
ZEROGPU_MAX = Variable("GOOGLENET_ZEROGPU_MAX_SECONDS", "the longest ZeroGPU reservation any call may declare", 120)
# Each limit on a run, in words, and its unit: as its variable, a refusal and docs/configuration.md say it.
LIMIT_WORDS = {"epochs": ("epochs", ""), "train_size": ("training images", ""), "image_size": ("image size", " px"),
               "batch_size": ("batch size", ""), "run_seconds": ("wall clock", " s")}
LIMIT_VARIABLES = {name: Variable(f"GOOGLENET_MAX_{name.upper()}", f"the app's limit on a run's {words}",
                                  note="per device kind (see Reliability)") for name, (words, _) in LIMIT_WORDS.items()}
VARIABLES = (*env.VARIABLES, DEVICE, BATCH, COMPILE, *LIMIT_VARIABLES.values(), TEST_SIZE, MAX_RUNS, RUNS_BYTES,
             DATA_BYTES, PINNED_RUNS, ATLAS, ATLAS_STEPS, ATLAS_SIZE, ATLAS_INPUT, ATLAS_PER_CLASS, ACCENT_STEPS, PICTURE_SECONDS,
             FORK_GPU, ZEROGPU_MAX)
ZERO_GPU = Variable("SPACES_ZERO_GPU", "set to `true` on a ZeroGPU Space (then every GPU call runs in a worker "
                    "that `spaces` forks)", note="unset")
ON_SPACES = Variable("SYSTEM", "set to `spaces` by Hugging Face Spaces (then the proxy's client address is trusted)",
                     note="unset")

# What a Space with `hf_oauth: true` sets (Hugging Face's Spaces OAuth docs); Gradio reads them itself.
SPACE_OAUTH = ("SPACE_ID", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")

# The endpoints an assistant may call as MCP tools (with Gradio's MCP server on: GRADIO_MCP_SERVER=true): the
# read-only ones. Fine-tuning, cancelling, pushing and downloading CIFAR-10 change the server's state or spend its
# training slot, so they are not tools. The tool names are these (Gradio prefixes them with a Space's name).
MCP_TOOLS = ("classify", "explain", "accentuate", "feature_maps", "channel", "circuit", "architecture", "run_report",
             "run_drift")

MAX_UPLOAD = f"{SourceLimits().max_zip_bytes >> 20}mb"  # a zip of photos; one picture's 10 MB is checked before decoding
# The example photos (sources and licences in assets/README.md): the pages' examples, and the atlas's reference
# set when CIFAR-10 is not on the server.
EXAMPLE_PHOTOS = tuple(sorted((Path(__file__).resolve().parents[1] / "assets").glob("*.jpg")))


@dataclass(frozen=True)
class Limits:
    """What any visitor may ask of a fine-tuning run on this server, API calls included."""

    epochs: int
    train_size: int
    image_size: int
    batch_size: int
    run_seconds: int

    def check(self, epochs: int, train_size: int, image_size: int, batch_size: int) -> None:
        """Refuse at once a setting beyond a limit, naming the limit and its variable."""
        asked = {"epochs": epochs, "train_size": train_size, "image_size": image_size, "batch_size": batch_size}
        for name, value in asked.items():
            if value > getattr(self, name):
                words, unit = LIMIT_WORDS[name]
                raise LimitError(f"A run's {words} may be at most {getattr(self, name):,}{unit} on this server "
                                 f"({LIMIT_VARIABLES[name].name}); {value:,} was asked for.")


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
    """Refuse a run whose estimated peak memory exceeds its share of what is available (no run may take the
    process down)."""
    need = train_memory_bytes(batch_size, image_size)
    if need > MEMORY_SHARE * available:
        raise LimitError(f"A batch of {batch_size} at {image_size} px needs about {need / 2**30:.1f} GiB, more than "
                         f"this server can spare ({MEMORY_SHARE * available / 2**30:.1f} GiB). Use a smaller batch "
                         "size or image size.")


# A ZeroGPU run's limit leaves room for the overhead (durations.GPU_OVERHEAD_SECONDS) within the longest
# reservation (120 s by default).
DEVICE_LIMITS = {"cpu": Limits(epochs=10, train_size=10_000, image_size=128, batch_size=128, run_seconds=600),
                 "cuda": Limits(epochs=30, train_size=50_000, image_size=224, batch_size=512, run_seconds=1800),
                 "zerogpu": Limits(epochs=10, train_size=20_000, image_size=160, batch_size=256, run_seconds=105)}
# The app's fine-tune defaults, as overrides of the "finetune" recipe. On a GPU a full fine-tune (on ZeroGPU its
# declaration, with a few classifications beside it, fits an anonymous visitor's daily quota; a test checks). On a CPU the head only, on cached backbone
# features (4,000 images at 64 px for 10 epochs), tested on 2,000 held-out pictures: the first run computes
# the features of them all, so its test set is what keeps it within a minute (docs/training.md).
FINETUNE_DEFAULTS = {"gpu": ({"batch_size": 256, "image_size": 96}, 10_000, None),
                     "cpu": ({"epochs": 10, "freeze_backbone": True}, 4_000, 2_000)}


@dataclass(frozen=True)
class Profile:
    """Everything the app needs to know about the server it runs on."""

    kind: str  # "cpu", "cuda", "mps" or "zerogpu"
    device: torch.device
    weights: str  # where the weight chain starts
    max_runs: int  # per owner; four times as many per address
    runs_bytes: int
    data_bytes: int  # Hub datasets, their decoded copies and uploads
    pinned_runs: tuple[str, ...]
    limits: Limits
    finetune: Recipe  # the app's fine-tune defaults
    train_size: int
    test_size: int | None  # a run tests on this many held-out pictures (None: all 8,000)
    batching: bool
    compile_large: bool
    fork_gpu: bool
    zerogpu_max_seconds: int
    atlas_steps: int
    atlas_input_size: int | None  # None: the model's input size
    atlas_size: int
    atlas_per_class: int
    accent_steps: int  # feature accentuation's steps
    picture_seconds: int  # how long a visitor's picture is kept (it follows them from page to page)
    concurrency: dict[str, int]  # Gradio concurrency limits by group, and the queue's size
    training_threads: int  # every core, at training_niceness: classification comes first through the priority
    training_niceness: int
    on_spaces: bool  # behind Hugging Face's proxy: its X-Forwarded-For is the visitor's address
    oauth: bool = False  # a Space with "Sign in with Hugging Face": pushes use the visitor's OAuth token

    @property
    def data_dir(self) -> str:
        return env.data_dir()

    @property
    def runs_dir(self) -> Path:
        return env.runs_dir()

    @property
    def storage_note(self) -> str:
        """What the status line says about keeping runs: only a Space without persistent storage loses them."""
        if self.on_spaces and env.persistent_dir() is None and env.RUNS.read() is None:
            return ("runs and cached views last until this Space restarts (no persistent storage: the owner can add "
                    "it in the Space's settings)")
        return ""

    @property
    def secret_path(self) -> Path:
        """Where the browser state's secret is kept (beside the runs it identifies the owners of)."""
        return self.runs_dir / ".browser-secret"

    @property
    def disk_cache(self) -> DiskCache:
        """The one disk cache (its folders and budgets are the training package's variables)."""
        return env.disk_cache()

    @property
    def zero_gpu(self) -> bool:
        return self.kind == "zerogpu"

    def run_gpu_seconds(self, max_seconds: float | None) -> int:
        """ZeroGPU's reservation for a run: its time limit plus the overhead, never over the longest reservation
        (the ZeroGPU limit leaves room for the overhead, so nothing is cut silently)."""
        return durations.finetune_seconds(max_seconds or self.limits.run_seconds, self.zerogpu_max_seconds)

    def run_limit(self, train_size: int, epochs: int, image_size: int, eval_images: int = 10_000) -> int:
        """A run's time limit: on ZeroGPU what it needs (with a margin) for its request and its dataset's size, so
        it declares no more than that and stops itself before ZeroGPU would; elsewhere the server's limit."""
        if not self.zero_gpu:
            return self.limits.run_seconds
        return durations.run_limit(train_size, epochs, image_size, self.limits.run_seconds, eval_images)

    @classmethod
    def from_env(cls) -> Profile:
        e = dict(os.environ)
        device = select_device(DEVICE.read(e) or DEVICE.value)
        zero = (ZERO_GPU.read(e) or "").lower() in ("1", "true")
        kind = "zerogpu" if zero else device.type
        base = DEVICE_LIMITS.get(kind, DEVICE_LIMITS["cpu"])
        limits = Limits(**{f.name: LIMIT_VARIABLES[f.name].read_int(e, getattr(base, f.name)) for f in fields(Limits)})
        gpu = device.type == "cuda" or zero
        overrides, train_size, test_size = FINETUNE_DEFAULTS["gpu" if gpu else "cpu"]
        return cls(
            kind=kind, device=device, weights=env.weights(), max_runs=MAX_RUNS.read_int(e), limits=limits,
            runs_bytes=RUNS_BYTES.read_int(e), data_bytes=DATA_BYTES.read_int(e), pinned_runs=tuple(n.strip() for n in (PINNED_RUNS.read(e) or "").split(",")
                                                                 if n.strip()),
            finetune=dataclasses.replace(RECIPES["finetune"], **overrides), train_size=train_size,
            test_size=(int(raw) or None) if (raw := TEST_SIZE.read(e) or "").isdigit() else test_size,
            batching=BATCH.read(e) == "1", compile_large=COMPILE.read(e) == "1", fork_gpu=FORK_GPU.read(e) == "1",
            zerogpu_max_seconds=ZEROGPU_MAX.read_int(e), atlas_steps=ATLAS_STEPS.read_int(e),
            atlas_input_size=int(raw_input) if (raw_input := ATLAS_INPUT.read(e) or "").isdigit() else None,
            atlas_size=ATLAS_SIZE.read_int(e), atlas_per_class=ATLAS_PER_CLASS.read_int(e, 100 if gpu else 30),
            accent_steps=ACCENT_STEPS.read_int(e), picture_seconds=PICTURE_SECONDS.read_int(e),
            concurrency={"infer": 4 if gpu else 2, "features": 2, "train": 4, "queue": 64, "default": 2,
                         "threads": 16, "waiting": 16 if gpu else 8, "per_address": 4},
            # waiting: expensive jobs of all visitors, running or waiting; per_address: of one address, per endpoint
            training_threads=os.cpu_count() or 1, training_niceness=10,
            on_spaces=ON_SPACES.read(e) == "spaces",
            oauth=ON_SPACES.read(e) == "spaces" and all(e.get(k, "").strip() for k in SPACE_OAUTH))


@functools.cache
def current() -> Profile:
    """This process's profile, built on first use (every part of the app takes it from here)."""
    return Profile.from_env()


def defaults_table() -> dict[str, Any]:
    """The app's fine-tune defaults as the Fine-tune tab and ``/finetune`` show them."""
    p = current()
    return {"train_size": p.train_size, "epochs": p.finetune.epochs, "batch_size": p.finetune.batch_size,
            "image_size": p.finetune.image_size, "freeze_backbone": p.finetune.freeze_backbone}


def configuration_table() -> str:
    """The configuration table of ``docs/configuration.md``, from ``VARIABLES`` (a test checks that it holds it)."""
    rows = [f"| `{v.name}` | {v.meaning}" + (f" (alias: {', '.join(f'`{a}`' for a in v.aliases)})" if v.aliases
                                                else "") + f" | {v.default} |" for v in (*VARIABLES, *env.ALIASES)]
    return "\n".join(["| variable | meaning | default |", "|---|---|---|", *rows])


def limits_table() -> str:
    """The table of fine-tuning limits per device kind (``docs/configuration.md``), from ``DEVICE_LIMITS``."""
    kinds = ("cpu", "cuda", "zerogpu")
    rows = [f"| {LIMIT_WORDS[f.name][0]} | " + " | ".join(f"{getattr(DEVICE_LIMITS[k], f.name):,}"
                                                          f"{LIMIT_WORDS[f.name][1]}" for k in kinds)
            + f" | `{LIMIT_VARIABLES[f.name].name}` |" for f in fields(Limits)]
    return "\n".join(["| limit | CPU | GPU | ZeroGPU | variable |", "|---|---|---|---|---|", *rows])


if __name__ == "__main__":  # python -m explorer.profile: the two tables of docs/configuration.md, to paste
    print(configuration_table(), limits_table(), sep="\n\n")
