"""Who a visitor is, for the runs they start: their browser (a random id kept in Gradio's browser state,
encrypted with a secret kept on the server's disk, so it survives a restart of the server and a reload of the
page), or the session for a script without a page; and where they come from (their address)."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

from training.storage import atomic_write

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
