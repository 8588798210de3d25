"""The picture a visitor is working on, kept on the server so that it follows them from page to page.

A picture is stored under a token: when it was stored (hexadecimal seconds) and 192 random bits (``secrets``), so a
token cannot be guessed or derived from the picture, and the same picture stored twice gets two tokens. The visitor's
browser keeps only the token (in Gradio's encrypted browser state), and a hand-off link names it. The token is a
bearer key: whoever holds it sees that picture until it expires. Nothing lists the store, and a path or a string the
store never issued finds nothing.

The pictures are a part of the one disk cache (``DiskCache``), so they live within its byte and file budgets (least
recently used out first), with a share of their own (``MAX_PICTURES``) so that one visitor's uploads cannot push out
everyone's atlas views; an entry expires ``ttl`` seconds after it was stored.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from googlenet.images import ImageError, load_image
from training.diskcache import DiskCache

PART = "pictures"  # the disk cache's part that holds them
MAX_PICTURES = 500  # at most this many are kept (the oldest stored go first)
TOKEN = re.compile(r"^[0-9a-f]{8}-[A-Za-z0-9_-]{32}$")


def is_token(value: object) -> bool:
    """``value`` has a token's form (which says nothing about whether it was issued)."""
    return isinstance(value, str) and bool(TOKEN.match(value))


class PictureStore:
    """Pictures by token, for ``ttl`` seconds each, in ``cache()``'s part ``PART``."""

    def __init__(self, cache: Callable[[], DiskCache], ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.cache, self.ttl, self.clock = cache, ttl, clock

    def keep(self, path: str | Path | None) -> str | None:
        """Store a picture (a file a visitor uploaded) and return its new token, or None when it is not a picture
        this app can read (the page then has nothing to carry over; the endpoint that reads it says why)."""
        if not path:
            return None
        try:
            load_image(path)  # size checks before decoding, then decoded: only pictures are kept
        except ImageError:
            return None
        token = f"{int(self.clock()):08x}-{secrets.token_urlsafe(24)}"
        cache = self.cache()
        cache.put(PART, token, lambda staged: shutil.copyfile(path, staged))
        self._trim(cache)
        return token

    def find(self, token: object) -> Path | None:
        """The picture stored under ``token``, or None: not a token, never issued, expired or evicted."""
        if not is_token(token):
            return None
        age = self.clock() - int(str(token)[:8], 16)
        if age > self.ttl:
            self.cache().discard(PART, str(token))
        if not 0 <= age <= self.ttl:
            return None
        return self.cache().get(PART, str(token))

    def _trim(self, cache: DiskCache) -> None:
        """Beyond ``MAX_PICTURES``, or older than ``ttl``: the oldest stored go (their tokens say when)."""
        folder = cache.folders[PART]
        tokens = sorted(p.name for p in folder.iterdir() if is_token(p.name)) if folder.is_dir() else []
        now = self.clock()
        expired = [t for t in tokens if now - int(t[:8], 16) > self.ttl]
        for token in expired + [t for t in tokens if t not in expired][:max(0, len(tokens) - MAX_PICTURES)]:
            cache.discard(PART, token)
