"""Publishing a run: its best checkpoint and its record, pushed to a Hub repo with a token the caller passes
(a visitor's own in the app; ``--push-to-hub`` on the command line uses the owner's login)."""

from __future__ import annotations

from pathlib import Path

from googlenet.hub import WeightsError
from googlenet.publish import push_folder

from .config import TrainingError
from .runfolder import RUN_FILES


def push_run(run_dir: Path, repo_id: str, token: str | None, private: bool = False) -> str:
    """Upload a run's best checkpoint and its record; the token is passed through, never logged or stored.

    ``token=None`` uses huggingface_hub's own lookup and is for the owner's command line only.
    """
    try:
        return push_folder(run_dir, repo_id, token, private=private, allow_patterns=list(RUN_FILES),
                           commit_message="GoogLeNet fine-tuned on CIFAR-10 with Inception Explorer")
    except WeightsError:
        raise
    except Exception as e:
        raise TrainingError(f"Pushing to {repo_id} failed ({type(e).__name__}); check that the token has write "
                            f"access to it. The run itself is safe.") from None
