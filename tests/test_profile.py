"""The server profile: one place for every setting, the only reader of the project's variables besides the
training CLI's own, and the source of the configuration and limits tables of docs/configuration.md."""

import ast
import os

import pytest
from pathlib import Path

from explorer import durations, profile
from explorer.errors import LimitError
from explorer.profile import check_memory
from training import env
from training.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
READERS = {ROOT / "explorer" / "profile.py", ROOT / "training" / "env.py"}
# gpu.py reads SPACES_ZERO_GPU alone, and only it: whether to import ``spaces``, which must come before torch is imported.
EARLY = {ROOT / "explorer" / "gpu.py": {"SPACES_ZERO_GPU"}}


def _sources() -> list[Path]:
    return [ROOT / "app.py", *[p for d in ("ui", "explorer", "googlenet", "training") for p in (ROOT / d).rglob("*.py")]]


def test_only_the_profile_and_the_training_env_read_the_environment():
    """Every package: no other module reads ``os.environ`` (huggingface_hub reads its own ``HF_*`` variables), and
    none names a variable the two readers own."""
    names = {v.name for v in (*profile.VARIABLES, *env.ALIASES, profile.ZERO_GPU, profile.ON_SPACES)} | \
        {a for v in profile.VARIABLES for a in v.aliases} | {"RANK", "WORLD_SIZE", "LOCAL_RANK"}
    assert {"RUNS_DIR", "CIFAR10_DIR", "GOOGLENET_WEIGHTS", "GOOGLENET_MAX_EPOCHS", "SPACES_ZERO_GPU"} <= names
    offenders = []
    for path in _sources():
        if path in READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if path in EARLY and isinstance(node, ast.Attribute) and node.attr == "environ":
                continue  # its one read, of the name below
            if isinstance(node, ast.Constant) and node.value in names - EARLY.get(path, set()):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} names {node.value}")
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} reads the environment")
    assert offenders == []


def test_the_configuration_page_holds_the_profiles_tables():
    docs = "\n".join(line.strip() for line in (ROOT / "docs" / "configuration.md").read_text().splitlines())
    assert profile.configuration_table() in docs, "paste `python -m explorer.profile` into docs/configuration.md"
    assert profile.limits_table() in docs, "paste `python -m explorer.profile` into docs/configuration.md"


def test_each_setting_comes_from_its_variable_or_its_default(profile_env, tmp_path):
    p = profile_env()
    assert p.kind == "cpu" and p.limits == profile.DEVICE_LIMITS["cpu"] and p.max_runs == 5
    assert (p.atlas_steps, p.atlas_size, p.atlas_per_class) == (128, 128, 30)
    p = profile_env(GOOGLENET_MAX_RUNS="3", GOOGLENET_ATLAS_STEPS="8", GOOGLENET_MAX_BATCH_SIZE="0",
                    RUNS_DIR=str(tmp_path / "r"), GOOGLENET_ATLAS_CACHE_ENTRIES="7")
    assert p.max_runs == 3 and p.atlas_steps == 8 and p.limits.batch_size == 128  # 0 is not a limit: the default
    assert p.runs_dir == tmp_path / "r" and p.disk_cache.max_entries == 7  # the old name still works
    assert p.disk_cache.folders["atlas"] == tmp_path / "r" / ".cache" / "atlas"


def test_fine_tune_defaults_are_the_recipe_with_few_overrides():
    recipe = RECIPES["finetune"]
    for kind, (overrides, train_size, test_size) in profile.FINETUNE_DEFAULTS.items():
        assert overrides and all(getattr(recipe, k) != v for k, v in overrides.items()), kind  # no second copy
    p = profile.current()
    assert p.finetune.lr == recipe.lr and p.finetune.epochs == 10 and p.finetune.freeze_backbone


def test_a_zerogpu_run_reserves_its_limit_plus_overhead_without_being_cut():
    limits = profile.DEVICE_LIMITS["zerogpu"]
    p = profile.current()
    zerogpu = type(p)(**{**p.__dict__, "kind": "zerogpu", "limits": limits})
    assert zerogpu.run_gpu_seconds(None) == limits.run_seconds + durations.GPU_OVERHEAD_SECONDS
    assert zerogpu.run_gpu_seconds(None) <= zerogpu.zerogpu_max_seconds
    assert zerogpu.run_gpu_seconds(10_000) == zerogpu.zerogpu_max_seconds  # a longer ask is capped, not trusted


def test_zerogpu_declarations_follow_the_request():
    assert durations.WORKER_START_S < durations.classify_seconds(1) <= durations.classify_seconds(10) <= 10
    assert durations.inside_seconds(False) < durations.inside_seconds(True)
    assert durations.channel_seconds(64, 128) < durations.channel_seconds(128, 128) <= 20  # not 60 s any more
    small, large = durations.run_seconds(500, 1, 32), durations.run_seconds(20_000, 10, 160)
    assert small < large
    longest, limit = 120, profile.DEVICE_LIMITS["zerogpu"].run_seconds
    assert durations.run_limit(500, 1, 32, limit) < durations.run_limit(20_000, 10, 160, limit) <= limit
    assert durations.finetune_seconds(10_000, longest) == longest


def test_the_zerogpu_fine_tune_default_fits_an_anonymous_visitors_day_with_room():
    recipe, train_size, _ = profile.FINETUNE_DEFAULTS["gpu"]
    finetune = RECIPES["finetune"]
    size, epochs = recipe.get("image_size", finetune.image_size), recipe.get("epochs", finetune.epochs)
    limit = durations.run_limit(train_size, epochs, size, profile.DEVICE_LIMITS["zerogpu"].run_seconds)
    run = durations.finetune_seconds(limit, 120)
    quota = durations.DAILY_QUOTA_SECONDS["anonymous"]
    assert run + 5 * durations.classify_seconds(1) + durations.inside_seconds(False) <= quota


def test_every_gpu_function_declares_a_duration_for_its_own_arguments(cifar_dir, tmp_path):
    from explorer import circuits, classify, explain, inside, results, state
    from explorer.atlas import service as atlas
    from helpers import quick_config

    calls = {classify.predict_on_device: ("ImageNet GoogLeNet", "cat.jpg", 5, 10),
             classify.predict_batch_on_device: ("ImageNet GoogLeNet", ["a.jpg", "b.jpg"], 5),
             inside.inspect_on_device: ("ImageNet GoogLeNet", "cat.jpg", "inception4c", "a-run"),
             atlas.channel_on_device: ("ImageNet GoogLeNet", "inception4c", "3x3", 5, None),
             results.report_on_device: ("runs/a-run",),
             atlas.responses_on_device: ("ImageNet GoogLeNet", "cat.jpg", "inception4c", "3x3"),
             atlas.index_events_on_device: ("ImageNet GoogLeNet", "inception4c", "3x3"),
             explain.explain_on_device: ("ImageNet GoogLeNet", "cat.jpg", "inception4d", 6, None),
             explain.group_on_device: ("ImageNet GoogLeNet", "inception4d", [0.5, 0.5]),
             explain.accentuate_on_device: ("ImageNet GoogLeNet", "cat.jpg", "inception4d", "3x3", [1.0]),
             circuits.attribution_on_device: ("ImageNet GoogLeNet", "cat.jpg", "inception4c", "3x3", 5)}
    declared = {fn for module in (classify, inside, results, atlas, explain, circuits) for fn in vars(module).values()
                if hasattr(fn, "gpu_duration")}
    assert declared == set(calls)  # every GPU function of the services, each asked here
    for fn, args in calls.items():
        seconds = fn.gpu_duration(*args)  # spaces calls it with the function's own arguments
        assert isinstance(seconds, int) and 0 < seconds <= 120, fn.__name__
    config = quick_config(cifar_dir, tmp_path / "run", max_seconds=20)
    assert state.SLOT._gpu_train.gpu_duration(config) == 20 + durations.GPU_OVERHEAD_SECONDS


def test_persistent_storage_holds_runs_and_caches_unless_told_otherwise(tmp_path, monkeypatch):
    from training import env

    storage = tmp_path / "data"
    monkeypatch.setattr(env, "SPACES_STORAGE", storage)
    for name in ("GOOGLENET_PERSISTENT_DIR", "RUNS_DIR", "GOOGLENET_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert env.persistent_dir() is None and env.runs_dir() == Path("runs")  # no /data: today's folder
    storage.mkdir()
    assert env.runs_dir() == storage / "runs" and env.cache_folders()["atlas"] == storage / "runs" / ".cache" / "atlas"
    storage.chmod(0o500)
    try:
        if not os.access(storage, os.W_OK):  # root may write anyway
            assert env.persistent_dir() is None
    finally:
        storage.chmod(0o700)
    monkeypatch.setenv("GOOGLENET_PERSISTENT_DIR", str(tmp_path / "mine"))
    assert env.runs_dir() == tmp_path / "mine" / "runs"  # the variable before /data
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "elsewhere"))
    assert env.runs_dir() == tmp_path / "elsewhere"  # and RUNS_DIR before both


def test_the_status_line_says_when_runs_will_not_survive_a_restart(tmp_path, monkeypatch, profile_env):
    from training import env

    monkeypatch.setattr(env, "SPACES_STORAGE", tmp_path / "absent")
    for name in ("GOOGLENET_PERSISTENT_DIR", "RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert "until this Space restarts" in profile_env(SYSTEM="spaces").storage_note
    assert profile_env(SYSTEM="spaces", GOOGLENET_PERSISTENT_DIR=str(tmp_path)).storage_note == ""
    monkeypatch.delenv("SYSTEM")
    monkeypatch.delenv("GOOGLENET_PERSISTENT_DIR")
    assert profile_env().storage_note == ""  # a local disk keeps them


def test_limits_refuse_with_their_name_and_env_overrides(profile_env):
    cpu = profile_env().limits
    with pytest.raises(LimitError, match=r"epochs may be at most 10 on this server \(GOOGLENET_MAX_EPOCHS\)"):
        cpu.check(epochs=1_000_000_000, train_size=100, image_size=32, batch_size=32)
    with pytest.raises(LimitError, match="image size may be at most 128 px"):
        cpu.check(epochs=1, train_size=100, image_size=512, batch_size=32)
    assert profile_env(GOOGLENET_MAX_EPOCHS="500").limits.epochs == 500
    assert profile_env(GOOGLENET_MAX_EPOCHS="nonsense").limits.epochs == 10


def test_memory_estimate_refuses_what_would_not_fit():
    check_memory(64, 32, available=8 << 30)
    with pytest.raises(LimitError, match="needs about .* GiB"):
        check_memory(500, 512, available=16 << 30)  # the 17 GB evaluation of the old code, and more
