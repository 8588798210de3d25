"""Drive the running app with gradio_client from K concurrent clients for T seconds.

    python benchmarks/load.py [--url URL --pid PID] [--clients 16] [--seconds 60] [--batch]
    python benchmarks/load.py --during-training | --during-flood [--clients 2] [--seconds 20]

Without --url it starts ``python app.py`` itself on a free port (with ``GOOGLENET_BATCH=1`` under
--batch, Gradio's dynamic batching of /classify) and measures that server's memory. After a
warm-up with every client (up to 10 s, not counted), it reports requests/s, p50 and p95 latency, errors
and the growth of the server's resident memory during the measured T seconds; the last line is JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from helpers import not_examples, start_server  # noqa: E402  (shared with the tests)

# The example photos re-saved: the app answers the examples themselves from a cache, which would measure nothing.
IMAGES = [str(p) for p in not_examples(Path(tempfile.mkdtemp(prefix="bench-photos-")))]


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def run_load(url: str, clients: int = 16, seconds: float = 60.0, pid: int | None = None) -> dict:
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    warmup = min(10.0, seconds / 4)
    clients_ = [Client(url, verbose=False) for _ in range(clients)]
    phase = {"stop_at": time.monotonic() + warmup, "record": False}

    def worker(k: int) -> None:
        client = clients_[k]
        i = k
        while time.monotonic() < phase["stop_at"]:
            t = time.perf_counter()
            try:
                client.predict(handle_file(IMAGES[i % len(IMAGES)]), api_name="/classify")
                if phase["record"]:
                    with lock:
                        latencies.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
            i += 1

    def run_phase() -> float:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - start

    run_phase()  # warm-up with every client, so memory growth is measured once caches and threads exist
    before = rss_mb(pid)
    phase.update(stop_at=time.monotonic() + seconds, record=True)
    elapsed = run_phase()
    after = rss_mb(pid)
    ordered = sorted(latencies)
    return {
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(1000 * statistics.median(ordered), 1) if ordered else None,
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
        "errors": len(errors), "first_error": errors[0] if errors else None,
        "memory_growth_mb": round(after - before, 1) if before is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--pid", type=int, help="the server's process id, to measure its memory")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--batch", action="store_true", help="start the app with dynamic batching of /classify")
    parser.add_argument("--during-training", action="store_true",
                        help="/classify latency alone, then while a fine-tuning run trains (generated CIFAR data)")
    parser.add_argument("--during-flood", action="store_true",
                        help="/classify latency alone, then while other visitors keep asking for new atlas views")
    args = parser.parse_args()
    if args.during_training:
        return alone_and_during(args.clients, args.seconds, "training", training_load)
    if args.during_flood:
        return alone_and_during(args.clients, args.seconds, "flood", flood_load)
    proc = None
    url, pid = args.url, args.pid
    if url is None:
        proc, url = start_server({"GOOGLENET_BATCH": "1" if args.batch else "0"})
        pid = proc.pid
    try:
        result = run_load(url, args.clients, args.seconds, pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    result["batching"] = args.batch
    import json

    for key in ("requests_per_s", "p50_ms", "p95_ms", "errors", "memory_growth_mb"):
        print(f"{key:18s} {result[key]}")
    print(json.dumps(result))


def training_load(url: str) -> tuple[callable, dict]:
    """A full CPU fine-tune in progress (the heaviest run a CPU server allows); returns how to stop it."""
    from gradio_client import Client

    trainer = Client(url, verbose=False)
    job = trainer.submit(train_size=3000, epochs=10, batch_size=64, image_size=64, freeze_backbone=False,
                         api_name="/finetune")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("step" in str(o[0]) for o in job.outputs()):
        time.sleep(0.5)

    def stop() -> None:
        trainer.predict(api_name="/cancel_finetune")
        job.result(timeout=300)
    return stop, {}


def flood_load(url: str, visitors: int = 6) -> tuple[callable, dict]:
    """Other visitors (separate sessions) each asking, again and again, for a new atlas channel view: each an
    uncached optimisation; the server admits one per visitor at a time and refuses the rest at once."""
    from gradio_client import Client

    counts = {"served": 0, "refused": 0}
    running = threading.Event()
    running.set()

    def visitor(k: int) -> None:
        client, channel = Client(url, verbose=False), 0
        while running.is_set():
            try:
                client.predict(None, "ImageNet GoogLeNet", "inception4e", "3x3", 40 * k + channel, api_name="/channel")
                counts["served"] += 1
            except Exception:  # noqa: BLE001 - refused (fair use): ask again soon, as a script would
                counts["refused"] += 1
                time.sleep(0.2)
            channel += 1

    threads = [threading.Thread(target=visitor, args=(k,), daemon=True) for k in range(visitors)]
    for t in threads:
        t.start()
    time.sleep(5)  # the first optimisations are under way

    def stop() -> None:
        running.clear()
    return stop, counts


def alone_and_during(clients: int, seconds: float, what: str, load) -> None:  # noqa: ANN001
    """/classify p50 with nothing else to do, then during ``load`` (started on the same server)."""
    import json
    import tempfile

    from data.make_cifar import make_dataset

    data = make_dataset(Path(tempfile.mkdtemp(prefix="bench-cifar-")), per_class_train=300, per_class_test=50)
    runs = tempfile.mkdtemp(prefix="bench-runs-")
    proc, url = start_server({"CIFAR10_DIR": str(data), "RUNS_DIR": runs})
    try:
        idle = run_load(url, clients, seconds)
        stop, counts = load(url)
        busy = run_load(url, clients, seconds)
        stop()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"clients": clients, "p50_idle_ms": idle["p50_ms"], f"p50_{what}_ms": busy["p50_ms"],
              "p95_idle_ms": idle["p95_ms"], f"p95_{what}_ms": busy["p95_ms"],
              "ratio_p50": round(busy["p50_ms"] / idle["p50_ms"], 2), "errors": idle["errors"] + busy["errors"],
              **counts}
    for key, value in result.items():
        print(f"{key:18s} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
