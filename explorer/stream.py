"""A fine-tuning run's events turned into page updates, as a plain generator (unit-tested with made-up events).

Each update is (summary line, curves figure or ``KEEP``, the log so far, the result or None, drift map figure or
``KEEP``, then the probe's top-3, branch-share chart and Grad-CAM, each or ``KEEP``): figures after every epoch and
at the end, step lines at most four times a second, and a ``TrainingError`` for a failure. The drift map and the
probe's view are read from the run's folder (``drift``, ``probe``), where the run writes them after every epoch, in
whatever process trains it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from explorer.render import ended_line, step_line
from explorer.slot import Done, Epoch, Event, Failed, Log, Step
from training.config import TrainingError
from training.plots import curves_figure, drift_figure

KEEP = object()  # "leave this output as it is" (the ui sends gr.skip())
STEP_UPDATE_SECONDS = 0.25
Update = tuple[Any, ...]
UNCHANGED = (KEEP,) * 4  # the drift map and the probe's three views


def page_updates(events: Iterable[Event], name: str, epochs: int,
                 progress: Callable[[tuple[int, int], str], None] = lambda done, desc: None,
                 clock: Callable[[], float] = time.monotonic,
                 drift: Callable[[], dict[str, Any] | None] = lambda: None,
                 probe: Callable[[], tuple[Any, Any, Any] | None] = lambda: None) -> Iterator[Update]:
    drawn: list[Any] = [None]  # the drift record last drawn: a figure costs ~0.3 s, drawn again only if it changed

    def views(look: bool = True) -> tuple[Any, ...]:
        """The drift map when it changed, and the probe's view once per epoch (``look``)."""
        record, seen = drift(), probe() if look else None
        changed = record is not None and record != drawn[0]
        drawn[0] = record
        return (drift_figure(record) if changed else KEEP,) + (seen if seen is not None else UNCHANGED[1:])

    logs: list[str] = []
    history: list[dict[str, Any]] = []
    summary, last_step = f"Run `{name}` starting…", -1e9
    for event in events:
        if isinstance(event, Log):
            logs.append(event.message)
        elif isinstance(event, Step):
            progress((event.step, event.steps), f"epoch {event.epoch}/{epochs} · loss {event.loss:.3f}")
            summary = step_line(name, event.epoch, epochs, event.step, event.steps, event.loss)
            if clock() - last_step < STEP_UPDATE_SECONDS and event.step != event.steps:
                continue
            last_step = clock()
        elif isinstance(event, Epoch):
            history = event.history
            yield summary, curves_figure(history), "\n".join(logs), None, *views()
            continue
        elif isinstance(event, Failed):
            raise TrainingError(event.message)
        elif isinstance(event, Done):
            yield ended_line(event.summary), curves_figure(history) if history else None, "\n".join(logs), \
                event.summary.api(), *views(look=False)
            return
        yield summary, KEEP, "\n".join(logs), None, *UNCHANGED
