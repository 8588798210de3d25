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
            config = httpx.get(url + "config", timeout=30).text
            assert "ZeroGPU" in config  # the status line says where it runs
            # Offline (HF_HUB_OFFLINE=1) and without a Space's OAuth variables: no login button, the token field.
            assert "Sign in with Hugging Face" not in config and '"type": "password"' in config.replace('":"', '": "')
    finally:
        api.shutdown()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def _front_matter() -> dict:
    import yaml

    text = (Path(__file__).parents[1] / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_the_space_card_is_complete_and_agrees_with_the_pins():
    import re

    import gradio

    from googlenet.hub import CONFIG_NAME, WEIGHTS_NAME
    from googlenet.weights import DEFAULT_REPO_ID

    card = _front_matter()
    root = Path(__file__).parents[1]
    pins = dict(re.findall(r"^([A-Za-z0-9_-]+)(?:\[[^\]]*\])?==(\S+)", (root / "requirements.txt").read_text(), re.M))
    assert card["sdk"] == "gradio" and card["sdk_version"] == pins["gradio"] == gradio.__version__
    assert re.fullmatch(r"3\.\d+(\.\d+)?", card["python_version"])
    assert card["app_file"] == "app.py" and (root / card["app_file"]).is_file()
    assert card["preload_from_hub"] == [f"{DEFAULT_REPO_ID} {CONFIG_NAME},{WEIGHTS_NAME}"]
    assert DEFAULT_REPO_ID in card["models"]
    assert card["suggested_hardware"] in {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4",
                                          "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large"}
    assert card["hf_oauth"] is True and card["hf_oauth_scopes"] == ["contribute-repos"]  # the narrowest that pushes
    assert card["tags"] and all(isinstance(t, str) for t in card["tags"])
    zerogpu = (root / "requirements-zerogpu.txt").read_text()
    assert f"gradio[mcp,oauth]=={pins['gradio']}" in zerogpu and "spaces" in zerogpu
