import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, close, dead_endpoint
from googlenet import GoogLeNet, from_torchvision
from googlenet.hub import WeightsError, parse_weights_spec
from huggingface_hub import constants
from googlenet.weights import load_weights


def _tiny(num_classes: int = 4, seed: int = 0) -> GoogLeNet:
    torch.manual_seed(seed)
    return GoogLeNet(num_classes=num_classes, aux_logits=False, class_names=[f"c{i}" for i in range(num_classes)]).eval()


def _publish(fake_hub, tmp_path: Path, repo: str, model: GoogLeNet, ref: str = "main") -> str:
    folder = tmp_path / f"{repo.replace('/', '_')}-{ref}"
    model.save_pretrained(folder)
    return fake_hub.add_commit(repo, folder, ref=ref)


def test_save_pretrained_writes_safetensors_and_config_only(tmp_path):
    model = _tiny()
    model.save_pretrained(tmp_path)
    names = set(os.listdir(tmp_path))
    assert {"config.json", "model.safetensors"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_classes"] == 4 and config["class_names"] == ["c0", "c1", "c2", "c3"]
    assert config["variant"] == "paper" and config["preprocessing"]["crop"] == 224


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _tiny()
    model.save_pretrained(tmp_path)
    loaded = GoogLeNet.from_pretrained(tmp_path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.class_names == model.class_names


def test_first_download_then_cache_then_revision_pinning(fake_hub, tmp_path):
    first = _tiny(seed=1)
    commit1 = _publish(fake_hub, tmp_path, "team/pinning", first)
    loaded = GoogLeNet.from_pretrained("team/pinning")
    assert loaded.weights_source == f"team/pinning@{commit1[:12]}"
    second = _tiny(seed=2)
    commit2 = _publish(fake_hub, tmp_path, "team/pinning", second)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(GoogLeNet.from_pretrained("team/pinning")(x), second(x))
        assert torch.equal(GoogLeNet.from_pretrained("team/pinning", revision=commit1)(x), first(x))
    model, source = load_weights(f"team/pinning@{commit1}")
    assert source.kind == "hub" and source.description == f"team/pinning@{commit1[:12]}"
    assert commit1 != commit2


def test_missing_repo_revision_and_file(fake_hub, tmp_path):
    _publish(fake_hub, tmp_path, "team/exists", _tiny())
    with pytest.raises(WeightsError, match="team/nothing-here was not found") as e:
        GoogLeNet.from_pretrained("team/nothing-here")
    assert e.value.kind == "repo_not_found"
    with pytest.raises(WeightsError, match="Revision 'v404' does not exist in team/exists") as e:
        GoogLeNet.from_pretrained("team/exists", revision="v404")
    assert e.value.kind == "revision_not_found"
    fake_hub.add_commit("team/config-only", {"config.json": json.dumps(_tiny().config_dict()).encode()})
    with pytest.raises(WeightsError, match="'model.safetensors' of team/config-only@main does not exist") as e:
        GoogLeNet.from_pretrained("team/config-only")
    assert e.value.kind == "file_not_found"


def test_never_falls_back_to_a_pickle(fake_hub, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_tiny().config_dict()))
    torch.save(_tiny().state_dict(), folder / "pytorch_model.bin")
    fake_hub.add_commit("team/pickled", folder)
    with pytest.raises(WeightsError) as e:
        GoogLeNet.from_pretrained("team/pickled")
    assert e.value.kind == "file_not_found"
    assert not any("pytorch_model.bin" in r for r in fake_hub.requests)


def test_truncated_and_corrupted_safetensors(fake_hub, tmp_path):
    folder = tmp_path / "good"
    _tiny().save_pretrained(folder)
    data = (folder / "model.safetensors").read_bytes()
    config = (folder / "config.json").read_bytes()
    fake_hub.add_commit("team/truncated", {"config.json": config, "model.safetensors": data[: len(data) // 2]})
    fake_hub.add_commit("team/garbage", {"config.json": config, "model.safetensors": b"\xff" * 64})
    for repo in ("team/truncated", "team/garbage"):
        with pytest.raises(WeightsError, match="corrupted or truncated") as e:
            GoogLeNet.from_pretrained(repo)
        assert e.value.kind == "corrupted"


def test_wrong_shapes_and_wrong_number_of_classes(fake_hub, tmp_path):
    folder = tmp_path / "ten"
    _tiny(num_classes=10).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(num_classes=4, class_names=["a", "b", "c", "d"])
    fake_hub.add_commit("team/mismatch", {"config.json": json.dumps(config).encode(),
                                          "model.safetensors": (folder / "model.safetensors").read_bytes()})
    with pytest.raises(WeightsError, match="weights have 10 classes but the config says 4") as e:
        GoogLeNet.from_pretrained("team/mismatch")
    assert e.value.kind == "mismatch"
    _publish(fake_hub, tmp_path, "team/ten", _tiny(num_classes=10))
    with pytest.raises(WeightsError, match="has 10 classes, but 1000 were asked for"):
        GoogLeNet.from_pretrained("team/ten", num_classes=1000)
    config = json.loads((folder / "config.json").read_text())
    config["variant"] = "torchvision"  # 3x3 instead of 5x5 kernels
    fake_hub.add_commit("team/layout", {"config.json": json.dumps(config).encode(),
                                        "model.safetensors": (folder / "model.safetensors").read_bytes()})
    with pytest.raises(WeightsError, match="wrong shape"):
        GoogLeNet.from_pretrained("team/layout")


def test_invalid_repo_ids_and_spec_parsing(tmp_path):
    for bad in ("owner/../../etc", "a/b/c", "owner/na me", "just-a-name"):
        with pytest.raises(WeightsError) as e:
            GoogLeNet.from_pretrained(bad)
        assert e.value.kind == "invalid_repo_id"
    assert parse_weights_spec("owner/name@v1") == ("owner/name", "v1")
    assert parse_weights_spec("owner/name") == ("owner/name", None)
    assert parse_weights_spec(str(tmp_path)) == (str(tmp_path), None)


def test_local_folder_is_named_without_its_path(tmp_path):
    folder = tmp_path / "secret-server-place" / "my-run"
    _tiny().save_pretrained(folder)
    model, source = load_weights(str(folder))
    assert source.kind == "local" and source.description == "a local folder" and str(tmp_path) not in str(source)
    (folder / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(WeightsError) as e:
        load_weights(str(folder))
    assert "'my-run'" in str(e.value) and str(tmp_path) not in str(e.value)


def test_local_folder_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(_tiny().config_dict()))
    with pytest.raises(WeightsError, match="has no model.safetensors"):
        GoogLeNet.from_pretrained(tmp_path)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60)


def test_offline_from_cache_with_server_stopped(fake_hub, tmp_path, monkeypatch):
    """Loaded once from the Hub (here, into this session's Hub cache), the weights load again with no Hub at all
    (nothing listens at the endpoint), then with ``HF_HUB_OFFLINE`` on, from the cache, as the same commit."""
    commit = _publish(fake_hub, tmp_path, "team/offline", _tiny(seed=5))
    _, online = load_weights(None, chain_start="team/offline")
    assert (online.kind, online.description) == ("hub", f"team/offline@{commit[:12]}")
    monkeypatch.setattr(constants, "ENDPOINT", dead_endpoint())  # as HF_ENDPOINT is read at import
    for offline in (False, True):  # no server at all, then offline mode as HF_HUB_OFFLINE=1 sets it
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        model, source = load_weights(None, chain_start="team/offline")
        assert (source.kind, source.description) == ("hub", f"team/offline@{commit[:12]}"), offline
        assert torch.equal(model.fc.weight, _tiny(seed=5).fc.weight)


def test_fallback_chain_ends_untrained_when_nothing_is_reachable(tmp_path, monkeypatch, caplog):
    """No Hub (nothing listens at the endpoint), an empty Hub cache, no torchvision checkpoint: the chain ends with
    an untrained model and says so loudly, naming the repo it tried, and never raises."""
    endpoint = dead_endpoint()
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # as HF_ENDPOINT is read at import
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))  # as HF_HOME is read at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model, source = load_weights(None, chain_start="team/somewhere")
    assert source.kind == "untrained" and model.weights_source == "untrained"
    assert "UNTRAINED" in source.warning and "team/somewhere" in source.attempts[0] and endpoint in source.attempts[0]
    assert "UNTRAINED" in caplog.text and "team/somewhere" in caplog.text and "Traceback" not in caplog.text
    assert model.num_classes == 1000 and len(model.class_names) == 1000


def test_torchvision_fallback_reads_cached_checkpoint_safely(tmp_path, tv_reference, monkeypatch):
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / "googlenet-1378be20.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(tv_reference.state_dict(), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1, as huggingface_hub read it at import
    model, source = load_weights(None, chain_start="team/not-cached-anywhere")
    assert source.kind == "torchvision" and source.attempts
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ours, ref = model(x), tv_reference(x)
    assert close(ours, ref)


def test_publish_builds_folder_with_model_card(tmp_path, tv_reference):
    """The folder loads as torchvision's model, and its card is valid front matter carrying torchvision's own
    published accuracy for these weights, and the repo it is published to."""
    import yaml
    from torchvision.models import GoogLeNet_Weights

    from googlenet.publish import build_folder

    folder = build_folder(tv_reference.state_dict(), tmp_path / "out", "team/googlenet")
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "bsd-3-clause" and meta["pipeline_tag"] == "image-classification"
    published = GoogLeNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"top-1": published["acc@1"], "top-5": published["acc@5"]}
    assert 'GoogLeNet.from_pretrained("team/googlenet")' in card and GoogLeNet_Weights.IMAGENET1K_V1.url in card
    model = GoogLeNet.from_pretrained(folder).eval()
    assert model.variant == "torchvision" and model.class_names[1] == "goldfish"
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(x), from_torchvision(tv_reference.state_dict()).eval()(x))  # the same weights


def test_publish_rejects_bad_repo_id(capsys):
    from googlenet.publish import main

    assert main(["--repo-id", "../evil", "--no-push"]) == 2
    assert "is not a Hub repo id" in capsys.readouterr().err
