"""Threads the app's expensive work runs in: at a lower scheduling priority, so classification keeps its share of
a CPU server; with progress streamed back as it happens; and with identical requests in flight computed once.

* ``streamed(work)``: ``work(emit)`` in a thread of its own; a generator of what it emits, which then returns its
  result (or raises its exception in the caller's thread). A generator crosses a process boundary (ZeroGPU's
  worker) where a callback cannot, and closing it tells the work to stop (``on_close``) and waits for it.
* ``in_background(fn, ...)``: the same for work with nothing to stream: its result, or its exception.
* ``KeyedLock``: the first of identical requests computes and fills the cache (an atlas view, a run's report);
  the others, waiting behind it, read what it saved.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Generator, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from explorer.profile import current

T = TypeVar("T")
_END = object()


def lower_priority() -> None:
    """Lower this thread's scheduling priority (Linux; elsewhere nothing to do). The threads it starts (torch's
    OpenMP team) inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), current().training_niceness)
    except (AttributeError, OSError):
        pass


def streamed(work: Callable[[Callable[[Any], None]], T], name: str = "background job", lower: bool = True,
             on_close: Callable[[], None] | None = None) -> Generator[Any, None, T]:
    """Run ``work(emit)`` in a new thread (at the lower priority unless ``lower`` is False); yield each value it
    emits, then return its result, or raise its exception here. Closing the generator calls ``on_close`` (which
    should make the work stop soon) and waits for the thread."""
    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        if lower:
            lower_priority()
        try:
            outcome["value"] = work(events.put)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e
        finally:
            events.put(_END)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while (event := events.get()) is not _END:
            yield event
    finally:
        if on_close is not None:
            on_close()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def in_background(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a new thread at the lower priority; its result, or its exception, here."""
    stream = streamed(lambda emit: fn(*args, **kwargs), name=f"background {getattr(fn, '__name__', 'job')}")
    while True:
        try:
            next(stream)
        except StopIteration as done:
            return done.value


class KeyedLock:
    """Identical requests in flight run one at a time (``with lock(key): ...``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Hashable, list] = {}  # key -> [its lock, how many hold or wait for it]

    @contextmanager
    def __call__(self, key: Hashable) -> Iterator[None]:
        with self._lock:
            entry = self._held.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[key]

    def __contains__(self, key: Hashable) -> bool:
        """Someone holds ``key`` now (a new caller would wait)."""
        return key in self._held
