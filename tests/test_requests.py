"""How the app answers a request, without a server: each wrong argument's message, what a visitor is told of an
error, the text the page shows, batched classification, deep links and clicks on grids, and the example photos'
answers."""

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlparse

import pytest
import torch

from explorer import render
from explorer.caches import ExampleAnswers
from explorer.classify import batch_answers
from explorer.errors import visitor_message
from explorer.links import parse_view, tile_channel, view_query
from explorer.params import as_int
from googlenet.draw import GRID_HEAD, GRID_LABEL, GRID_PAD, GRID_TILE
from helpers import PHOTOS, not_examples
from training.runfolder import RunSummary

@pytest.mark.parametrize("value,message", [
    (None, "epochs is missing"), ("x", "epochs must be a whole number, not 'x'"),
    (2.5, "epochs must be a whole number, not '2.5'"), (float("nan"), "epochs must be a finite number"),
    (0, "epochs must be at least 1"),
])
def test_each_wrong_argument_gets_its_own_message(value, message):
    with pytest.raises(ValueError, match=message):
        as_int(value, "epochs", 1)
    assert as_int("3", "epochs", 1) == 3 and as_int(4.0, "epochs", 1) == 4



def test_a_visitor_is_told_the_problem_as_text_and_never_a_trace():
    assert visitor_message(ValueError("run '<b>x</b>' & co")) == "run '&lt;b&gt;x&lt;/b&gt;' &amp; co"
    hidden = visitor_message(KeyError("/srv/secret/path"))
    assert hidden.startswith("Something went wrong (KeyError)") and "/srv" not in hidden



def test_render_functions_say_what_happened():
    assert render.cell("test_accuracy", 0.4567) == "45.7%" and render.cell("lr", 0.02) == "0.02"
    table = render.compare_table([{"run": "a", "lr": 0.1, "best_val_accuracy": 0.5},
                                  {"run": "b", "lr": None, "best_val_accuracy": 0.25}])
    assert table.splitlines() == ["| run | lr | best_val_accuracy |", "|---|---|---|", "| a | 0.1 | 50.0% |",
                                  "| b |  | 25.0% |"]
    stopped = RunSummary("r", None, "cancelled", None, None, 0, "stopped at the time limit of 600 s")
    assert render.ended_line(stopped) == "Run `r` cancelled: no epoch finished (stopped at the time limit of 600 s)"
    line = render.status_markdown("CPU (2 threads)", "a local folder", None, {"torch": "2"})
    assert line == "**device:** CPU (2 threads) · **weights:** a local folder · torch 2"
    assert "UNTRAINED" in render.status_markdown("CPU", "untrained", "UNTRAINED weights", {})



def test_batched_classification_shares_one_pass_and_answers_the_rest_alone():
    calls = []

    def predict_batch(model, images, top_k):
        calls.append((model, list(images), top_k))
        return [[("cat", 0.9), ("dog", 0.1)] for _ in images], 12.0, "CPU"

    def one(image, model, top_k, thorough):
        if image is None:
            raise ValueError("Please upload an image first.")
        return {"alone": 1.0}, "alone"

    labels, infos = batch_answers(["a.jpg", "b.jpg", "c.jpg", None], ["", "", "other-run", ""], [1, 2, 5, 5],
                                   [False, False, False, False], predict_batch, one)
    assert calls == [("ImageNet GoogLeNet", ["a.jpg", "b.jpg"], 2)]
    assert labels[0] == {"cat": 0.9} and labels[1] == {"cat": 0.9, "dog": 0.1}
    assert infos[0] == "12 ms for a batch of 2 on CPU" and labels[2] == {"alone": 1.0}
    assert labels[3] == {} and infos[3] == "⚠ Please upload an image first."



def test_a_click_on_a_grid_opens_the_channel_shown_there():
    orders = {"3x3": [40, 7, 99, 3]}
    second = (GRID_PAD + GRID_TILE + GRID_PAD + GRID_TILE // 2, GRID_HEAD + GRID_LABEL + GRID_TILE // 2)
    assert tile_channel(orders, "3x3", second) == 7
    assert tile_channel(orders, "5x5", second) is None and tile_channel({}, "3x3", second) is None
    assert tile_channel(orders, "3x3", (1, 1)) is None  # the title



def test_example_answers_are_computed_once_per_photo_model_and_options(tmp_path):
    answers, calls = ExampleAnswers(PHOTOS[:2], capacity=2), []

    def compute(tag: str):
        def run() -> str:
            calls.append(tag)
            time.sleep(0.05)
            return tag
        return run

    photo = answers.photo(str(PHOTOS[0]))
    assert photo is not None and answers.photo(str(PHOTOS[2])) is None  # not one of these examples
    assert answers.photo(str(not_examples(tmp_path)[0])) is None and answers.photo(str(tmp_path / "gone")) is None
    with ThreadPoolExecutor(3) as pool:  # three first clicks at once: one computation
        got = list(pool.map(lambda _: answers.answer((photo, "model-a", 5), compute("a")), range(3)))
    assert calls == ["a"] and sorted(c for _, c in got) == [False, True, True]
    assert answers.answer((photo, "model-b", 5), compute("b")) == ("b", False)  # other weights: computed
    assert answers.answer(None, compute("x")) == ("x", False) and answers.answer(None, compute("x"))[1] is False
    answers.answer((photo, "model-c", 5), compute("c"))  # over capacity: the least recently used goes
    assert answers.answer((photo, "model-a", 5), compute("a2")) == ("a2", False)


def test_a_view_url_round_trips_and_junk_is_ignored():
    query = view_query("my-run", "inception4c", "3x3", 17)
    assert query == "?tab=inside&model=my-run&module=inception4c&branch=3x3&channel=17"
    assert parse_view(dict(parse_qsl(urlparse(query).query))) == {
        "tab": "inside", "model": "my-run", "module": "inception4c", "branch": "3x3", "channel": 17}
    assert "model" not in view_query("ImageNet GoogLeNet", "inception4c", "3x3", 1)
    assert parse_view({"tab": "evil", "module": "<script>", "branch": "9x9", "channel": "-3"}) == {}
    assert parse_view({"channel": "99999999"}) == {}
    assert parse_view({"model": '<a href="https://evil.example/x">sign in</a>'}) == {}  # only a model's name


def test_runs_that_share_a_frozen_backbone_never_share_an_answer():
    """Two head-only runs from one start have one backbone fingerprint; their answers differ by head and classes."""
    from explorer.caches import answer_fingerprint, fingerprint
    from googlenet import GoogLeNet

    torch.manual_seed(0)
    a = GoogLeNet(num_classes=3, aux_logits=False, class_names=["x", "y", "z"]).eval()
    b = GoogLeNet(num_classes=3, aux_logits=False, class_names=["x", "y", "z"]).eval()
    b.load_state_dict(a.state_dict())
    assert fingerprint(a) == fingerprint(b) and answer_fingerprint(a) == answer_fingerprint(b)
    d = GoogLeNet(num_classes=3, aux_logits=False, class_names=["x", "y", "z"]).eval()
    d.load_state_dict(a.state_dict())
    with torch.no_grad():
        d.classifier_heads()[0].weight.add_(0.01)  # another head on the same backbone (hashed once per model object)
    assert fingerprint(a) == fingerprint(d) and answer_fingerprint(a) != answer_fingerprint(d)
    c = GoogLeNet(num_classes=3, aux_logits=False, class_names=["p", "q", "r"]).eval()
    c.load_state_dict(a.state_dict())  # the same weights, other class names
    assert answer_fingerprint(c) != answer_fingerprint(a)
