"""Publishing a run: its best checkpoint and its record, pushed to a Hub repo with a token the caller passes
(a visitor's own in the app; ``--push-to-hub`` on the command line uses the owner's login)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from googlenet.hub import WeightsError
from googlenet.publish import push_folder

from .atomic import atomic_write
from .config import TrainingError
from .runfolder import RUN_FILES, RunFolder

CARD = "README.md"


def dataset_words(data: dict[str, Any] | None) -> tuple[str, str | None]:
    """(what a run trained on, in words; the Hub dataset id for a card's metadata, or None)."""
    data = data or {}
    name = data.get("name") or "CIFAR-10"
    if data.get("dataset") == "cifar10" or not data:
        source = data.get("from", "")
        return "CIFAR-10" + (f" (`{source}` on the Hub)" if "/" in source else ""), \
            source if "/" in source else "cifar10"
    if data.get("revision"):
        return f"the Hub dataset `{data['dataset']}` at revision `{data['revision']}`", data["dataset"]
    return f"the visitor's own pictures ({name})", None


def model_card(run_dir: Path) -> str:
    """The pushed run's card: what it is, what it trained on (the dataset and its revision), its classes and
    results, in Markdown with the Hub's metadata."""
    folder = RunFolder(run_dir)
    info = folder.info() or {}
    words, hub_id = dataset_words(info.get("data"))
    classes = json.loads((Path(run_dir) / "config.json").read_text()).get("class_names") or []
    meta = ["---", "library_name: pytorch", "tags:", "- image-classification", "- googlenet", "- inception-explorer"]
    if hub_id:
        meta += ["datasets:", f"- {hub_id}"]
    test = info.get("test_accuracy")
    lines = [*meta, "---", "", f"# GoogLeNet fine-tuned on {words}", "",
             f"Trained with Inception Explorer's `{info.get('recipe', 'finetune')}` recipe "
             f"({info.get('epochs_done', '?')} epochs); best validation accuracy "
             f"{100 * (info.get('best_val_accuracy') or 0):.1f}%"
             + (f", test accuracy {100 * test:.1f}%." if test is not None else "."), "",
             f"Classes ({len(classes)}): " + ", ".join(f"`{str(c).replace('`', chr(39))}`" for c in classes[:100]),
             "",
             "Load it with `GoogLeNet.from_pretrained(REPO)` from Inception Explorer's `googlenet` package. "
             "`run.json` records the settings, the dataset and the starting weights."]
    return "\n".join(lines) + "\n"


def push_run(run_dir: Path, repo_id: str, token: str | None, private: bool = False) -> str:
    """Upload a run's best checkpoint, its record and its model card; the token is passed through, never logged
    or stored.

    ``token=None`` uses huggingface_hub's own lookup and is for the owner's command line only.
    """
    atomic_write(Path(run_dir) / CARD, model_card(run_dir).encode())
    words = dataset_words((RunFolder(run_dir).info() or {}).get("data"))[0]
    try:
        return push_folder(run_dir, repo_id, token, private=private, allow_patterns=[*RUN_FILES, CARD],
                           commit_message=f"GoogLeNet fine-tuned on {words} with Inception Explorer")
    except WeightsError:
        raise
    except Exception as e:
        raise TrainingError(f"Pushing to {repo_id} failed ({type(e).__name__}); check that the token has write "
                            f"access to it. The run itself is safe.") from None
