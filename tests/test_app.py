"""The app launched as a visitor would meet it (``python app.py`` on a free port), driven with gradio_client."""

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from appserver import (ATLAS_CHANNELS, CIFAR_NAMES, DISK_BUDGET, FIRST_LIFE, OWNER_TOKEN, READY_RUN,  # noqa: F401
                       SPACE_WITH_SIGN_IN, UNREPORTED_RUN, VIEWS_AT_START, _runs, both_modes, restarted)
from helpers import PHOTOS, not_examples
from googlenet import GoogLeNet
from training.runfolder import RunFolder


def _refusal(call) -> str:
    """The message of a refused call: an error of the run, or (for an endpoint admitted when it is submitted, whose
    arguments Gradio preprocesses then) the body of the HTTP 400 that refused its submission."""
    try:
        call()
    except AppError as e:
        return str(e)
    except httpx.HTTPStatusError as e:
        assert e.response.status_code == 400
        return e.response.text
    raise AssertionError("the call was not refused")


def _labels(result) -> list[str]:
    return [c["label"] for c in result["confidences"]]


def test_the_api_is_the_recorded_one(client):
    """Every endpoint keeps its name, its arguments, their defaults and its outputs (``tests/data/api_surface.py``):
    compared with the copy recorded from the app before its pages were split."""
    from data.api_surface import surface

    recorded = json.loads((Path(__file__).parent / "data" / "api_surface.json").read_text())["endpoints"]
    assert surface(client.view_api(print_info=False, return_format="dict")) == recorded


@both_modes
def test_classify_with_one_argument_and_options(client):
    labels, info = client.predict(handle_file(str(PHOTOS[0])), api_name="/classify")
    assert len(labels["confidences"]) == 5 and labels["label"] == labels["confidences"][0]["label"]
    assert "ms on CPU" in info and "1 centre crop" in info
    labels3, info3 = client.predict(handle_file(str(PHOTOS[0])), top_k=3, thorough=True, api_name="/classify")
    assert len(labels3["confidences"]) == 3 and "10 crops" in info3


def test_a_tab_link_is_forwarded_to_its_page_before_any_page_is_sent(server):
    """What a Space's page passes on (``/?tab=inside&...``) goes to the view's page with the same query, in one
    short redirect; a page asked for on its own path is served."""
    forwarded = httpx.get(server + "?tab=inside&channel=3", follow_redirects=False, timeout=30)
    assert forwarded.status_code == 307 and forwarded.headers["location"] == "./inside?tab=inside&channel=3"
    assert httpx.get(server + "why?tab=why", follow_redirects=False, timeout=30).status_code == 200
    assert httpx.get(server + "inside?tab=classify", follow_redirects=False, timeout=30).headers["location"] == \
        "./?tab=classify"


def test_classify_errors_are_specific(client):
    with pytest.raises(AppError, match="no finished run called 'nope'"):
        client.predict(handle_file(str(PHOTOS[0])), model="nope", api_name="/classify")
    with pytest.raises(AppError, match="not a valid run name"):
        client.predict(handle_file(str(PHOTOS[0])), model="../../etc", api_name="/classify")
    with pytest.raises(AppError, match="upload an image"):
        client.predict(None, api_name="/classify")


@both_modes
def test_feature_maps_with_one_argument(client):
    out = client.predict(handle_file(str(PHOTOS[1])), api_name="/feature_maps")
    top, g1, g3, g5, gp, gallery, chart, cam, cam_note, knockout, moved = out
    assert len(top["confidences"]) == 5
    for g in (g1, g3, g5, gp, cam):
        assert Path(g).is_file() and Path(g).stat().st_size > 1000
    assert len(gallery) == 4 and chart is not None
    assert "inception4c" in cam_note and "| 3x3 |" in knockout and "| pool proj |" in knockout
    out5b = client.predict(handle_file(str(PHOTOS[1])), module="inception5b", api_name="/feature_maps")
    assert "inception5b" in out5b[8]
    with pytest.raises(AppError, match="Unknown Inception module"):
        client.predict(handle_file(str(PHOTOS[1])), module="inception9z", api_name="/feature_maps")


def test_feature_maps_of_a_finished_run_speak_cifar10_and_compare(client):
    out = client.predict(handle_file(str(PHOTOS[2])), module="inception4a", model=READY_RUN, api_name="/feature_maps")
    labels = _labels(out[0])
    assert labels and set(labels) <= CIFAR_NAMES
    assert "| 3x3 |" in out[9] and out[10] == ""
    both = client.predict(handle_file(str(PHOTOS[2])), "inception4a", "ImageNet GoogLeNet", READY_RUN,
                          api_name="/feature_maps")
    assert not set(_labels(both[0])) & CIFAR_NAMES
    assert "moved most" in both[10] and both[10].count("| inception") == 9
    with pytest.raises(AppError, match="no finished run|not a valid run|No run"):
        client.predict(handle_file(str(PHOTOS[2])), model="no-such-run", api_name="/feature_maps")


@both_modes
def test_explain_and_accentuate_through_the_api(client):
    """/explain with one argument (the top-1, 6 groups at inception4d), then a class of the top 5 and a run's
    CIFAR-10 classes; /accentuate for a channel and for a group; bad requests refused with their reason."""
    masks, text, record, tiles, chosen = client.predict(handle_file(str(PHOTOS[1])), api_name="/explain")
    assert len(masks) == 6 and all(Path(m["image"]).is_file() and m["caption"].startswith("Group") for m in masks)
    assert record["module"] == "inception4d" and len(record["groups"]) == 6
    assert chosen["value"] == record["class_index"] and len(chosen["choices"]) == 5  # the page's class choice
    attributions = [g["attribution"] for g in record["groups"]]
    assert attributions == sorted(attributions, reverse=True) and "?tab=inside&module=inception4d" in text
    assert tiles and all(" ch " in t["caption"] for t in tiles)
    second = record["top5"][1]["index"]
    _, _, other, _, _ = client.predict(handle_file(str(PHOTOS[1])), "ImageNet GoogLeNet", "inception4c", 3, second,
                                       api_name="/explain")
    assert other["class_index"] == second and other["module"] == "inception4c" and len(other["groups"]) == 3
    _, _, run, _, _ = client.predict(handle_file(str(PHOTOS[2])), READY_RUN, "inception3a", api_name="/explain")
    assert run["class"] in CIFAR_NAMES and {t["class"] for t in run["top5"]} <= CIFAR_NAMES
    with pytest.raises(AppError, match="class_index must be at most 9"):
        client.predict(handle_file(str(PHOTOS[2])), READY_RUN, "inception3a", 6, 10, api_name="/explain")
    with pytest.raises(AppError, match="32 px pictures as 2 x 2 positions: ask for at most 4 groups"):
        client.predict(handle_file(str(PHOTOS[2])), READY_RUN, "inception4d", 6, api_name="/explain")
    # Refused by the Slider itself when the request is submitted (its admission preprocesses it)
    assert "greater than maximum value 12" in _refusal(lambda: client.predict(
        handle_file(str(PHOTOS[1])), "ImageNet GoogLeNet", "inception4d", 40, api_name="/explain"))
    original, accentuated, difference, figures = client.predict(
        handle_file(str(PHOTOS[1])), "ImageNet GoogLeNet", "inception4d", "5x5", 3, api_name="/accentuate")
    assert all(Path(p).is_file() for p in (original, accentuated, difference))
    assert "5x5 channel 3" in figures and "JPEG at quality 75" in figures
    *_, grouped = client.predict(handle_file(str(PHOTOS[1])), "ImageNet GoogLeNet", "inception4d", "3x3", 0, 2,
                                 api_name="/accentuate")
    assert "group 2" in grouped
    with pytest.raises(AppError, match="no finished run called 'nope'"):
        client.predict(handle_file(str(PHOTOS[1])), "nope", api_name="/accentuate")


@both_modes
def test_a_channels_circuit_through_the_api(client):
    """/circuit: the inputs for and against from the module below, strongest first, each with its kernel and
    picture; with a picture, the inputs that carried it there; bad requests refused with their reason."""
    pictures, note, record = client.predict("ImageNet GoogLeNet", "inception4c", "3x3", 5, None, 3,
                                            api_name="/circuit")
    assert (record["module"], record["branch"], record["channel"], record["input_module"]) == \
        ("inception4c", "3x3", 5, "inception4b")
    inputs = record["inputs"]
    assert [i["sign"] for i in inputs] == [1, 1, 1, -1, -1, -1]
    for side in (inputs[:3], inputs[3:]):
        assert [i["strength"] for i in side] == sorted((i["strength"] for i in side), reverse=True)
    assert all(len(i["kernel"]) == 3 and i["branch"] in ("1x1", "3x3", "5x5", "pool") for i in inputs)
    assert record["on_picture"] is None and record["rewired"] is None
    assert len(pictures) == 8 and all(Path(p["image"]).is_file() for p in pictures)
    assert pictures[0]["caption"].startswith("the circuit: this channel at the centre")  # the diagram, then the rest
    assert pictures[1]["caption"] == "inception4c 3x3 ch 5: this channel" and "multiplied out" in note
    assert "?tab=inside&module=inception4b" in note  # each input links to its atlas view
    pictures, note, record = client.predict(READY_RUN, "inception3a", "5x5", 2, handle_file(str(PHOTOS[0])), 2,
                                            api_name="/circuit")
    assert record["input_module"] == "stem" and {i["branch"] for i in record["inputs"]} == {"stem"}
    assert record["on_picture"] and all(e["branch"] == "stem" for e in record["on_picture"])
    assert record["rewired"] is None and "started from random weights" in note  # the run's recorded start: none
    assert len(pictures) == 2 + len(record["inputs"]) + len(record["on_picture"])  # the diagram, the channel
    _, note, record = client.predict(UNREPORTED_RUN, "inception4c", "1x1", 0, None, 1, api_name="/circuit")
    assert record["rewired"] is None and "did not record the weights it started from" in note  # an older run
    for args, message in [(("ImageNet GoogLeNet", "inception9z", "3x3", 0), "Unknown Inception module"),
                          (("ImageNet GoogLeNet", "inception4c", "3x3", 256), "has channels 0..255"),
                          (("nope", "inception4c", "3x3", 0), "no finished run called 'nope'")]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/circuit")
    assert "greater than maximum value 32" in _refusal(lambda: client.predict(
        "ImageNet GoogLeNet", "inception4c", "3x3", 0, None, 40, api_name="/circuit"))


@both_modes
def test_channel_view_through_the_api(client):
    vis, examples, where, note, link = client.predict(handle_file(str(PHOTOS[0])), "ImageNet GoogLeNet",
                                                      "inception4c", "3x3", 5, api_name="/channel")
    assert Path(vis).is_file() and Path(where).is_file()
    assert len(examples) == 9 and all(e["caption"] for e in examples)  # the CIFAR-10 test split is present
    assert "channel 5" in note and "?tab=inside&module=inception4c&branch=3x3&channel=5" in link
    vis2, examples2, where2, note2, _ = client.predict(None, READY_RUN, "inception4c", "3x3", 5, api_name="/channel")
    assert where2 is None and Path(vis2).is_file() and len(examples2) == 9  # a run's own atlas
    _, _, _, note3, _ = client.predict(None, "ImageNet GoogLeNet", "inception4c", "3x3", 5, api_name="/channel")
    assert "from the cache: visualisation, examples" in note3
    with pytest.raises(AppError, match="channels 0..255"):
        client.predict(None, "ImageNet GoogLeNet", "inception4c", "3x3", 999, api_name="/channel")
    # Refused by the Radio itself, with the choices, when the request is submitted (its admission preprocesses it)
    assert "9x9" in _refusal(lambda: client.predict(None, "ImageNet GoogLeNet", "inception4c", "9x9", 1,
                                                    api_name="/channel"))


@both_modes
def test_the_grid_of_every_channel_with_and_without_a_precomputed_atlas(server, app_env):
    client = Client(server, verbose=False, download_files=False)  # the tiles stay on the server (same machine here)
    tiles, note, link = client.predict(model="ImageNet GoogLeNet", module="inception4c", branch="3x3",
                                       api_name="/atlas_grid")
    assert [t["caption"] for t in tiles] == [f"ch {c}" for c in range(256)]
    assert "grid=1" in link and "branch=3x3" in link
    atlas = "GOOGLENET_ATLAS" in app_env  # the second server serves a small precomputed atlas
    assert ("from the precomputed atlas" in note) == atlas
    pictures = [np.asarray(Image.open(t["image"]["path"]).convert("RGB")) for t in tiles]
    assert {p.shape for p in pictures} == {(64, 64, 3)}  # thumbnails, from the atlas or the dataset: no grey squares
    assert all(p.std() > 0 for p in pictures) and "strongest example" in note  # the atlas has 4 of 256
    tiles, note, _ = client.predict(module="inception4c", branch="3x3", image=handle_file(str(PHOTOS[0])),
                                    api_name="/atlas_grid")
    values = [float(t["caption"].rsplit(": ", 1)[1]) for t in tiles]
    assert len(values) == 256 and values == sorted(values, reverse=True) and "your picture" in note
    with pytest.raises(AppError, match="Unknown Inception module"):
        client.predict(module="inception9z", api_name="/atlas_grid")


def test_architecture(client):
    table, diagram = client.predict(api_name="/architecture")
    assert "inception (4c)" in table and "⚠" in table and Path(diagram).is_file()


def test_bad_inputs_get_clear_answers(client, tmp_path):
    from data.make_bad_inputs import EXPECTED, make_corpus

    make_corpus(tmp_path)
    for name, (outcome, phrase) in EXPECTED.items():
        for endpoint in ("/classify", "/feature_maps"):
            if outcome == "ok":  # decoded as /classify decodes it (feature maps of photos: tested above)
                if endpoint == "/classify":
                    result = client.predict(handle_file(str(tmp_path / name)), api_name=endpoint)
                    assert result[0]["confidences"], name
                continue
            with pytest.raises(Exception) as e:  # AppError from the server; the size limit is checked before upload
                client.predict(handle_file(str(tmp_path / name)), api_name=endpoint)
            assert phrase in str(e.value) or "maximum file size" in str(e.value), (name, endpoint, str(e.value))
            assert "Traceback" not in str(e.value)
    labels, _ = client.predict(handle_file(str(PHOTOS[0])), api_name="/classify")  # still serving
    assert len(labels["confidences"]) == 5


def test_server_refuses_uploads_over_the_limit(server, tmp_path):
    """Gradio's limit is the app's largest upload (a zip of photos); a picture's own 10 MB limit is the image
    path's, checked before decoding (too_large.png in test_bad_inputs_get_clear_answers)."""
    from training.imagedata import Limits

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(Limits().max_zip_bytes + 1024)
    with open(big, "rb") as f:
        response = httpx.post(server + "gradio_api/upload", files={"files": ("big.zip", f)}, timeout=60)
    assert response.status_code == 413 and "size" in response.text.lower()


@both_modes
def test_finetune_run_then_classify_with_it(client, app_env):
    job = client.submit(train_size=64, epochs=2, batch_size=32, image_size=32, probe_image=handle_file(str(PHOTOS[1])),
                        probe_module="inception4a", api_name="/finetune")
    summary, curves, log, result, drift, top, shares, cam = job.result(timeout=300)
    looks = [o[5:] for o in job.outputs() if isinstance(o[5], dict) and "confidences" in o[5]]
    assert len(looks) == 2  # the probe's inside view once per epoch: top-3 now, branch shares, Grad-CAM
    assert all(len(t["confidences"]) == 3 and {c["label"] for c in t["confidences"]} <= CIFAR_NAMES
               and chart["type"] == "matplotlib" and Path(image).is_file() for t, chart, image in looks)
    assert result["status"] == "finished" and 0 <= result["val_accuracy"] <= 1
    assert drift is not None  # the drift map's figure (here its note: the CPU default freezes the backbone)
    assert result["run"] in summary and "validation accuracy" in summary
    assert "epoch 2/2" in log
    labels, info = client.predict(handle_file(str(PHOTOS[0])), model=result["run"], api_name="/classify")
    assert set(_labels(labels)) <= CIFAR_NAMES and result["run"] in info
    run_dir = Path(_runs(app_env)) / result["run"]
    assert (run_dir / "model.safetensors").is_file() and json.loads((run_dir / "run.json").read_text())
    assert "backbone frozen" in json.loads((run_dir / "drift.json").read_text())["note"]
    start = GoogLeNet.from_pretrained(app_env["GOOGLENET_WEIGHTS"])  # the app's weights: where its runs start
    assert RunFolder(run_dir).start() == {"weights": "a local folder", "fingerprint": start.backbone_fingerprint()}
    _, note, circuit = client.predict(result["run"], "inception3a", "pool", 1, None, 2, api_name="/circuit")
    assert [e["change"] for e in circuit["rewired"]] == [0, 0]  # compared with its start: the frozen backbone
    assert "no input connection of this channel moved" in note
    probe = json.loads((run_dir / "probe.json").read_text())
    assert probe["picture"] == "your picture" and probe["module"] == "inception4a" and len(probe["epochs"]) == 2


def test_a_run_on_a_hub_dataset_has_its_own_classes_and_an_upload_stays_its_owners(server, app_env, hub_recorder,
                                                                             tmp_path):
    """A visitor checks a Hub dataset, trains on it, and classifies, reports and opens a channel with its classes;
    another checks a zip of photos. The Hub is read without the server's token, and no visitor can name another's
    upload."""
    import zipfile

    from conftest import FAKE_HUB
    from data.make_parquet import leaves, pictures_of, png

    beans = ["angular_leaf_spot", "bean_rust", "healthy"]
    commit = FAKE_HUB.add_commit("datasets/team/app-leaves", leaves(beans, {"train": 12, "validation": 4, "test": 4}))
    a, b = Client(server, verbose=False), Client(server, verbose=False)
    hub_recorder.seen.clear()
    text, strip = a.predict(dataset="team/app-leaves", image_size=32, api_name="/dataset")
    assert "3 classes; 36 training, 12 validation and 12 test pictures" in text and commit[:12] in text
    assert len(strip) == 12 and {item["caption"] for item in strip} == set(beans)
    assert hub_recorder.seen and not any(hub_recorder.seen)  # no Authorization header: never the owner's token
    tiny = dict(train_size=36, epochs=1, batch_size=12, image_size=32, api_name="/finetune")
    result = a.predict(dataset="team/app-leaves", **tiny)[3]
    assert result["status"] == "finished"
    info = json.loads((_runs(app_env) / result["run"] / "run.json").read_text())
    assert info["data"]["dataset"] == "team/app-leaves" and info["data"]["revision"] == commit
    labels, _ = a.predict(handle_file(str(PHOTOS[0])), model=result["run"], api_name="/classify")
    assert set(_labels(labels)) == set(beans)
    *_, report = a.predict(result["run"], api_name="/run_report")
    assert report["classes"] == beans and np.asarray(report["confusion"]).shape == (3, 3)
    _, examples, _, note, _ = a.predict(None, result["run"], "inception3a", "1x1", 0, api_name="/channel")
    assert examples and all(item["caption"].split(" #")[0] in beans for item in examples)  # its own dataset's
    assert "team/app-leaves test split" in note

    photos = tmp_path / "pets.zip"
    with zipfile.ZipFile(photos, "w") as z:
        for k, name in enumerate(("cat", "dog")):
            for i, picture in enumerate(pictures_of(np.full(8, k), seed=k)):
                z.writestr(f"{name}/{i}.png", png(picture))
        z.writestr("cat/readme.txt", "not a picture")
    text, _ = b.predict(photos=handle_file(str(photos)), image_size=32, api_name="/dataset")
    assert "**pets\\.zip**: 2 classes" in text and "1 files were skipped" in text  # training on a zip: test_sources
    (upload,) = (_runs(app_env) / ".uploads").glob("*/*/pets.zip")  # kept under B's own folder, by its content
    with pytest.raises(AppError, match="your own photos come as an uploaded zip"):  # A cannot train on B's upload
        a.predict(dataset=str(upload), **tiny)
    assert upload.is_file()


def test_invalid_finetune_settings(client):
    with pytest.raises(AppError, match="epochs must be a positive"):
        client.predict(epochs=0, api_name="/finetune")
    with pytest.raises(AppError, match="at least 32 px"):
        client.predict(image_size=16, api_name="/finetune")
    with pytest.raises(AppError, match="larger than the training data"):
        client.predict(train_size=50, batch_size=64, api_name="/finetune")
    with pytest.raises(AppError, match="magic is not in the list of choices"):
        client.predict(recipe="magic", api_name="/finetune")


def _wait_for(job, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # until an update with ``text`` in its summary has arrived
        if any(text in str(o[0]) for o in job.outputs()):
            return
        time.sleep(0.2)
    pytest.fail(f"no update said {text!r}")


@both_modes
def test_one_run_at_a_time_others_wait_in_line_and_only_its_owner_cancels(server):
    first, second, third = (Client(server, verbose=False) for _ in range(3))
    job = first.submit(train_size=400, epochs=10, batch_size=16, image_size=32, freeze_backbone=False,
                       api_name="/finetune")
    _wait_for(job, "step")  # it trains
    waiting = second.submit(train_size=64, epochs=1, batch_size=32, image_size=32, api_name="/finetune")
    _wait_for(waiting, "number 1 in line")
    with pytest.raises(AppError, match="already waiting in line"):
        second.predict(train_size=64, epochs=1, api_name="/finetune")
    assert "another visitor" in third.predict(api_name="/cancel_finetune")
    assert "Cancelling" in first.predict(api_name="/cancel_finetune")
    summary, _, log, result, *_ = job.result(timeout=120)
    assert result["status"] == "cancelled" and result["epochs"] < 10  # stopped, not run to its end
    assert waiting.result(timeout=120)[3]["status"] == "finished"  # the next in line ran
    labels, _ = third.predict(handle_file(str(PHOTOS[0])), api_name="/classify")  # still serving
    assert labels["confidences"]


def test_two_visitors_pressing_start_at_once_run_one_after_the_other(server):
    clients = [Client(server, verbose=False) for _ in range(2)]
    jobs = [c.submit(train_size=64, epochs=1, batch_size=32, image_size=32, api_name="/finetune") for c in clients]
    results = [j.result(timeout=300) for j in jobs]
    assert [r[3]["status"] for r in results] == ["finished", "finished"]
    assert sum(any("in line" in str(o[0]) for o in j.outputs()) for j in jobs) == 1  # one waited its turn


def test_push_uses_the_visitors_token_only_and_never_shows_it(client, app_env, hub_recorder):
    """The server has HF_TOKEN; a push with an empty token sends nothing, one with a token sends only that."""
    hub_recorder.seen.clear()
    with pytest.raises(AppError, match="your own Hugging Face token"):
        client.predict(READY_RUN, "someone/somewhere", "", api_name="/push_to_hub")
    assert hub_recorder.seen == []
    secret = "hf_SECRETtokenThatMustNeverAppear123"
    with pytest.raises(AppError) as e:
        client.predict(READY_RUN, "someone/somewhere", secret, api_name="/push_to_hub")
    assert "Pushing to someone/somewhere failed" in str(e.value)
    assert hub_recorder.seen and all(h == f"Bearer {secret}" for h in hub_recorder.seen)
    assert secret not in str(e.value) and str(_runs(app_env)) not in str(e.value)
    assert secret not in Path(app_env["APP_LOG"]).read_text(errors="replace")
    assert OWNER_TOKEN not in Path(app_env["APP_LOG"]).read_text(errors="replace")


SIGN_IN = "Sign in with Hugging Face"  # the login button's label


def _components(server: str) -> list[dict]:
    return httpx.get(server + "config", timeout=30).json()["components"]


def test_without_a_space_there_is_no_login_button_and_the_token_field_stays(server):
    assert not any(c.get("props", {}).get("value") == SIGN_IN for c in _components(server))
    assert any(c.get("props", {}).get("type") == "password" for c in _components(server))


def test_runs_that_finished_after_the_page_opened_can_be_pushed(server, hub_recorder):
    late = Client(server, verbose=False)  # its page config was fetched before this run existed
    job = Client(server, verbose=False).submit(train_size=64, epochs=1, batch_size=32, image_size=32,
                                               api_name="/finetune")
    run = job.result(timeout=300)[3]["run"]
    hub_recorder.seen.clear()
    with pytest.raises(AppError, match="Pushing to someone/late failed"):  # reached the (recording) Hub
        late.predict(run, "someone/late", "hf_visitor", api_name="/push_to_hub")
    assert hub_recorder.seen


def test_limits_are_refused_before_a_run_starts_naming_the_limit(client, app_env):
    runs_before = sorted(p.name for p in Path(_runs(app_env)).iterdir())
    with pytest.raises(AppError, match=r"epochs may be at most 10 on this server \(GOOGLENET_MAX_EPOCHS\)"):
        client.predict(epochs=1_000_000_000, api_name="/finetune")
    with pytest.raises(AppError, match="image size may be at most 128 px"):
        client.predict(image_size=512, api_name="/finetune")
    assert sorted(p.name for p in Path(_runs(app_env)).iterdir()) == runs_before  # nothing was started


def test_concurrent_feature_maps_each_get_their_own_picture(server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    clients = [Client(server, verbose=False) for _ in range(4)]
    fresh = not_examples(tmp_path)  # computed every time: not answered from the examples' cache
    pictures = [str(fresh[0]), str(fresh[3])]
    alone = [clients[0].predict(handle_file(p), api_name="/feature_maps") for p in pictures]

    def visitor(k: int) -> list:  # four visitors at once, each one request (the fair-use rule)
        return [clients[k].predict(handle_file(pictures[k % 2]), api_name="/feature_maps")]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(visitor, range(4)))
    for k, outs in enumerate(answers):
        for j, out in enumerate(outs):
            expected = alone[k % 2]
            assert _labels(out[0]) == _labels(expected[0]) and out[9] == expected[9], (k, j)  # labels, knockout


def test_status_line_and_messages_show_no_server_paths(server, app_env):
    page = httpx.get(server + "config", timeout=30).text
    for secret_place in (str(_runs(app_env)), app_env["GOOGLENET_WEIGHTS"], app_env["CIFAR10_DIR"]):
        assert secret_place not in page
    assert "a local folder" in page


def test_concurrent_classifications_have_no_errors(server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    clients = [Client(server, verbose=False) for _ in range(4)]
    fresh = not_examples(tmp_path)

    def call(k: int):
        return clients[k % 4].predict(handle_file(str(fresh[k % len(fresh)])), api_name="/classify")

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(12)))
    alone = {str(p): client_labels(clients[0], p) for p in fresh}
    for k, (labels, info) in enumerate(answers):
        assert _labels(labels) == alone[str(fresh[k % len(fresh)])] and "from the cache" not in info


@both_modes
def test_an_example_photo_is_answered_from_the_cache_the_second_time(client, tmp_path):
    """The second click on an example spends no GPU time; any other picture (even the same photo re-saved) and any
    other option is computed."""
    first = client.predict(handle_file(str(PHOTOS[1])), top_k=4, api_name="/classify")
    again = client.predict(handle_file(str(PHOTOS[1])), top_k=4, api_name="/classify")
    assert "from the cache" not in first[1] and "answered from the cache" in again[1]
    assert again[0] == first[0]
    other = client.predict(handle_file(str(PHOTOS[1])), top_k=3, api_name="/classify")
    assert "from the cache" not in other[1]
    assert "from the cache" not in client.predict(handle_file(str(not_examples(tmp_path)[1])), top_k=4,
                                                  api_name="/classify")[1]


def client_labels(client, path):
    return _labels(client.predict(handle_file(str(path)), api_name="/classify")[0])


def test_run_drift_answers_for_a_finished_run_and_refuses_a_bad_name(client):
    _, table, record = client.predict(READY_RUN, api_name="/run_drift")
    assert [f["epoch"] for f in record["epochs"]] == [1] and "| inception4c |" in table
    assert set(record["epochs"][0]["cka"]) == set(record["modules"]) and len(record["modules"]) == 9
    _, first, _ = client.predict(READY_RUN, epoch=1, api_name="/run_drift")
    assert first == table
    with pytest.raises(AppError, match="has epochs 1 to 1; got 3"):
        client.predict(READY_RUN, epoch=3, api_name="/run_drift")
    with pytest.raises(AppError, match="no finished run called"):
        client.predict("no-such-run", api_name="/run_drift")
    with pytest.raises(AppError, match="not a valid run name"):
        client.predict("../../etc", api_name="/run_drift")


def test_run_report_and_compare_runs(client):
    confusion, per_class, gallery, report = client.predict(READY_RUN, api_name="/run_report")
    assert {"classes", "confusion", "accuracy", "per_class", "top_losses"} <= set(report)
    assert sum(map(sum, report["confusion"])) == 160 and "| airplane |" in per_class
    assert len(gallery) == len(report["top_losses"])
    assert all(" → " in item["caption"] for item in gallery)
    with pytest.raises(AppError, match="no finished run called 'nope'"):
        client.predict("nope", api_name="/run_report")
    plot, table, drift_maps = client.predict([READY_RUN, UNREPORTED_RUN], api_name="/compare_runs")
    assert READY_RUN in table and "best_val_accuracy" in table and plot is not None
    assert drift_maps["type"] == "matplotlib"  # the runs' drift maps side by side
    with pytest.raises(AppError, match="one or more finished runs"):
        client.predict([], api_name="/compare_runs")


def test_a_visitor_leaving_mid_run_stalls_nobody_and_frees_the_slot(server):
    """The page that started a run closes during a step: others are served, the slot frees itself."""
    leaving, other = Client(server, verbose=False), Client(server, verbose=False)
    job = leaving.submit(train_size=400, epochs=10, batch_size=32, image_size=32, freeze_backbone=False,
                         api_name="/finetune")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("step" in str(o[0]) for o in job.outputs()):
        time.sleep(0.2)
    job.cancel()  # the visitor closes the tab
    start = time.perf_counter()
    labels, _ = other.predict(handle_file(str(PHOTOS[0])), api_name="/classify")
    print(f"/classify while the abandoned run stops: {1000 * (time.perf_counter() - start):.0f} ms")
    assert labels["confidences"]
    # Nobody cancels it by hand: the run stops and the slot is released on its own; the next in line runs.
    result = other.submit(train_size=64, epochs=1, batch_size=32, image_size=32, api_name="/finetune").result(
        timeout=120)[3]
    assert result["status"] == "finished"


class PictureServer:
    """Serves a photo on 127.0.0.1 and counts the requests it gets (none, if the app refuses URLs itself)."""

    def __init__(self) -> None:
        import http.server

        self.requests = 0
        owner, body = self, PHOTOS[0].read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cat.jpg"


def test_an_image_named_by_url_is_refused_before_anything_is_fetched(client):
    pictures = PictureServer()
    try:
        for endpoint in ("/classify", "/feature_maps"):
            assert "does not fetch pictures from URLs" in _refusal(
                lambda: client.predict(handle_file(pictures.url), api_name=endpoint))
        assert "does not fetch pictures from URLs" in _refusal(lambda: client.predict(
            handle_file(pictures.url), "ImageNet GoogLeNet", "inception4c", "3x3", 1, api_name="/channel"))
        assert "does not fetch pictures from URLs" in _refusal(lambda: client.predict(
            image=handle_file(pictures.url), api_name="/atlas_grid"))
        assert "does not fetch pictures from URLs" in _refusal(lambda: client.predict(
            probe_image=handle_file(pictures.url), api_name="/finetune"))  # a run's probe picture too
        assert pictures.requests == 0
    finally:
        pictures.server.shutdown()


INJECTION = '<a href="https://evil.example/x">Session expired: sign in</a>'


def test_visitor_text_comes_back_as_text_never_markup(client, hub_recorder):
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(PHOTOS[0])), model=INJECTION, api_name="/classify")
    assert "&lt;a href=" in str(e.value) and "<a " not in str(e.value)
    hub_recorder.seen.clear()
    with pytest.raises(AppError, match="is not a Hub repo id") as e:
        client.predict(READY_RUN, INJECTION, "hf_visitor", api_name="/push_to_hub")
    assert "<a " not in str(e.value) and hub_recorder.seen == []  # refused before anything is sent


def test_a_report_is_evaluated_once_for_concurrent_callers_and_saved(client, server, app_env):
    from concurrent.futures import ThreadPoolExecutor

    folder = RunFolder(Path(_runs(app_env)) / UNREPORTED_RUN)
    assert folder.report() is None
    clients = [Client(server, verbose=False) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda c: c.predict(UNREPORTED_RUN, api_name="/run_report")[3], clients))
    assert all(a == answers[0] for a in answers) and sum(map(sum, answers[0]["confusion"])) == 160
    assert folder.report() is not None  # saved with the run
    log = Path(app_env["APP_LOG"]).read_text(errors="replace")
    assert log.count(f"evaluating {UNREPORTED_RUN} for its report") == 1


def _bytes_under(*folders: Path) -> int:
    return sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())


def test_disk_stays_within_its_budget_after_many_views_runs_and_uploads(server, app_env):
    """48 distinct atlas views, 8 runs' checkpoints (over twice the budget on their own) and 24 uploads: the disk
    cache and Gradio's upload and output cache together stay within GOOGLENET_CACHE_BYTES."""
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    from io import BytesIO

    from PIL import Image

    runs, ready = Path(_runs(app_env)), Path(_runs(app_env)) / READY_RUN
    names = [f"budget-run-{k}" for k in range(8)]
    for name in names:  # 8 finished runs (hard links: the same files, no time spent copying)
        shutil.copytree(ready, runs / name, copy_function=os.link)
    clients = [Client(server, verbose=False, download_files=False) for _ in range(4)]
    views = [(m, b, c) for m in ("inception3a", "inception3b") for b in ("1x1", "3x3", "5x5", "pool") for c in range(6)]

    def look(k: int) -> None:  # each client its quarter, one view at a time (the fair-use rule)
        for module, branch, channel in views[k::4]:
            clients[k].predict(None, "ImageNet GoogLeNet", module, branch, channel, api_name="/channel")

    def upload(k: int) -> None:
        picture = Image.fromarray(np.random.default_rng(k).integers(0, 255, (96, 96, 3), dtype=np.uint8))
        png = BytesIO()
        picture.save(png, format="PNG")
        httpx.post(server + "gradio_api/upload", files={"files": (f"up{k}.png", png.getvalue())},
                   timeout=30).raise_for_status()

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(look, range(4)))
            list(pool.map(upload, range(24)))
        for name in names:
            clients[0].predict(name, api_name="/checkpoint")
    finally:
        for name in names:
            shutil.rmtree(runs / name, ignore_errors=True)
    held = [runs / ".cache", Path(app_env["GRADIO_TEMP_DIR"])]
    assert len(views) == len(set(views)) == 48 and _bytes_under(held[1]) > 0
    deadline = time.monotonic() + 20  # Gradio writes uploads and outputs itself: a sweep every 5 s evicts them
    while _bytes_under(*held) > DISK_BUDGET and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _bytes_under(*held) <= DISK_BUDGET


def test_two_visitors_asking_the_same_new_channel_get_one_computation(server):
    from concurrent.futures import ThreadPoolExecutor

    clients = [Client(server, verbose=False) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        notes = list(pool.map(lambda c: c.predict(None, "ImageNet GoogLeNet", "inception3b", "1x1", 7,
                                                  api_name="/channel")[3], clients))
    assert sorted("from the cache: visualisation, examples" in n for n in notes) == [False, True], notes


def test_one_visitors_runs_never_delete_anothers(server, app_env):
    tiny = dict(train_size=64, epochs=1, batch_size=32, image_size=32, api_name="/finetune")
    a, b = Client(server, verbose=False), Client(server, verbose=False)
    run_a = a.predict(**tiny)[3]["run"]
    runs_b = [b.predict(**tiny)[3]["run"] for _ in range(2)]  # one more than GOOGLENET_MAX_RUNS=1
    left = {p.name for p in Path(_runs(app_env)).iterdir()}
    assert run_a in left  # A's only run is older than all of B's, and kept
    assert [r in left for r in runs_b] == [False, True]  # B's own oldest made room
    record = RunFolder(Path(_runs(app_env)) / run_a).info()
    assert record["owner"] and record["address"] and "127.0.0.1" not in json.dumps(record)  # opaque ids


def test_a_flood_of_channel_views_is_refused_at_once_and_others_are_still_served(server):
    # Seventy requests join at once on a busy 2-core machine: the flood's client waits up to 60 s for each answer,
    # not httpx's default 5 s, so that this is not a timed test.
    flood = Client(server, verbose=False, httpx_kwargs={"timeout": 60.0})
    other = Client(server, verbose=False)
    jobs = [flood.submit(None, "ImageNet GoogLeNet", "inception5b", "1x1", k, api_name="/channel") for k in range(70)]
    labels, _ = other.predict(handle_file(str(PHOTOS[0])), api_name="/classify")  # never "Queue is full"
    assert labels["confidences"]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes.append("served")
        except Exception as e:  # noqa: BLE001
            outcomes.append("refused" if "one at a time per visitor" in str(e) else repr(e))
    assert [o for o in outcomes if o not in ("served", "refused")] == []  # anything else, by its exception
    assert outcomes.count("served") >= 1 and outcomes.count("refused") >= 50
    vis, *_ = other.predict(None, "ImageNet GoogLeNet", "inception5b", "1x1", 69, api_name="/channel")
    assert Path(vis).is_file()  # another visitor's view is admitted meanwhile


@restarted
def test_a_signed_in_visitor_pushes_to_their_own_account_with_their_oauth_token(server, hub_recorder):
    """On a Space with sign-in: a login button, no token field, and the visitor's OAuth token (only it) reaches the
    Hub, for a repo under the visitor's name, private as asked."""
    components = _components(server)
    assert any(c.get("props", {}).get("value") == SIGN_IN for c in components)
    assert not any(c.get("props", {}).get("type") == "password" for c in components)
    with pytest.raises(AppError, match="Sign in with Hugging Face first"):
        Client(server, verbose=False).predict(READY_RUN, "mine", True, api_name="/push_to_hub")
    hub_recorder.requests.clear()
    signed_in = Client(server, verbose=False, oauth_token="hf_oauth_VISITOR")
    with pytest.raises(AppError, match="Pushing to visitor/mine failed"):  # the recorder refuses the repo
        signed_in.predict(READY_RUN, "mine", True, api_name="/push_to_hub")
    assert hub_recorder.requests and {auth for _, _, auth, _ in hub_recorder.requests} == {"Bearer hf_oauth_VISITOR"}
    created = [json.loads(body) for method, path, _, body in hub_recorder.requests if path.endswith("/repos/create")]
    assert created and (created[0]["organization"], created[0]["name"]) == ("visitor", "mine")
    assert created[0].get("visibility") == "private" or created[0].get("private") is True


@restarted
def test_mcp_serves_exactly_the_curated_tools_and_one_classifies_a_picture(server):
    import asyncio
    import base64

    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    from explorer.profile import MCP_TOOLS

    prefix = SPACE_WITH_SIGN_IN["SPACE_ID"].split("/")[1] + "_"  # Gradio prefixes a Space's tools with its name
    schema = httpx.get(server + "gradio_api/mcp/schema", timeout=30).json()
    assert sorted(t["name"] for t in schema) == sorted(prefix + t for t in MCP_TOOLS)
    recorded = json.loads((Path(__file__).parent / "data" / "api_surface.json").read_text())["mcp_tools"]
    assert {t["name"].removeprefix(prefix): sorted(t["inputSchema"].get("properties", {})) for t in schema} == recorded
    for tool in schema:  # each tells an assistant what it does and what each argument means
        assert len(tool["description"]) > 80, tool["name"]
        described = [p for p in tool["inputSchema"].get("properties", {}).values() if p.get("description")]
        assert len(described) == len(tool["inputSchema"].get("properties", {})), tool["name"]
    picture = "data:image/jpeg;base64," + base64.b64encode(PHOTOS[0].read_bytes()).decode()

    async def call(arguments: dict) -> object:
        async with streamablehttp_client(server + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await session.call_tool(prefix + "classify", arguments)

    answer = asyncio.run(call({"image": picture, "top_k": 3}))
    text = " ".join(getattr(c, "text", "") for c in answer.content)
    assert not answer.isError and "ImageNet GoogLeNet" in text, text
    pictures = PictureServer()  # a URL is refused here as everywhere else: nothing is fetched
    refused = asyncio.run(call({"image": pictures.url}))
    assert refused.isError and pictures.requests == 0


@restarted
def test_a_restarted_app_lists_and_serves_every_run_the_first_one_finished(app_env, server, client):
    """This server started after the first one stopped, over the same persistent folder: every run the first one
    finished (pinned: nothing here deletes them) is in the page's lists and classifies, and the first one's cached
    atlas views and browser secret were still there when it started."""
    kept = _runs(app_env)
    assert FIRST_LIFE["runs"] and FIRST_LIFE["views"], "the first server left nothing to find"
    assert (kept / ".browser-secret").is_file() and set(FIRST_LIFE["views"]) <= set(VIEWS_AT_START[server])
    config = httpx.get(server + "config", timeout=30).json()
    dropdown_choices = [str(c) for comp in config["components"] if comp.get("props", {}).get("label") == "Model"
                        for c in comp["props"].get("choices", [])]
    for run in FIRST_LIFE["runs"]:
        assert any(run in choice for choice in dropdown_choices), run
        labels, _ = client.predict(handle_file(str(PHOTOS[2])), model=run, api_name="/classify")
        assert set(_labels(labels)) <= CIFAR_NAMES, run
