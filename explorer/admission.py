"""Who a visitor is, and what they may start: fair use of the expensive endpoints.

**Who**: a visitor is their browser (a random id kept in Gradio's browser state, encrypted with a secret kept on
the server's disk, so it survives a restart of the server and a reload of the page), or the session for a script
without a page; and they come from an address. Runs record both only as opaque hashes.

**Fair use** of the expensive endpoints (atlas views, feature maps, report evaluation): each visitor has at most
one job per endpoint running or waiting, each address a few (a script opening many sessions), and all of them
together a bounded waiting room, so no one can fill the queue that everyone else's requests need. Admission
happens when a request is submitted (Gradio's ``validator``), so a refused request never enters the queue; the
job's ticket is given back when the job ends. A ticket whose job never ran (its page closed while it waited)
lapses after ``ttl`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from training.atomic import atomic_write

STORAGE_KEY = "inception-explorer-owner"
_ID = re.compile(r"^[0-9a-f]{32}$")


def opaque(value: str) -> str:
    """What a run records of an owner or an address: a hash, never the id or the address itself."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def client_address(host: str | None, forwarded_for: str | None, trust_forwarded: bool) -> str:
    """The visitor's address: the proxy's ``X-Forwarded-For`` (its first entry) only where a trusted proxy sets
    it (on Spaces); elsewhere anyone could send that header, so the connection's own address."""
    if trust_forwarded and forwarded_for:
        return forwarded_for.split(",")[0].strip()
    return host or "unknown"


class Owners:
    """Browser ids by session (a bounded map: sessions come and go), and the secret that protects the ids."""

    def __init__(self, secret_path: Path, capacity: int = 20_000) -> None:
        self.secret_path = Path(secret_path)
        self.capacity = capacity
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def secret(self) -> str:
        """The browser state's encryption secret: made once, kept on disk (readable by the server only)."""
        try:
            return self.secret_path.read_text().strip()
        except FileNotFoundError:
            atomic_write(self.secret_path, secrets.token_hex(32).encode())
            os.chmod(self.secret_path, 0o600)
            return self.secret_path.read_text().strip()

    def identify(self, session: str | None, browser_id: object) -> str:
        """The browser's id (a new one if it has none or a malformed one), remembered for its session."""
        owner = browser_id if isinstance(browser_id, str) and _ID.match(browser_id) else secrets.token_hex(16)
        if session:
            with self._lock:
                self._sessions[session] = owner
                self._sessions.move_to_end(session)
                while len(self._sessions) > self.capacity:
                    self._sessions.popitem(last=False)
        return owner

    def owner(self, session: str | None) -> str:
        """Who this session is: its browser's id, or the session itself (a script), or "api"."""
        with self._lock:
            return self._sessions.get(session or "", session or "api")


# ----------------------------------------------------------------------------- fair use

WHAT = {"atlas": "channel view", "feature_maps": "Inside Inception request", "report": "run report",
        "checkpoint": "checkpoint download", "drift": "drift map", "grid": "channel grid", "explain": "explanation",
        "explain_groups": "set of group pictures", "accentuate": "accentuation", "circuit": "circuit",
        "dataset": "dataset check"}


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
