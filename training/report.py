"""What a finished run gets wrong: confusion matrix, per-class accuracy and the most confidently wrong
images of the split the run was evaluated on (fastai's ``ClassificationInterpretation`` habit).

    python -m training.report RUN_DIR [--data-dir DIR] [--split test|val]

prints the report and writes ``report.json``, ``confusion.png`` and ``top_losses.png`` into the run folder
(runs write them themselves when they finish; this is for older runs).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from googlenet import GoogLeNet
from googlenet.hub import WeightsError
from googlenet.inference import inference_copy

from . import env
from .augment import AugmentConfig, BatchPipeline
from .checkpoint import find_checkpoint
from .config import TrainingError
from .data import DataError
from .drift import drift_table
from .plots import confusion_figure
from .runfolder import REPORT_FILES, RunFolder, RunReport
from .atomic import atomic_write, atomic_write_json
from .sources import run_dataset
from .trainer import eval_batch_size

TOP_LOSSES = 16


@torch.no_grad()
def predictions(model: GoogLeNet, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Softmax probabilities for uint8 CIFAR images, preprocessed exactly as the run evaluated them."""
    pre = model.preprocessing
    size = int(pre["crop"])
    pipeline = BatchPipeline(AugmentConfig(size, random_crop=False, flip=False, photometric=False),
                             tuple(pre["mean"]), tuple(pre["std"]), torch.device(device))
    net = inference_copy(model, torch.device(device))
    batch = eval_batch_size(size)
    return torch.cat([F.softmax(net(pipeline.eval(images[i:i + batch]).contiguous(
        memory_format=torch.channels_last)).float(), 1).cpu() for i in range(0, len(images), batch)])


def _run_split(run_dir: Path, split: str, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor,
                                                                         torch.Tensor, torch.Tensor]:
    """(pictures, labels, their indices into the pool, the pool) of a run's ``split`` of its own dataset."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    folder = RunFolder(run_dir)
    try:
        _, parts = run_dataset((folder.info() or {}).get("data"), folder.settings(), data_dir or env.data_dir())
    except DataError as e:
        raise TrainingError(str(e)) from None
    if split == "val":
        return parts.val_x, parts.val_y, torch.arange(len(parts.val_y)), parts.val_x
    return parts.pool_x[parts.test_idx], parts.pool_y[parts.test_idx], parts.test_idx, parts.pool_x


def evaluate_run(run_dir: str | Path, split: str = "test", data_dir: str | None = None,
                 device: torch.device | str = "cpu") -> RunReport:
    """The report of a run's best checkpoint on its ``split`` ("test" or "val") of its own dataset, computed on
    ``device``."""
    run_dir = Path(run_dir)
    best = find_checkpoint(run_dir)
    if best is None:
        raise TrainingError(f"{run_dir.name} has no checkpoint to evaluate.")
    try:
        model = GoogLeNet.from_pretrained(best)
    except WeightsError as e:
        raise TrainingError(str(e)) from None
    images, labels, idx, _ = _run_split(run_dir, split, data_dir)
    return report_from(predictions(model, images, device), labels, idx, model.class_names, split)


def report_pictures(run_dir: str | Path, split: str = "test", data_dir: str | None = None) -> torch.Tensor:
    """The pictures a run's report's top losses point into (its test pool, or its validation split)."""
    return _run_split(Path(run_dir), split, data_dir)[3]


def report_from(probs: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, classes: list[str],
                split: str = "test") -> RunReport:
    k = len(classes)
    pred = probs.argmax(1)
    confusion = torch.bincount(labels * k + pred, minlength=k * k).view(k, k)
    rows = confusion.sum(1).clamp(min=1)
    wrong = (pred != labels).nonzero().flatten()
    confidence = probs[wrong, pred[wrong]]
    order = wrong[confidence.argsort(descending=True)][:TOP_LOSSES]
    top = [{"index": int(indices[i]), "true": classes[int(labels[i])], "pred": classes[int(pred[i])],
            "prob": round(float(probs[i, pred[i]]), 5)} for i in order.tolist()]
    return RunReport(classes=list(classes), confusion=confusion.tolist(),
                     accuracy=float(confusion.trace()) / max(1, int(confusion.sum())),
                     per_class=(confusion.diag() / rows).tolist(), top_losses=top, split=split)


def top_losses_image(report: RunReport, images: torch.Tensor, tile: int = 96) -> Image.Image:
    """The top losses as one labelled grid (true / predicted, probability of the wrong class)."""
    cols = 4
    rows = max(1, -(-len(report.top_losses) // cols))
    canvas = Image.new("RGB", (cols * tile, rows * (tile + 24)), "white")
    draw = ImageDraw.Draw(canvas)
    for n, loss in enumerate(report.top_losses):
        x, y = (n % cols) * tile, (n // cols) * (tile + 24)
        picture = Image.fromarray(images[loss["index"]].permute(1, 2, 0).numpy()).resize((tile - 8, tile - 8),
                                                                                         Image.NEAREST)
        canvas.paste(picture, (x + 4, y + 2))
        draw.text((x + 4, y + tile - 4), f"{loss['true']} → {loss['pred']}", fill="black")
        draw.text((x + 4, y + tile + 8), f"p = {loss['prob']:.2f}", fill="#b00020")
    return canvas


def write_report(run_dir: Path, report: RunReport, images: torch.Tensor) -> None:
    """report.json, confusion.png and top_losses.png, each written atomically."""
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / RunFolder.REPORT, report.as_dict())
    buf = io.BytesIO()
    confusion_figure(np.array(report.confusion), report.classes).savefig(buf, format="png")
    atomic_write(run_dir / RunFolder.CONFUSION, buf.getvalue())
    buf = io.BytesIO()
    top_losses_image(report, images).save(buf, format="PNG")
    atomic_write(run_dir / RunFolder.TOP_LOSSES, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.report", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--data-dir", default=env.data_dir())
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--drift", action="store_true", help="print the run's drift map (saved as it trained) instead: "
                   "linear CKA with the starting model and weight drift per module and branch")
    args = p.parse_args(argv)
    if args.drift:
        record = RunFolder(args.run_dir).drift()
        if record is None:
            print(f"error: {args.run_dir} has no drift map (drift.json): it was trained before drift maps existed, "
                  "or it is not a run folder", file=sys.stderr)
            return 1
        print(drift_table(record))
        return 0
    try:
        report = evaluate_run(args.run_dir, args.split, args.data_dir)
        write_report(args.run_dir, report, report_pictures(args.run_dir, args.split, args.data_dir))
    except (TrainingError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.split} accuracy {100 * report.accuracy:.1f}% on {sum(map(sum, report.confusion))} images")
    for name, acc in zip(report.classes, report.per_class):
        print(f"  {name:12s} {100 * acc:5.1f}%")
    print(f"wrote {', '.join(REPORT_FILES)} in {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
