"""Expensive work must not take classification's share of a CPU server: training, atlas views, feature maps
and report evaluations run in threads of their own at a lower scheduling priority, which the threads they
start (torch's OpenMP team) inherit; classification keeps the normal priority of Gradio's workers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from explorer.profile import current

T = TypeVar("T")


def lower_priority() -> None:
    """Lower this thread's scheduling priority (Linux; elsewhere nothing to do)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), current().training_niceness)
    except (AttributeError, OSError):
        pass


def in_background(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a new thread at the lower priority; its result, or its exception, here."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        lower_priority()
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=work, name=f"background {getattr(fn, '__name__', 'job')}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
