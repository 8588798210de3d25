"""Table 1 of the paper measured from the model itself, next to the paper's own figures.

Units follow the paper: params in K = 1024 weights (convolution and linear weights only; no biases,
no BatchNorm), ops in millions of multiply-adds. ``python -m googlenet.table`` prints it as Markdown.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from .model import GoogLeNet

TOLERANCE = 0.02

# (row name, modules measured for that row, paper params in K, paper ops in M)
PAPER_TABLE1: list[tuple[str, tuple[str, ...], float | None, float | None]] = [
    ("convolution", ("conv1",), 2.7, 34),
    ("max pool", ("maxpool1",), None, None),
    ("convolution", ("conv2", "conv3"), 112, 360),
    ("max pool", ("maxpool2",), None, None),
    ("inception (3a)", ("inception3a",), 159, 128),
    ("inception (3b)", ("inception3b",), 380, 304),
    ("max pool", ("maxpool3",), None, None),
    ("inception (4a)", ("inception4a",), 364, 73),
    ("inception (4b)", ("inception4b",), 437, 88),
    ("inception (4c)", ("inception4c",), 463, 100),
    ("inception (4d)", ("inception4d",), 580, 119),
    ("inception (4e)", ("inception4e",), 840, 170),
    ("max pool", ("maxpool4",), None, None),
    ("inception (5a)", ("inception5a",), 1072, 54),
    ("inception (5b)", ("inception5b",), 1388, 71),
    ("avg pool", ("avgpool",), None, None),
    ("dropout (40%)", ("dropout",), None, None),
    ("linear", ("fc",), 1000, 1),
    ("softmax", (), None, None),
]


def _weighted_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def architecture_table(model: GoogLeNet, image_size: int = 224) -> list[dict[str, Any]]:
    """One dict per Table 1 row, measured with a real forward pass at ``image_size``.

    Each row has ``name``, ``output_size`` (HxWxC), ``params`` (K), ``ops`` (M), ``paper_params``,
    ``paper_ops``, and ``flags``: the columns where model and paper differ by more than 2%.
    """
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    handles = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m, tuple(o.shape)))
               for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    rows = []
    for name, attrs, paper_params, paper_ops in PAPER_TABLE1:
        modules = [getattr(model, a) for a in attrs]
        if modules:
            shape = shapes[modules[-1]]
        else:
            shape = tuple(out.shape)
        if len(shape) == 4:
            output_size = f"{shape[2]}x{shape[3]}x{shape[1]}"
        else:
            output_size = f"1x1x{shape[1]}"
        params = ops = 0.0
        for mod in modules:
            for layer in _weighted_layers(mod):
                n = layer.weight.numel()
                params += n
                if layer in shapes:
                    s = shapes[layer]
                    ops += n * (s[2] * s[3] if len(s) == 4 else 1)
        row = {
            "name": name,
            "output_size": output_size,
            "params": params / 1024 if params else None,
            "ops": ops / 1e6 if ops else None,
            "paper_params": paper_params,
            "paper_ops": paper_ops,
        }
        row["flags"] = [col for col in ("params", "ops")
                        if row[col] is not None and row[f"paper_{col}"] is not None
                        and abs(row[col] - row[f"paper_{col}"]) > TOLERANCE * row[f"paper_{col}"]]
        rows.append(row)
    return rows


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """Markdown rendering; flagged cells say where the paper's figure disagrees with its architecture."""
    lines = ["| type | output size | params (model) | params (paper) | ops (model) | ops (paper) | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        note = "; ".join(f"paper's {c} differ by {abs(r[c] / r[f'paper_{c}'] - 1):.0%}" for c in r["flags"])
        lines.append(f"| {r['name']} | {r['output_size']} | {_fmt(r['params'], 'K')} | {_fmt(r['paper_params'], 'K')} "
                     f"| {_fmt(r['ops'], 'M')} | {_fmt(r['paper_ops'], 'M')} | {('⚠ ' + note) if note else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print Table 1 of the paper measured from the model.")
    parser.add_argument("--variant", choices=("paper", "torchvision"), default="paper")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    model = GoogLeNet(aux_logits=False, variant=args.variant)
    print(table_markdown(architecture_table(model, args.image_size)))


if __name__ == "__main__":
    main()
