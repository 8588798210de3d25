"""What the push endpoint computes: a finished run pushed to the Hugging Face Hub with the visitor's own token
(typed in, or their OAuth token on a Space with sign-in), never the server's."""

from __future__ import annotations

from typing import Any

from huggingface_hub import HfApi

from explorer.params import as_bool, as_text
from explorer.runs import usable_run
from googlenet.hub import check_repo_id
from training.publish import push_run


def push_to_hub(run: Any, repo_id: Any, token: Any, private: Any = False) -> str:
    """Push a finished run with the visitor's own token (typed in): never the server's."""
    run, repo_id, token = as_text(run, "run"), as_text(repo_id, "repo_id"), as_text(token, "token")
    if not token:
        raise ValueError("Enter your own Hugging Face token (with write access). This server never pushes with a "
                         "token of its own.")
    return _push(run, repo_id, token, as_bool(private, "private"))


def push_signed_in(run: Any, name: Any, private: Any, token: str | None) -> str:
    """Push a finished run to ``NAME`` under the signed-in visitor's own account, with their OAuth token."""
    run, name = as_text(run, "run"), as_text(name, "name")
    if not token:
        raise ValueError("Sign in with Hugging Face first (the button above): the run is pushed to your account.")
    if not name or "/" in name:
        raise ValueError("Give the new repo a name (no '/': it is created under your account).")
    try:
        user = HfApi(token=token).whoami()["name"]
    except Exception:  # noqa: BLE001 - the Hub's answer is not the visitor's business; the cause is
        raise ValueError("Hugging Face did not accept your sign-in; sign in again and retry.") from None
    return _push(run, f"{user}/{name}", token, as_bool(private, "private"))


def _push(run: str, repo_id: str, token: str, private: bool) -> str:
    if not run:
        raise ValueError("Choose a finished run first.")
    check_repo_id(repo_id)  # before the run is looked up: a bad id is the first thing to say
    url = push_run(usable_run(run).path, repo_id, token, private=private)
    return f"Pushed `{run}` to {repo_id} ({'private' if private else 'public'} repo): {url}"
