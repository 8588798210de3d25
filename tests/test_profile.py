"""The server profile: one place for every setting, the only reader of the project's variables besides the
training CLI's own, and the source of the README's configuration and limits tables."""

import ast
from pathlib import Path

from explorer import profile
from training import env
from training.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
READERS = {ROOT / "explorer" / "profile.py", ROOT / "training" / "env.py"}


def _sources() -> list[Path]:
    return [ROOT / "app.py", *[p for d in ("ui", "explorer", "googlenet", "training") for p in (ROOT / d).rglob("*.py")]]


def test_only_the_profile_and_the_training_env_name_the_variables():
    names = {v.name for v in (*profile.VARIABLES, *env.ALIASES)} | {a for v in profile.VARIABLES for a in v.aliases}
    assert {"RUNS_DIR", "CIFAR10_DIR", "GOOGLENET_WEIGHTS", "GOOGLENET_MAX_EPOCHS"} <= names
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if path not in READERS and isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} names {node.value}")
            if path.parent.name in ("explorer", "ui") or path.name == "app.py":
                if path not in READERS and isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} reads the environment")
    assert offenders == []


def test_the_readme_tables_are_the_profiles():
    readme = "\n".join(line.strip() for line in (ROOT / "README.md").read_text().splitlines())  # tables in lists
    assert profile.configuration_table() in readme, "paste `python -m explorer.profile` into the README"
    assert profile.limits_table() in readme, "paste `python -m explorer.profile` into the README"


def test_each_setting_comes_from_its_variable_or_its_default(profile_env, tmp_path):
    p = profile_env()
    assert p.kind == "cpu" and p.limits == profile.DEVICE_LIMITS["cpu"] and p.max_runs == 20
    assert (p.atlas_steps, p.atlas_size, p.atlas_per_class) == (256, 128, 30)
    p = profile_env(GOOGLENET_MAX_RUNS="3", GOOGLENET_ATLAS_STEPS="8", GOOGLENET_MAX_BATCH_SIZE="0",
                    RUNS_DIR=str(tmp_path / "r"), GOOGLENET_ATLAS_CACHE_ENTRIES="7")
    assert p.max_runs == 3 and p.atlas_steps == 8 and p.limits.batch_size == 128  # 0 is not a limit: the default
    assert p.runs_dir == tmp_path / "r" and p.disk_cache.max_entries == 7  # the old name still works
    assert p.disk_cache.folders["atlas"] == tmp_path / "r" / ".cache" / "atlas"


def test_fine_tune_defaults_are_the_recipe_with_few_overrides():
    recipe = RECIPES["finetune"]
    for kind, (overrides, train_size) in profile.FINETUNE_DEFAULTS.items():
        assert overrides and all(getattr(recipe, k) != v for k, v in overrides.items()), kind  # no second copy
    p = profile.current()
    assert p.finetune.lr == recipe.lr and p.finetune.epochs == 10 and p.finetune.freeze_backbone


def test_a_zerogpu_run_reserves_its_limit_plus_overhead_without_being_cut():
    limits = profile.DEVICE_LIMITS["zerogpu"]
    p = profile.current()
    zerogpu = type(p)(**{**p.__dict__, "kind": "zerogpu", "limits": limits})
    assert zerogpu.run_gpu_seconds(None) == limits.run_seconds + profile.GPU_OVERHEAD_SECONDS
    assert zerogpu.run_gpu_seconds(None) <= zerogpu.zerogpu_max_seconds
    assert zerogpu.run_gpu_seconds(10_000) == zerogpu.zerogpu_max_seconds  # a longer ask is capped, not trusted
