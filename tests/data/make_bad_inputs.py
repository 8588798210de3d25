"""Generate the corpus of awkward uploads the reliability tests send through the app's endpoints.

    python tests/data/make_bad_inputs.py OUT_DIR

Each entry says whether a visitor should get an answer ("ok") or a clear message ("error"), and a
phrase that message must contain.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_LIMIT = 10 * 1024 * 1024  # one picture's limit (googlenet.images.MAX_FILE_BYTES), checked before decoding

# name -> (expected outcome, phrase the error must contain)
EXPECTED: dict[str, tuple[str, str]] = {
    "not_an_image.jpg": ("error", "not an image format"),
    "truncated.jpg": ("error", "damaged or truncated"),
    "truncated.png": ("error", "damaged or truncated"),
    "empty.png": ("error", "empty"),
    "one_pixel.png": ("ok", ""),
    "bomb.png": ("error", "megapixels"),
    "sixteen_bit.png": ("ok", ""),
    "sixteen_bit_rgb.png": ("ok", ""),
    "cmyk.jpg": ("ok", ""),
    "palette_transparent.png": ("ok", ""),
    "animated.gif": ("ok", ""),
    "exif_rotated.jpg": ("ok", ""),
    "too_large.png": ("error", "too large"),
}


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def make_corpus(out: Path) -> dict[str, tuple[str, str]]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    photo = Image.open(ROOT / "assets" / "cat.jpg").convert("RGB")
    jpeg = (ROOT / "assets" / "cat.jpg").read_bytes()
    png = _save(photo, "PNG")
    (out / "not_an_image.jpg").write_bytes(b"<html>this is a web page, not a photo</html>\n" * 20)
    (out / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (out / "truncated.png").write_bytes(png[: len(png) // 3])
    (out / "empty.png").write_bytes(b"")
    (out / "one_pixel.png").write_bytes(_save(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"))
    (out / "bomb.png").write_bytes(_save(Image.new("1", (20000, 20000)), "PNG"))  # 400 MP in ~50 KB
    gray16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    (out / "sixteen_bit.png").write_bytes(_save(Image.fromarray(gray16), "PNG"))  # mode I;16
    (out / "sixteen_bit_rgb.png").write_bytes(_rgb48_png(np.asarray(photo, dtype=np.uint16) * 257))
    (out / "cmyk.jpg").write_bytes(_save(photo.convert("CMYK"), "JPEG"))
    pal = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    (out / "palette_transparent.png").write_bytes(_save(pal, "PNG", transparency=0))
    frames = [photo.rotate(a) for a in (0, 20, 40)]
    (out / "animated.gif").write_bytes(_save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80))
    exif = Image.Exif()
    exif[0x0112] = 6
    (out / "exif_rotated.jpg").write_bytes(_save(photo.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes()))
    noise = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    big = _save(Image.fromarray(noise), "PNG", compress_level=0)
    assert len(big) > UPLOAD_LIMIT
    (out / "too_large.png").write_bytes(big)
    return EXPECTED


def _rgb48_png(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one), assembled from its chunks."""
    import struct
    import zlib

    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bad-inputs")
    for name, (outcome, _) in make_corpus(target).items():
        print(f"{outcome:5s} {target / name}")
