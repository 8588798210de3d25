"""``python app.py`` on a ZeroGPU Space, as far as it can be tried here: the real ``spaces`` package in
ZeroGPU mode (CUDA emulated in the main process, any real CUDA work raises)."""

import http.server
import threading
from pathlib import Path

import httpx
from gradio_client import Client

from helpers import running_app


class DeviceApi(http.server.BaseHTTPRequestHandler):
    """Stands in for ZeroGPU's device API, which ``spaces`` tells at launch that the app has GPU functions.

    (With nothing listening there, ``spaces`` itself raises at launch for any app with a ``spaces.GPU``
    function: spaces 0.51, ``zero/__init__.py`` -> ``client.startup_report``.)"""

    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_app_starts_and_serves_under_zerogpu(tmp_path, cifar_dir):
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DeviceApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    log = tmp_path / "app.log"
    env = {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": f"http://127.0.0.1:{api.server_address[1]}",
           "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "GOOGLENET_WEIGHTS": "nobody/nothing",
           "RUNS_DIR": str(tmp_path / "runs"), "CIFAR10_DIR": str(cifar_dir), "APP_LOG": str(log)}
    try:
        with running_app(env, timeout=180) as url:
            assert httpx.get(url, timeout=30).status_code == 200
            table, diagram = Client(url, verbose=False).predict(api_name="/architecture")
            assert "inception (4c)" in table and Path(diagram).is_file()
            assert "ZeroGPU" in httpx.get(url + "config", timeout=30).text  # the status line says where it runs
    finally:
        api.shutdown()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
