"""``KeyedLock``: identical requests in flight run one at a time, so the first computes and fills the cache
(an atlas view, a run's report) and the others, waiting behind it, read what it saved."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class KeyedLock:
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
