"""What a visitor is told when something goes wrong: the specific message of a known problem, and never a
stack trace or raw exception text (the ui turns this into Gradio's error toast)."""

from __future__ import annotations

import logging

from explorer.slot import RunBusy
from googlenet.hub import WeightsError
from googlenet.images import ImageError
from training.config import TrainingError
from training.data import DataError

log = logging.getLogger("inception-explorer")
EXPECTED = (ImageError, WeightsError, TrainingError, DataError, RunBusy, ValueError)


def visitor_message(e: BaseException, where: str = "") -> str:
    """The text a visitor sees for ``e``; an unexpected error is logged with its trace on the server."""
    if isinstance(e, EXPECTED):
        return str(e)
    log.error("unexpected error in %s", where or "a handler", exc_info=e)
    return f"Something went wrong ({type(e).__name__}). The server is still running; please try again."
