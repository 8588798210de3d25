"""Inference speed of the project's Classifier against torchvision's googlenet in eager float32.

    python benchmarks/infer.py [--quick]

Cases: CPU batch-1 predict of a decoded 1 MP photo (preprocess + forward + softmax); CPU end-to-end
predict of a 1 MP JPEG; and, when a GPU is present, CUDA batch-1 latency, batch-256 throughput and
end-to-end JPEG predict. The last line is JSON with the CPU batch-1 figures (baseline_ms, project_ms,
ratio = baseline / project, higher is better) and the others.
"""

from __future__ import annotations

import argparse
import copy

import torch
from _common import one_megapixel_photo, print_json, print_table, time_pair


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under 60 s on 2 CPU cores)")
    parser.add_argument("--no-cuda", action="store_true")
    args = parser.parse_args()
    from torchvision.models import GoogLeNet_Weights, googlenet

    from googlenet import from_torchvision
    from googlenet.classify import Classifier

    torch.manual_seed(0)
    tv = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True).eval()
    reference_transform = GoogLeNet_Weights.IMAGENET1K_V1.transforms()
    photo, jpeg = one_megapixel_photo()
    rounds, iters = (3, 3) if args.quick else (7, 10)

    def baseline_predict(img) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(tv(reference_transform(img).unsqueeze(0)), 1)

    from googlenet.images import load_image

    cpu = Classifier(from_torchvision(tv), device="cpu")
    b, p = time_pair(lambda: baseline_predict(photo), lambda: cpu.predict(photo), rounds, iters)
    result = {"baseline_ms": round(b, 2), "project_ms": round(p, 2), "ratio": round(b / p, 2),
              "threads": torch.get_num_threads()}
    rows = [("CPU batch-1 predict, decoded 1 MP photo (ms)", f"{b:.1f}", f"{p:.1f}", f"{b / p:.2f}x")]
    b, p = time_pair(lambda: baseline_predict(load_image(jpeg)), lambda: cpu.predict(jpeg), rounds, iters)
    rows.append(("CPU end-to-end predict, 1 MP JPEG (ms)", f"{b:.1f}", f"{p:.1f}", f"{b / p:.2f}x"))
    result.update(cpu_jpeg_baseline_ms=round(b, 2), cpu_jpeg_project_ms=round(p, 2))

    if torch.cuda.is_available() and not args.no_cuda:
        dev = "cuda"
        result["gpu"] = torch.cuda.get_device_name()
        converted = from_torchvision(tv)
        tv_gpu = copy.deepcopy(tv).to(dev)
        gpu = Classifier(converted, device=dev)
        x1 = torch.randn(1, 3, 224, 224, device=dev)

        def eager(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return tv_gpu(x)

        b, p = time_pair(lambda: eager(x1), lambda: gpu.engine.logits(x1), rounds * 3, iters * 10, dev, warmup=5)
        rows.append((f"CUDA batch-1 forward, {result['gpu']} (ms)", f"{b:.3f}", f"{p:.3f}", f"{b / p:.2f}x"))
        result.update(cuda_b1_baseline_ms=round(b, 3), cuda_b1_project_ms=round(p, 3))
        # Device-side latency: the forward alone, output left on the GPU.
        net = gpu.engine
        xb = x1.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        graph = net._graphs.get(1)
        if graph is not None:
            _, p_dev = time_pair(lambda: eager(x1), lambda: graph(xb), rounds * 3, iters * 10, dev, warmup=5)
            rows.append(("CUDA batch-1 forward, graph replay only (ms)", f"{b:.3f}", f"{p_dev:.3f}", f"{b / p_dev:.2f}x"))
            result["cuda_b1_graph_ms"] = round(p_dev, 3)
        x256 = torch.randn(256, 3, 224, 224, device=dev)
        b, p = time_pair(lambda: eager(x256), lambda: gpu.engine.logits(x256), rounds, max(2, iters // 2), dev)
        rows.append(("CUDA batch-256 throughput (images/s)", f"{256e3 / b:.0f}", f"{256e3 / p:.0f}", f"{b / p:.2f}x"))
        result.update(cuda_b256_baseline_img_s=round(256e3 / b), cuda_b256_project_img_s=round(256e3 / p))
        if not args.quick:
            compiled = Classifier(converted, device=dev)
            compiled.engine._large = torch.compile(compiled.engine.net, dynamic=False)
            _, p_c = time_pair(lambda: eager(x256), lambda: compiled.engine.logits(x256), rounds,
                               max(2, iters // 2), dev, warmup=3)
            rows.append(("CUDA batch-256, torch.compile (images/s)", f"{256e3 / b:.0f}", f"{256e3 / p_c:.0f}",
                         f"{b / p_c:.2f}x"))
            result["cuda_b256_compiled_img_s"] = round(256e3 / p_c)
        b, p = time_pair(lambda: eager(reference_transform(load_image(jpeg)).unsqueeze(0).to(dev)),
                         lambda: gpu.predict(jpeg), rounds, iters, dev)
        rows.append(("CUDA end-to-end predict, 1 MP JPEG (ms)", f"{b:.2f}", f"{p:.2f}", f"{b / p:.2f}x"))
        result.update(cuda_jpeg_baseline_ms=round(b, 2), cuda_jpeg_project_ms=round(p, 2))

    print_table(rows)
    print_json(result)


if __name__ == "__main__":
    main()
