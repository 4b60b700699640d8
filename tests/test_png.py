"""nnc/png.py: PNGs that Pillow reads back pixel for pixel, in every mode and size, deflated
in one part or several, with Pillow's own metadata chunks."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from nnc import png


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (333, 1), (97, 211), (256, 384)])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_pillow_reads_back_the_pixels(mode, shape, parts):
    rng = np.random.default_rng(sum(shape) + parts)
    smooth = np.cumsum(rng.integers(-3, 4, (*shape, len(mode))), axis=1) % 256
    pixels = smooth.astype(np.uint8)
    data = png.encode(pixels, mode, parts=parts)
    back = Image.open(io.BytesIO(data))
    assert back.mode == mode and back.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(back).reshape(pixels.shape), pixels)


def test_parts_join_into_one_valid_zlib_stream():
    raw = np.random.default_rng(0).integers(0, 40, 1 << 20).astype(np.uint8).tobytes()
    for parts in (1, 2, 4, 7):
        assert zlib.decompress(png.deflated(raw, parts)) == raw


def test_metadata_chunks_are_pillows():
    pixels = np.zeros((40, 60, 3), np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>nnc</x:xmpmeta>", zip=True)
    icc = bytes(range(256)) * 3
    exif = Image.Exif()
    exif[0x010F] = "nnc camera"
    data = png.encode(pixels, "RGB", {"icc_profile": icc, "exif": exif.tobytes(),
                                      "pnginfo": info})
    back = Image.open(io.BytesIO(data))
    back.load()
    assert back.info["icc_profile"] == icc
    assert back.getexif()[0x010F] == "nnc camera"
    assert "nnc" in back.info["XML:com.adobe.xmp"]
    assert png.metadata_chunks("RGB", {}) == b""


def test_refuses_what_it_cannot_write():
    with pytest.raises(ValueError):
        png.encode(np.zeros((4, 4, 3), np.uint16), "RGB")
    with pytest.raises(ValueError):
        png.encode(np.zeros((4, 4, 3), np.uint8), "RGBA")


def test_a_stream_over_a_chunks_limit_is_split_into_idat_chunks(monkeypatch):
    """PNG chunks hold at most 2^31 - 1 bytes: a larger zlib stream is written as several
    IDAT chunks (here with a small limit), which readers join."""
    pixels = np.random.default_rng(1).integers(0, 256, (50, 70, 3)).astype(np.uint8)
    one = png.encode(pixels, "RGB")
    assert one.count(b"IDAT") == 1
    monkeypatch.setattr(png, "MAX_CHUNK", 1000)
    split = png.encode(pixels, "RGB")
    assert split.count(b"IDAT") > 5
    back = Image.open(io.BytesIO(split))
    assert np.array_equal(np.asarray(back), pixels)
