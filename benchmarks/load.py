"""Drive the running app with gradio_client from K concurrent clients for T seconds.

    python benchmarks/load.py [--url URL --pid PID] [--clients 16] [--seconds 60] [--batch]

Without --url it starts ``python app.py`` itself on a free port (with ``GOOGLENET_BATCH=1`` under
--batch, Gradio's dynamic batching of /classify) and measures that server's memory. After a
warm-up with every client (up to 10 s, not counted), it reports requests/s, p50 and p95 latency, errors
and the growth of the server's resident memory during the measured T seconds; the last line is JSON.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = sorted(str(p) for p in (ROOT / "assets").glob("*.jpg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str] | None = None, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free local port; returns once it answers HTTP."""
    port = free_port()
    full_env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    log = open(full_env.get("APP_LOG", os.devnull), "ab")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before it was ready")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"the app did not answer on {url} within {timeout:.0f} s")


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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
