"""The app as a visitor meets it (``python app.py`` on a free port), shared by the app and browser tests: one
server in-process (GPU work in the server), then one with every GPU call in a forked worker, as on ZeroGPU, which
is also the app restarted over the first one's runs (``FIRST_LIFE``) and a Space with sign-in and MCP emulated."""

import json
import shutil
import threading
from pathlib import Path

import pytest
from gradio_client import Client

from helpers import quick_config, running_app, write_realistic_weights

# ``training`` (and so torch) is imported inside the functions below, not here: conftest imports this module in
# pytest-xdist's controller too, which runs no test, and importing torch there held up every worker's start by 8 s.

READY_RUN, UNREPORTED_RUN = "ready-run", "unreported-run"
DISK_BUDGET = 80 << 20  # the disk cache and Gradio's cache together: about three checkpoint zips
CIFAR_NAMES = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}


class HubRecorder:
    """Stands in for the Hub: records each request (Authorization header, and method, path and body), answers
    who a token belongs to (``/api/whoami-v2``: "visitor"), passes reads of dataset repos on to the fake Hub
    (``forward``: the datasets a test writes there) and answers 500 to everything else."""

    def __init__(self) -> None:
        import http.server

        self.seen: list[str] = []
        self.requests: list[tuple[str, str, str, bytes]] = []
        self.forward: str | None = None
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                auth = self.headers.get("Authorization", "")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.seen.append(auth)
                recorder.requests.append((self.command, self.path, auth, body))
                if recorder.forward and self.command in ("GET", "HEAD") and \
                        self.path.startswith(("/api/datasets/", "/datasets/")):
                    return self._forward()
                if self.path.startswith("/api/whoami-v2") and auth.startswith("Bearer "):
                    answer = json.dumps({"type": "user", "name": "visitor", "auth": {}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    answer = b""
                    self.send_response(500)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _forward(self) -> None:
                import urllib.error
                import urllib.request

                request = urllib.request.Request(recorder.forward + self.path, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, headers, body = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as e:
                    status, headers, body = e.code, e.headers, e.read()
                self.send_response(status)
                for name in ("Content-Type", "X-Repo-Commit", "ETag", "X-Error-Code", "X-Error-Message"):
                    if headers.get(name):
                        self.send_header(name, headers[name])
                self.send_header("Content-Length", headers.get("Content-Length") or str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


OWNER_TOKEN = "hf_OWNERtokenOfTheServerItself000"


@pytest.fixture(scope="session")
def hub_recorder(fake_hub):
    recorder = HubRecorder()
    recorder.forward = fake_hub.url
    yield recorder
    recorder.server.shutdown()


# Every test runs against the app as usual (GPU work in-process); the tests whose calls cross the GPU
# process boundary (classify, feature maps, channel, fine-tune, cancel) also against the app with every GPU
# call in a forked worker, as on ZeroGPU (``@both_modes``). A closed generator across that boundary is tested
# without a server in test_explorer.py.
both_modes = pytest.mark.both_modes


restarted = pytest.mark.restarted  # against the second server only: the app restarted over the first one's runs


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, cifar_dir):
    """Realistic weights, and a finished run that exists before any server starts (so no test depends on
    another's leftovers): made once, copied for each server."""
    from training import train
    from training.runfolder import RunFolder

    base = tmp_path_factory.mktemp("prepared")
    write_realistic_weights(base / "weights")
    runs = base / "runs"
    train(quick_config(cifar_dir, runs / READY_RUN, epochs=1, train_size=200, keep_resume_state=False))
    # A run that ended before its test (cancelled): it has no report until a visitor asks for one.
    shutil.copytree(runs / READY_RUN, runs / UNREPORTED_RUN)
    for name in RunFolder.REPORT, RunFolder.CONFUSION, RunFolder.TOP_LOSSES:
        (runs / UNREPORTED_RUN / name).unlink()
    folder = RunFolder(runs / UNREPORTED_RUN)
    # ... and as runs made before runs recorded their start, none.
    folder.write_info({k: v for k, v in folder.info().items() if k != "start"} | {"status": "cancelled",
                                                                                  "test_accuracy": None})
    _build_small_atlas(base)
    return base


ATLAS_CHANNELS = 4  # the small precomputed atlas the second server serves: inception4c 3x3, channels 0-3


def _build_small_atlas(base: Path) -> None:
    """A precomputed atlas of the prepared weights (``python -m explorer.atlas build`` with few channels and steps)."""
    import os

    from explorer.atlas.build import build
    from googlenet import GoogLeNet

    saved = os.environ.get("GOOGLENET_CACHE_DIR")
    os.environ["GOOGLENET_CACHE_DIR"] = str(base / "build-cache")
    try:
        # The example photos as its reference set (no CIFAR-10 in that folder): indexed in a second, not five.
        build(GoogLeNet.from_pretrained(base / "weights"), base / "atlas", ["inception4c"], ["3x3"], size=32, steps=2,
              batch=4, data_dir=str(base / "no-cifar-here"), progress=False, limit=ATLAS_CHANNELS)
    finally:
        if saved is None:
            os.environ.pop("GOOGLENET_CACHE_DIR")
        else:
            os.environ["GOOGLENET_CACHE_DIR"] = saved


def _env(mode: str, base: Path, prepared: Path, cifar_dir: Path, hub_recorder: HubRecorder) -> dict[str, str]:
    """A server's environment: ``mode`` "in-process" (GPU work in the server) or "forked-gpu" (every GPU call in a
    forked worker, and a Space with sign-in, MCP and a small precomputed atlas). Both keep their runs in
    ``prepared`` (as a Space keeps them in its persistent storage), so the second is the first restarted."""
    return {"GOOGLENET_WEIGHTS": str(prepared / "weights"), "CIFAR10_DIR": str(cifar_dir),
            "GOOGLENET_PERSISTENT_DIR": str(prepared), "CUDA_VISIBLE_DEVICES": "", "APP_LOG": str(base / "app.log"),
            "OMP_NUM_THREADS": "2", "HF_ENDPOINT": hub_recorder.url, "HF_TOKEN": OWNER_TOKEN,
            "TMPDIR": str(base / "tmp"), "GOOGLENET_FORK_GPU": "1" if mode == "forked-gpu" else "0",
            "GOOGLENET_ATLAS_STEPS": "2", "GOOGLENET_ATLAS_SIZE": "32", "GOOGLENET_ATLAS_PER_CLASS": "3",
            "GOOGLENET_ATLAS_INPUT_SIZE": "0", "GOOGLENET_ACCENT_STEPS": "4",
            "GOOGLENET_MAX_RUNS": "1", "GRADIO_TEMP_DIR": str(base / "gradio"),
            "GOOGLENET_CACHE_BYTES": str(DISK_BUDGET)} | (SPACE_WITH_SIGN_IN | {"GOOGLENET_ATLAS": str(prepared / "atlas")}
                                                         if mode == "forked-gpu" else {})


@pytest.fixture(scope="session")
def app_env(request, tmp_path_factory, prepared, cifar_dir, hub_recorder):
    return _env(request.param, tmp_path_factory.mktemp("app"), prepared, cifar_dir, hub_recorder)


# The second server is also a Space as far as it can be tried here: what a Space with `hf_oauth: true` sets (the
# Hub stand-in is the recorder), and a persistent folder standing in for /data (GOOGLENET_PERSISTENT_DIR).
SPACE_WITH_SIGN_IN = {"SYSTEM": "spaces", "SPACE_ID": "someone/inception-explorer", "SPACE_HOST": "127.0.0.1",
                      "OAUTH_CLIENT_ID": "space-client", "OAUTH_CLIENT_SECRET": "space-secret",
                      "OAUTH_SCOPES": "openid profile contribute-repos", "OPENID_PROVIDER_URL": "http://127.0.0.1:9",
                      "GRADIO_MCP_SERVER": "true"}


def _runs(app_env: dict) -> Path:
    """The servers keep runs under their persistent folder (as a Space with storage does)."""
    return Path(app_env["GOOGLENET_PERSISTENT_DIR"]) / "runs"


def _views(app_env: dict) -> list[str]:
    """The atlas views in the servers' disk cache."""
    return sorted(p.name for p in (_runs(app_env) / ".cache" / "atlas").glob("vis-*.png"))


def finished_runs(app_env: dict) -> list[str]:
    """The runs a visitor started (an owner recorded) that are usable, in the servers' runs folder now."""
    from training.runfolder import RunFolder

    folder = _runs(app_env)
    return sorted(f.name for f in map(RunFolder, folder.iterdir() if folder.is_dir() else [])
                  if f.usable and (f.info() or {}).get("owner"))


# What the first server left when it stopped, for the second: the runs it finished and the atlas views it cached.
FIRST_LIFE: dict[str, list[str]] = {}
VIEWS_AT_START: dict[str, list[str]] = {}  # each server's URL -> the atlas views in its cache when it was ready


def _end_first_life(url: str, app_env: dict) -> None:
    """Before the first server stops: make sure it has finished a run and cached an atlas view of its own (the
    tests that ran against it may have; if not, now), and record them for the second server."""
    client = Client(url, verbose=False)
    if not finished_runs(app_env):
        client.predict(train_size=64, epochs=1, batch_size=32, image_size=32, api_name="/finetune")
    if not _views(app_env):
        client.predict(None, "ImageNet GoogLeNet", "inception3a", "pool", 5, api_name="/channel")
    FIRST_LIFE.update(runs=finished_runs(app_env), views=_views(app_env))


@pytest.fixture(scope="session")
def server(app_env, tmp_path_factory, prepared, cifar_dir, hub_recorder):
    """The app on a free port. The second ("forked-gpu") starts over the runs and caches the first left, with those
    runs pinned (retention never deletes them, so the restart test reads them whatever ran before it); when this
    session did not start the first, the first is started, used and stopped here first."""
    forked = app_env["GOOGLENET_FORK_GPU"] == "1"
    if forked and not FIRST_LIFE:
        first = _env("in-process", tmp_path_factory.mktemp("first-life"), prepared, cifar_dir, hub_recorder)
        with running_app(first) as url:
            _end_first_life(url, first)
    env = app_env | ({"GOOGLENET_PINNED_RUNS": ",".join(FIRST_LIFE["runs"])} if forked else {})
    # Gradio's own private-address check relaxed (only that): the URL test sees the app's own refusal.
    with running_app(env, script="tests/data/app_fetching_any_url.py") as url:
        VIEWS_AT_START[url] = _views(app_env)
        yield url
        if not forked:
            _end_first_life(url, app_env)


@pytest.fixture(scope="session")
def client(server):
    return Client(server, verbose=False)
