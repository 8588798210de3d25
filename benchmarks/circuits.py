"""What a circuit costs (``googlenet.interpret.circuits``), against the obvious way in the same run.

    python benchmarks/circuits.py [--rounds 5]

On the tests' realistic random weights and an example photo at 224 px:
* the weights view (``circuit``, k = 8) of channel 0 of every module's 3x3 branch, against the obvious way: every
  channel's expanded kernel of the branch (as a walk through the whole branch would compute it), then one row;
* the attribution on a picture (``picture_attribution``), against Captum's ``LayerGradientXActivation`` run on the
  whole network to the logits with the module's input hooked (the obvious use of Captum: its forward function is
  the model, and the channel's response is read by a second hook).
Goals (issue "Circuits"): the weights view <= 1 s and the picture's attribution <= 2 s on a 2-core CPU.
Last line: JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _common import time_pair  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    import torch
    from captum.attr import LayerGradientXActivation

    from googlenet.interpret.circuits import circuit, expanded_weights, picture_attribution
    from googlenet.model import MODULE_NAMES, input_stage
    from googlenet.preprocess import prepare_input
    from helpers import PHOTOS, realistic_model

    model = realistic_model().eval()
    out: dict = {"device": f"CPU ({torch.get_num_threads()} threads)", "weights_ms": {}, "picture_ms": {}}
    worst_weights = 0.0
    for module in MODULE_NAMES:
        def obvious(module: str = module) -> object:
            return expanded_weights(model, module, "3x3")[0][0]

        base, ours = time_pair(obvious, lambda module=module: circuit(model, module, "3x3", 0), args.rounds, 3)
        out["weights_ms"][module] = {"obvious": round(base, 2), "ours": round(ours, 2)}
        worst_weights = max(worst_weights, ours)
        print(f"weights view {module:12s} obvious {base:7.1f} ms  ours {ours:6.1f} ms  ({base / ours:.1f}x)")

    x = prepare_input(PHOTOS[0], model.preprocessing)[0]
    worst_picture = 0.0
    for module in ("inception3a", "inception4c", "inception5b"):
        seen: dict = {}
        unit = getattr(model, module).branch2[1]
        handle = unit.bn.register_forward_hook(lambda m, i, o: seen.__setitem__("y", o))

        def response(inp, seen=seen):
            model(inp)
            return seen["y"][:, 0].mean((1, 2))

        method = LayerGradientXActivation(response, getattr(model, input_stage(module)))
        try:
            base, ours = time_pair(lambda: method.attribute(x), lambda module=module: picture_attribution(
                model, module, "3x3", 0, x), args.rounds, 1)
        finally:
            handle.remove()
        out["picture_ms"][module] = {"captum_whole_network": round(base, 1), "ours": round(ours, 1)}
        worst_picture = max(worst_picture, ours)
        print(f"on a picture {module:12s} Captum {base:7.1f} ms  ours {ours:6.1f} ms  ({base / ours:.1f}x)")
    print(f"slowest weights view {worst_weights:.1f} ms (goal <= 1000); slowest attribution {worst_picture:.1f} ms "
          "(goal <= 2000)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
