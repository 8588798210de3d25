"""The app's errors, in one place: its own (``RunBusy``, ``LimitError``), the lower layers' that a visitor may
cause (a bad picture, weights, a run's settings, missing data), and what a visitor is told of any of them.

A visitor sees the specific message of a known problem, never a stack trace or raw exception text (the ui turns
this into Gradio's error toast). Gradio renders that text as HTML and messages may echo what a visitor sent, so
it is escaped here: a visitor's text is never markup."""

from __future__ import annotations

import html
import logging

from googlenet.hub import WeightsError
from googlenet.images import ImageError
from training.config import TrainingError
from training.data import DataError

log = logging.getLogger("inception-explorer")


class RunBusy(Exception):
    """The training slot cannot take this visitor's run now (another run holds the device, or the line is full)."""


class LimitError(ValueError):
    """A fine-tuning setting beyond what this server allows (its settings, or its memory)."""


EXPECTED = (ImageError, WeightsError, TrainingError, DataError, RunBusy, ValueError)


def visitor_message(e: BaseException, where: str = "") -> str:
    """The text a visitor sees for ``e``; an unexpected error is logged with its trace on the server."""
    if isinstance(e, EXPECTED):
        return plain_text(str(e))
    log.error("unexpected error in %s", where or "a handler", exc_info=e)
    return f"Something went wrong ({type(e).__name__}). The server is still running; please try again."


def plain_text(text: str) -> str:
    """``text`` that shows as itself where HTML is rendered (``<a href=...>`` stays text, never a link)."""
    return html.escape(text, quote=False)
