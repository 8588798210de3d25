"""The picture a visitor is working on (``explorer.pictures``): kept under a token nobody can guess or derive,
found only by that token, forgotten after its time, and within its budget; and the links that carry it."""

import time

import pytest

from explorer.links import forward, handoff, parse_view
from explorer.pictures import MAX_PICTURES, PART, PictureStore, is_token
from helpers import PHOTOS
from training.diskcache import DiskCache


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    clock = Clock()
    cache = DiskCache({PART: tmp_path / "pictures", "other": tmp_path / "other"}, max_bytes=10 << 20, max_entries=50)
    return PictureStore(lambda: cache, ttl=3600, clock=clock), clock, cache


def test_a_picture_is_found_by_its_token_only(store, tmp_path):
    pictures, _, cache = store
    token = pictures.keep(PHOTOS[0])
    assert is_token(token) and pictures.find(token).read_bytes() == PHOTOS[0].read_bytes()
    again = pictures.keep(PHOTOS[0])
    assert again != token and pictures.find(again) is not None  # the same picture twice: two tokens
    assert len(token.split("-", 1)[1]) * 6 >= 128  # random part (after the time): 32 base64 characters, 192 bits
    never = token[:9] + ("A" if token[9] != "A" else "B") + token[10:]
    for forged in (never, str(pictures.find(token)), "../" + token, token + "/x", "", None, 7, PHOTOS[0].name):
        assert pictures.find(forged) is None, forged
    assert not list((tmp_path / "other").glob("*"))  # nothing else of the cache was touched


def test_only_pictures_are_kept(store, tmp_path):
    pictures, _, _ = store
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    assert pictures.keep(text) is None and pictures.keep(None) is None


def test_a_picture_expires_after_its_time_and_its_file_goes(store, profile_env):
    pictures, clock, cache = store
    pictures.ttl = profile_env(GOOGLENET_PICTURE_SECONDS="60").picture_seconds  # the profile variable sets it
    token = pictures.keep(PHOTOS[1])
    clock.now += 59
    assert pictures.find(token) is not None
    clock.now += 2
    assert pictures.find(token) is None and not cache.path(PART, token).exists()


def test_the_store_keeps_within_its_budget_oldest_out_first(store, tmp_path, monkeypatch):
    from explorer import pictures as module

    pictures, clock, cache = store
    monkeypatch.setattr(module, "MAX_PICTURES", 3)
    tokens = []
    for k in range(5):
        clock.now += 1
        tokens.append(pictures.keep(PHOTOS[k % len(PHOTOS)]))
    assert [pictures.find(t) is not None for t in tokens] == [False, False, True, True, True]
    assert MAX_PICTURES >= 100  # the real share: room for many visitors at once
    small = DiskCache({PART: tmp_path / "small"}, max_bytes=2 * PHOTOS[0].stat().st_size + 1, max_entries=50)
    tight = PictureStore(lambda: small, ttl=3600, clock=clock)
    kept = [tight.keep(PHOTOS[0]) for _ in range(4)]
    assert sum(tight.find(t) is not None for t in kept) <= 2 and tight.find(kept[-1]) is not None  # bytes too


def test_links_carry_the_picture_and_land_on_their_page():
    token = "6b160d35-" + "x" * 32
    link = handoff("inside", token, module="inception4c", branch="3x3", channel=17, model=None)
    assert link == f"?tab=inside&module=inception4c&branch=3x3&channel=17&picture={token}"
    assert handoff("why", "not-a-token") == "?tab=why"  # only a token's form is carried
    assert parse_view({"picture": token})["picture"] == token and "picture" not in parse_view({"picture": "../x"})
    assert forward("/", {"tab": "inside"}) == "inside" and forward("/why", {"tab": "classify"}) == ""
    assert forward("/inside", {"tab": "inside"}) is None and forward("/", {}) is None
    assert forward("/gradio_api/info", {"tab": "why"}) is None and forward("/", {"tab": "nowhere"}) is None
