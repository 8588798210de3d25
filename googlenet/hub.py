"""Loading weights from the Hugging Face Hub or a local folder: safely, and failing clearly.

``locate`` finds ``config.json`` + ``model.safetensors`` (a folder, or a repo through the Hub cache) and nothing
else; ``read_config``, ``load_state_dict_file`` and ``check_state_dict`` read and check them. No pickle is ever
opened, and every failure becomes a ``WeightsError`` that names the repository, file and revision and says what to
do. ``GoogLeNet.from_pretrained`` puts these together; the fallback chain lives in ``weights.py``.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import torch
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

logger = logging.getLogger(__name__)

CONFIG_NAME = constants.CONFIG_NAME  # config.json
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE  # model.safetensors
NETWORK_TIMEOUT_S = 5.0


class WeightsError(Exception):
    """A weights problem explained for a person; ``kind`` lets code tell the cases apart."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_weights_spec(spec: str) -> tuple[str, str | None]:
    """``owner/name@revision`` -> (``owner/name``, ``revision``); a local directory passes through."""
    if os.path.isdir(spec) or "@" not in spec:
        return spec, None
    repo, _, revision = spec.rpartition("@")
    return repo, revision or None


def check_repo_id(repo_id: str) -> str:
    """The one repo-id rule, for ids to load and ids a visitor pushes to: OWNER/NAME as the Hub accepts it."""
    try:
        if not isinstance(repo_id, str) or repo_id.count("/") != 1:
            raise HFValidationError("not OWNER/NAME")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise WeightsError("invalid_repo_id", f"'{str(repo_id)[:96]}' is not a Hub repo id: use OWNER/NAME (letters, "
                                              "digits, '-', '_', '.').") from None
    return repo_id


def offline() -> bool:
    """huggingface_hub's offline mode (``HF_HUB_OFFLINE``), as it reads it itself: once, when it is imported."""
    return constants.is_offline_mode()


def hub_reachable(endpoint: str | None = None, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """One bounded probe, so an unreachable Hub costs seconds, not huggingface_hub's minute of retries."""
    endpoint = endpoint or constants.ENDPOINT
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint.rstrip("/") + "/api/whoami-v2", method="HEAD"),
                               timeout=timeout)
    except urllib.error.HTTPError:
        return True  # it answered
    except Exception:
        return False
    return True


def download(repo_id: str, filename: str, revision: str | None, **kwargs: Any) -> str:
    """One file of a repo through the Hub cache (``hf_hub_download``), every failure a ``WeightsError``."""
    where = f"'{filename}' of {repo_id}@{revision or 'main'}"
    endpoint = constants.ENDPOINT
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, revision=revision,
                               etag_timeout=NETWORK_TIMEOUT_S, **kwargs)
    except GatedRepoError:
        raise WeightsError("repo_not_found", f"Repository {repo_id} is gated: accept its terms on the Hub and set "
                                             "HF_TOKEN (or run `hf auth login`).") from None
    except RepositoryNotFoundError:
        raise WeightsError("repo_not_found", f"Repository {repo_id} was not found on {endpoint} (or it is private: set "
                                             "HF_TOKEN). Check the repo id in GOOGLENET_WEIGHTS.") from None
    except RevisionNotFoundError:
        raise WeightsError("revision_not_found", f"Revision '{revision}' does not exist in {repo_id}. Use a branch, tag "
                                                 "or commit that exists, or drop '@revision' for main.") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise WeightsError("unreachable", f"Could not download {where}: the Hub ({endpoint}) is unreachable or offline "
                                          "mode is on, and the file is not in the local Hub cache. Connect once to "
                                          "cache it.") from None
    except EntryNotFoundError:
        raise WeightsError("file_not_found", f"File {where} does not exist. The repo must hold {CONFIG_NAME} and "
                                             f"{WEIGHTS_NAME} (made with save_pretrained).") from None
    except HfHubHTTPError as e:
        raise WeightsError("http_error", f"The Hub answered an error for {where}: {str(e).splitlines()[0]}") from None
    except (TimeoutError, OSError) as e:  # httpx timeouts and connection errors derive from these or are wrapped
        logger.warning("weights: downloading %s failed: %r", where, e)
        raise WeightsError("unreachable", f"Could not download {where} ({type(e).__name__}).") from None
    except Exception as e:
        if "Timeout" in type(e).__name__ or "Connect" in type(e).__name__:
            raise WeightsError("unreachable", f"Timed out downloading {where} from {endpoint}.") from None
        raise


def commit_of(path: str) -> str | None:
    """The commit a file of the Hub cache belongs to (cached files live at .../snapshots/COMMIT/FILENAME)."""
    parent = Path(path).parent
    return parent.name if parent.parent.name == "snapshots" else None


def read_config(path: str, where: str) -> dict[str, Any]:
    """The config as a JSON object, or ``WeightsError`` ("corrupted")."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        logger.warning("weights: %s of %s: %r", CONFIG_NAME, where, e)
        raise WeightsError("corrupted", f"{CONFIG_NAME} of {where} is not valid JSON ({type(e).__name__}).") from None
    if not isinstance(config, dict):
        raise WeightsError("corrupted", f"{CONFIG_NAME} of {where} must be a JSON object.")
    return config


def load_state_dict_file(path: str, where: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never a pickle), turning any damage into a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        logger.warning("weights: %s of %s: %r", WEIGHTS_NAME, where, e)
        raise WeightsError("corrupted", f"{WEIGHTS_NAME} of {where} is corrupted or truncated. Delete it from "
                                        "the cache (or re-save it) and download again.") from None


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse (``WeightsError``, "mismatch") weights that do not fit the model the config describes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if "fc.weight" in state and state["fc.weight"].shape[0] != expected["fc.weight"].shape[0]:
        raise WeightsError("mismatch", f"{where}: the weights have {state['fc.weight'].shape[0]} classes but the "
                                       f"config says {expected['fc.weight'].shape[0]}.")
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of wrong shape (e.g. {wrong[0]})")
        raise WeightsError("mismatch", f"{where}: weights do not fit the config: " + "; ".join(parts) + ".")


@dataclass(frozen=True)
class WeightFiles:
    """Where a model's two files are, and how to name them to a person (never a server path)."""

    config: str
    weights: str
    where: str  # for messages: "the local folder 'NAME'" or "OWNER/NAME@revision"
    source: str  # what the status line shows: "a local folder" or "OWNER/NAME@commit"


def locate(model_id: str, revision: str | None = None, **download_kwargs: Any) -> WeightFiles:
    """``config.json`` and ``model.safetensors`` of a local ``save_pretrained`` folder, or of a Hub repo through the
    Hub cache (after one bounded probe: an unreachable Hub means the cache alone); ``WeightsError`` otherwise."""
    if os.path.isdir(model_id):
        where = f"the local folder '{Path(model_id).name}'"  # never the absolute path: visitors may read it
        config_path, weights_path = os.path.join(model_id, CONFIG_NAME), os.path.join(model_id, WEIGHTS_NAME)
        for p in (config_path, weights_path):
            if not os.path.isfile(p):
                raise WeightsError("file_not_found", f"{where} has no {os.path.basename(p)}; it must hold "
                                                     f"{CONFIG_NAME} and {WEIGHTS_NAME} (made with save_pretrained).")
        return WeightFiles(config_path, weights_path, where, "a local folder")
    repo_id = check_repo_id(model_id)  # not a local folder here: a Hub repo
    if not offline() and not download_kwargs.get("local_files_only") and not hub_reachable():
        logger.warning("weights: the Hub is unreachable; looking for %s in the local cache only", repo_id)
        download_kwargs["local_files_only"] = True
    config_path = download(repo_id, CONFIG_NAME, revision, **download_kwargs)
    weights_path = download(repo_id, WEIGHTS_NAME, revision, **download_kwargs)
    commit = commit_of(weights_path)
    return WeightFiles(config_path, weights_path, f"{repo_id}@{revision or 'main'}",
                       f"{repo_id}@{commit[:12] if commit else (revision or 'main')}")
