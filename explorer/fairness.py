"""Fair use of the expensive endpoints (atlas views, feature maps, report evaluation): each visitor has at most
one job per endpoint running or waiting, each address a few (a script opening many sessions), and all of them
together a bounded waiting room, so no one can fill the queue that everyone else's requests need.

Admission happens when a request is submitted (Gradio's ``validator``), so a refused request never enters the
queue; the job's ticket is given back when the job ends. A ticket whose job never ran (its page closed while
it waited) lapses after ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


WHAT = {"atlas": "channel view", "feature_maps": "Inside Inception request", "report": "run report",
        "checkpoint": "checkpoint download", "drift": "drift map", "grid": "channel grid"}


@dataclass
class Ticket:
    address: str
    since: float


class FairUse:
    def __init__(self, per_address: int = 2, room: int = 8, ttl: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address, self.room, self.ttl, self.clock = per_address, room, ttl, clock
        self._tickets: dict[tuple[str, str], Ticket] = {}  # (endpoint, visitor) -> ticket
        self._lock = threading.Lock()

    def _lapse(self) -> None:
        now = self.clock()
        for key in [k for k, t in self._tickets.items() if now - t.since > self.ttl]:
            del self._tickets[key]

    def admit(self, endpoint: str, visitor: str, address: str) -> str | None:
        """Take a ticket for this job, or say (in a sentence for the visitor) why not and when to retry."""
        with self._lock:
            self._lapse()
            what = WHAT.get(endpoint, endpoint)
            if (endpoint, visitor) in self._tickets:
                return (f"You already have a {what} running or waiting on this server; one at a time per visitor. "
                        "Please try again when it has finished.")
            if sum(1 for (e, _), t in self._tickets.items() if e == endpoint and t.address == address) \
                    >= self.per_address:
                return (f"Your address already has {self.per_address} of these ({what}) running or waiting on this "
                        "server. Please try again when one has finished.")
            if len(self._tickets) >= self.room:
                return (f"The server is busy with {len(self._tickets)} long requests from other visitors. Please try "
                        "again in a minute.")
            self._tickets[(endpoint, visitor)] = Ticket(address, self.clock())
            return None

    def release(self, endpoint: str, visitor: str) -> None:
        with self._lock:
            self._tickets.pop((endpoint, visitor), None)

    @contextmanager
    def job(self, endpoint: str, visitor: str) -> Iterator[None]:
        """Run an admitted job; its ticket is given back however it ends."""
        try:
            yield
        finally:
            self.release(endpoint, visitor)

    def __len__(self) -> int:
        """Jobs running or waiting now."""
        with self._lock:
            self._lapse()
            return len(self._tickets)
