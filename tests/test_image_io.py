"""Images as users have them (issue 15, items 8 and 9): orientation, 16-bit, exotic TIFFs,
several frames, Pillow's own limits."""
import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from nnc.errors import InputError
from nnc.image_io import read_image


def _save(im: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :10] = 255                               # a white band on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6                                 # shown rotated 90 degrees clockwise
    img = read_image(_save(Image.fromarray(arr), exif=exif.tobytes()))
    assert img.rgb.shape == (30, 20, 3)              # portrait, as a viewer shows it
    assert img.rgb[:10].mean() > 200 and img.rgb[20:].mean() < 50   # the band is on top


@pytest.mark.parametrize("extra", [None, 256])
def test_16_bit_scale_does_not_depend_on_the_content(extra):
    arr = np.full((8, 8), 255, np.uint16)            # dark in 16 bits: 255 / 65535
    if extra is not None:
        arr[0, 0] = extra
    img = read_image(_save(Image.fromarray(arr)))
    assert img.gray and img.rgb[1:, 1:].max() == 1   # round(255 / 257) = 1, never 255
    full = read_image(_save(Image.fromarray(np.full((8, 8), 65535, np.uint16))))
    assert full.rgb.min() == 255


@pytest.mark.parametrize("arr", [np.full((8, 8), 70000, np.int32),
                                 np.full((8, 8), 0.5, np.float32)])
def test_32_bit_and_float_images_are_refused_not_guessed(arr):
    with pytest.raises(InputError, match="not supported"):
        read_image(_save(Image.fromarray(arr), "TIFF"))


def test_several_frames_are_refused():
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    apng = _save(frames[0], save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="2 frames"):
        read_image(apng)
    tiff = _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="2 frames"):
        read_image(tiff)


def test_our_limit_replaces_pillows(monkeypatch):
    """--max-pixels is the only limit: Pillow's bomb check (89.5 MP by default, made tiny
    here so that a small image stands in for a 9500x9500 one) does not refuse first."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = _save(Image.new("RGB", (50, 50)))          # 2500 pixels > 2 x 100: a "bomb"
    assert read_image(data, max_pixels=10 ** 8).rgb.shape == (50, 50, 3)
    assert Image.MAX_IMAGE_PIXELS == 100             # restored
    with pytest.raises(InputError, match="over the limit"):
        read_image(data, max_pixels=2000)


def test_a_large_text_chunk_is_harmless():
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (2 << 20), zip=True)   # 2 MB of zTXt
    img = read_image(_save(Image.new("RGB", (8, 8), "green"), pnginfo=info))
    assert img.rgb.shape == (8, 8, 3)


def test_decoded_images_are_written_in_the_format_their_name_asks_for(tmp_path):
    from click.testing import CliRunner
    from nnc.cli import main
    src = tmp_path / "a.png"
    src.write_bytes(_save(Image.new("RGB", (40, 24), "orange")))
    runner = CliRunner()
    assert runner.invoke(main, ["compress", "--refine", "0", str(src), str(tmp_path / "a.nnc")]).exit_code == 0
    for name, fmt in (("o.jpg", "JPEG"), ("o.webp", "WEBP"), ("o.tif", "TIFF"), ("o.png", "PNG")):
        r = runner.invoke(main, ["decompress", str(tmp_path / "a.nnc"), str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        assert Image.open(tmp_path / name).format == fmt
    r = runner.invoke(main, ["decompress", str(tmp_path / "a.nnc"), str(tmp_path / "o.xyz")])
    assert r.exit_code != 0
