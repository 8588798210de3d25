import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import PHOTOS, close, run_threads

# Probabilities (in [0, 1]) of two pipelines that round differently: measured at most 1.7e-5 apart under the three
# kernel sets (see helpers.RELATIVE); 1e-4 leaves five times that.
PROBABILITY = 1e-4
from googlenet.classify import Classifier
from googlenet.inference import inference_copy
from googlenet.images import MAX_PIXELS, ImageError, load_image


@pytest.fixture(scope="module")
def classifier(converted):
    return Classifier(converted, device="cpu")


def _reference_probs(tv_model, path):
    from torchvision.models import GoogLeNet_Weights

    transform = GoogLeNet_Weights.IMAGENET1K_V1.transforms()
    with torch.no_grad():
        return torch.softmax(tv_model(transform(Image.open(path).convert("RGB")).unsqueeze(0)), 1)[0]


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_agrees_with_torchvision_reference_pipeline(path, tv_reference, classifier):
    ref = _reference_probs(tv_reference, path)
    values, indices = ref.topk(5)
    expected = [(classifier.class_names[i], float(v)) for v, i in zip(values, indices)]
    got = classifier.predict(path, top_k=5)
    assert [label for label, _ in got] == [label for label, _ in expected]
    for (_, p), (_, q) in zip(got, expected):
        assert abs(p - q) <= PROBABILITY
    assert got == sorted(got, key=lambda t: -t[1])


def test_fast_path_agrees_with_plain_float32(converted):
    fast = Classifier(converted, device="cpu", fast=True)
    plain = Classifier(converted, device="cpu", fast=False)
    for path in PHOTOS:
        a, b = fast.predict(path, top_k=3), plain.predict(path, top_k=3)
        assert a[0][0] == b[0][0]
        assert max(abs(x[1] - y[1]) for x, y in zip(a, b)) <= PROBABILITY



def test_inference_copies_equal_the_model_and_leave_it_alone(converted):
    x = torch.randn(2, 3, 224, 224)
    before = {k: v.clone() for k, v in converted.state_dict().items()}
    folded, plain = inference_copy(converted), inference_copy(converted, fold=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) and folded.aux1 is None
    assert not any(p.requires_grad for p in folded.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) and plain.aux1 is not None
    with torch.no_grad():
        reference = converted(x)
        assert close(folded(x), reference)
        assert torch.equal(plain(x), reference)
        plain.conv1.conv.weight.zero_()  # a copy: changing it leaves the model as it was
    assert all(torch.equal(v, before[k]) for k, v in converted.state_dict().items())


def test_inputs_path_bytes_array_and_pil_agree(classifier):
    path = PHOTOS[0]
    expected = classifier.predict(path)
    assert classifier.predict(path.read_bytes()) == expected
    assert classifier.predict(Image.open(path)) == expected
    assert classifier.predict(np.asarray(Image.open(path).convert("RGB"))) == expected


def test_predict_batch_matches_single(classifier):
    batch = classifier.predict_batch(PHOTOS, top_k=3)
    for path, result in zip(PHOTOS, batch):
        single = classifier.predict(path, top_k=3)
        assert [label for label, _ in result] == [label for label, _ in single]
        assert max(abs(a[1] - b[1]) for a, b in zip(result, single)) <= PROBABILITY
    assert classifier.predict_batch([]) == []


def test_the_144_crop_scheme_makes_144_distinct_crops(classifier):
    from googlenet.classify import _crops_144

    wide = Image.open(PHOTOS[0]).convert("RGB").resize((400, 300))  # 3 distinct squares need a non-square picture
    crops = _crops_144(wide, classifier.preprocessing)
    assert len(crops) == 144 and {c.size for c in crops} == {(224, 224)}
    assert len({c.tobytes() for c in crops}) > 100  # scales, squares, positions and mirrors differ


def test_ten_crops_average_to_a_distribution(classifier):
    full = classifier.predict(PHOTOS[0], top_k=1000, crops=10)
    assert len(full) == 1000
    assert abs(sum(p for _, p in full) - 1.0) <= 1000 * 2.0 ** -24  # 1,000 float32 probabilities, each rounded
    assert all(0.0 <= p <= 1.0 for _, p in full)
    single = classifier.predict(PHOTOS[0], top_k=1000, crops=1)
    assert [round(p, 6) for _, p in full] != [round(p, 6) for _, p in single]


def test_invalid_arguments(classifier):
    with pytest.raises(ValueError, match="top_k"):
        classifier.predict(PHOTOS[0], top_k=0)
    with pytest.raises(ValueError, match="crops"):
        classifier.predict(PHOTOS[0], crops=7)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_every_pil_mode_becomes_sensible_rgb(classifier):
    base = Image.open(PHOTOS[0]).convert("RGB").resize((64, 48))
    rgba = base.convert("RGBA")
    rgba.putalpha(0)  # fully transparent -> white
    assert load_image(rgba).getpixel((3, 3)) == (255, 255, 255)
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 0
    assert load_image(p).getpixel((0, 0)) == (255, 255, 255)
    i16 = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16), "I;16")
    assert load_image(i16).getpixel((0, 0)) == (255, 255, 255)
    f = Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), "F")
    assert load_image(f).getpixel((0, 0)) == (128, 128, 128)
    i32 = Image.fromarray(np.full((8, 8), 40000, dtype=np.int32), "I")
    assert load_image(i32).getpixel((0, 0))[0] == round(40000 / 257)
    modes = {
        "L": base.convert("L"), "LA": base.convert("LA"), "P": base.convert("P"), "RGBA": base.convert("RGBA"),
        "CMYK": base.convert("CMYK"), "I;16": base.convert("L").convert("I;16"), "I": base.convert("I"),
        "F": base.convert("F"), "1": base.convert("1"),
    }
    for mode, img in modes.items():
        rgb = load_image(img)
        assert rgb.mode == "RGB" and rgb.size == base.size, mode
        assert len(classifier.predict(img)) == 5, mode
    cmyk_jpeg = _encode(base.convert("CMYK"), "JPEG")
    assert load_image(cmyk_jpeg).mode == "RGB"


def test_float_pictures_scale_to_8_bits_in_little_memory():
    import tracemalloc

    ramp = np.linspace(-1000.0, 3000.0, 2000 * 1000, dtype=np.float32).reshape(1000, 2000)  # 2 megapixels
    ramp[0, :3] = [np.nan, np.inf, -np.inf]
    picture = Image.fromarray(ramp, "F")
    tracemalloc.start()
    try:
        rgb = load_image(picture)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    values = np.asarray(rgb)[:, :, 0]
    assert values[1, 0] == 0 and values[-1, -1] == 255 and abs(int(values[500, 1000]) - 128) <= 1  # lo..hi -> 0..255
    assert list(values[0, :3]) == [0, 255, 0]  # NaN black, infinities clipped
    assert peak < 12 * ramp.size, f"{peak / ramp.size:.1f} bytes a pixel"  # the float64 version: 32


def test_exif_orientation_is_applied():
    base = Image.open(PHOTOS[0]).convert("RGB")
    stored = base.transpose(Image.Transpose.ROTATE_90)  # as a camera would store it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    upright = load_image(_encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert upright.size == base.size
    diff = np.abs(np.asarray(upright, float) - np.asarray(base, float)).mean()
    assert diff < 8


def test_animated_image_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    img = load_image(data)
    r, g, b = img.getpixel((5, 5))
    assert r > 200 and b < 50


# PIL warns on opening an image over its limit; load_image's own check then refuses it, which is what is tested.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    from PIL import ImageFile

    side = int(MAX_PIXELS ** 0.5) + 100
    bomb = _encode(Image.new("1", (side, side)), "PNG")
    assert len(bomb) < 2_000_000

    def must_not_decode(self, *args, **kwargs):
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    with pytest.raises(ImageError, match="megapixels|too large"):
        load_image(bomb)


@pytest.mark.parametrize("payload,match", [
    (b"", "empty"), (b"this is not an image", "not an image"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "damaged|not an image"),
])
def test_bad_bytes_are_clear_errors(payload, match):
    with pytest.raises(ImageError, match=match):
        load_image(payload)


def test_truncated_jpeg_is_a_clear_error():
    data = PHOTOS[0].read_bytes()
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(data[: len(data) // 3])


def test_concurrent_predictions_equal_sequential(classifier):
    expected = {p: classifier.predict(p) for p in PHOTOS}
    results: dict[tuple[int, int], list] = {}
    errors: list[BaseException] = []

    def work(tid: int) -> None:
        try:
            for i, p in enumerate(PHOTOS * 2):
                results[(tid, i)] = (p, classifier.predict(p))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    run_threads(work, 4)
    assert not errors
    assert len(results) == 4 * 2 * len(PHOTOS)
    for p, got in results.values():
        assert got == expected[p]
