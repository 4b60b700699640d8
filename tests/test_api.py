"""nnc as a library: the Python API, the Pillow plugin, colour profiles, and the messages a
user gets for a missing device or model."""
import io
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

import nnc
from nnc import container
from nnc.cli import main
from nnc.errors import FormatError, InputError
from conftest import png_bytes, smooth_image

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def small_nnc(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "x.nnc"
    path.write_bytes(nnc.compress(smooth_image(40, 56), quality=0.3))
    return path


def test_decompress_takes_bytes_paths_and_file_objects(small_nnc):
    by_bytes = nnc.decompress(small_nnc.read_bytes())
    for source in (str(small_nnc), small_nnc, open(small_nnc, "rb"),
                   io.BytesIO(small_nnc.read_bytes()), bytearray(small_nnc.read_bytes())):
        im = nnc.decompress(source)
        assert im.size == (56, 40)
        assert np.array_equal(np.asarray(im), np.asarray(by_bytes))
    with pytest.raises(InputError, match="no such file"):
        nnc.decompress(str(small_nnc) + ".missing")
    with pytest.raises(TypeError, match="text mode"):
        nnc.decompress(open(small_nnc, encoding="latin-1"))
    with pytest.raises(TypeError, match="expected a path"):
        nnc.decompress(42)
    with pytest.raises(FormatError, match="wrong magic"):
        nnc.decompress(png_bytes(smooth_image(8, 8)))


def test_compress_takes_paths_file_objects_and_checks_its_arguments(tmp_path):
    arr = smooth_image(40, 56)
    p = tmp_path / "in.png"
    p.write_bytes(png_bytes(arr))
    a = nnc.compress(arr, quality=0.3)
    assert nnc.compress(str(p), quality=0.3) == a
    assert nnc.compress(open(p, "rb"), quality=0.3) == a
    assert nnc.compress(Image.open(p), quality=0.3) == a
    with pytest.raises(ValueError, match="not both"):
        nnc.compress(arr, quality=0.3, bpp=1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nnc.compress(arr, quality=3)


def test_pillow_plugin_opens_loads_and_saves(small_nnc, tmp_path):
    im = Image.open(small_nnc)
    assert (im.format, im.size, im.mode) == ("NNC", (56, 40), "RGB")
    im.load()
    assert np.array_equal(np.asarray(im), np.asarray(nnc.decompress(small_nnc)))
    # save: options as keyword arguments, the format chosen by the extension
    src = Image.fromarray(smooth_image(40, 56))
    src.save(tmp_path / "y.nnc", quality=0.3)
    assert (tmp_path / "y.nnc").read_bytes() == nnc.compress(smooth_image(40, 56), quality=0.3)
    assert Image.open(tmp_path / "y.nnc").convert("RGB").size == (56, 40)
    buf = io.BytesIO()
    src.save(buf, format="NNC", quality=0.1)
    assert buf.getvalue()[:8] == container.MAGIC
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        src.save(tmp_path / "z.nnc", quality=80)       # JPEG's scale is not nnc's
    assert Image.registered_extensions()[".nnc"] == "NNC"


def test_the_plugin_is_registered_on_import_in_a_fresh_process(small_nnc):
    code = ("import nnc; from PIL import Image; im = Image.open(%r); im.load(); "
            "print(im.format, im.size, im.mode)" % str(small_nnc))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "NNC (56, 40) RGB"


def test_an_icc_profile_travels_in_its_own_section(tmp_path):
    im = Image.fromarray(smooth_image(40, 56))
    data = nnc.compress(png_bytes(im, icc_profile=SRGB), quality=0.3)
    tags = [t for t, *_ in container.iter_sections(data)]
    assert tags == ["HEAD", "Z2SA", "Z2IX", "Z1SA", "Z1IX", "iCCP", "END "]
    out = nnc.decompress(data)
    assert out.info["icc_profile"] == SRGB
    # the pixels do not depend on the profile
    assert np.array_equal(np.asarray(out), np.asarray(nnc.decompress(
        nnc.compress(im, quality=0.3))))
    # and every output format that holds a profile gets it back
    src = tmp_path / "p.nnc"
    src.write_bytes(data)
    for ext in (".png", ".jpg", ".webp", ".tif"):
        dst = tmp_path / f"p{ext}"
        from click.testing import CliRunner
        r = CliRunner().invoke(main, ["decompress", str(src), str(dst)])
        assert r.exit_code == 0, r.output
        assert Image.open(dst).info.get("icc_profile") == SRGB, ext


def test_readers_that_do_not_know_iccp_skip_it(monkeypatch):
    data = nnc.compress(png_bytes(smooth_image(24, 24), icc_profile=SRGB), quality=0.3)
    want = np.asarray(nnc.decompress(data))
    monkeypatch.setattr(container, "KNOWN_SECTIONS",
                        tuple(t for t in container.KNOWN_SECTIONS if t != "iCCP"))
    old = nnc.decompress(data)      # an ancillary section: skipped, the pixels unchanged
    assert "icc_profile" not in old.info and np.array_equal(np.asarray(old), want)


def _with_iccp(data: bytes, payload: bytes) -> bytes:
    sections = [(t.encode(), p) for t, p, *_ in container.iter_sections(data)
                if t not in ("iCCP", "END ")]
    return container.frame(sections + [(b"iCCP", payload), (b"END ", b"")])


def test_a_bad_profile_section_is_refused():
    data = nnc.compress(smooth_image(24, 24), quality=0.3)
    with pytest.raises(FormatError, match="iCCP"):
        nnc.decompress(_with_iccp(data, b"not zlib"))
    bomb = zlib.compress(b"\0" * ((16 << 20) + 1), 9)      # 16 KiB inflating past 16 MiB
    with pytest.raises(FormatError, match="over 16 MiB"):
        nnc.decompress(_with_iccp(data, bomb))
    whole = zlib.compress(SRGB)
    for bad in (b"", whole[:-4], whole[:10], whole + b"junk", zlib.compress(b"")):
        with pytest.raises(FormatError, match="iCCP"):         # cut off, trailing, empty
            nnc.decompress(_with_iccp(data, bad))
    assert nnc.decompress(_with_iccp(data, whole)).info["icc_profile"] == SRGB


def test_a_profile_of_other_pixels_is_dropped():
    """A CMYK photo's profile does not describe the RGB pixels nnc codes (spec §6b)."""
    im = Image.fromarray(smooth_image(24, 24)).convert("CMYK")
    prof = bytearray(SRGB)                  # a profile whose header says CMYK
    prof[16:20] = b"CMYK"
    buf = io.BytesIO()
    im.save(buf, "JPEG", icc_profile=bytes(prof))
    assert "icc_profile" not in nnc.decompress(nnc.compress(buf.getvalue(), quality=0.3)).info
    assert nnc.compress(im, quality=0.3)[:8] == container.MAGIC      # a CMYK PIL image too


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_a_usage_error(runner, png):
    r = runner.invoke(main, ["compress", "--device", "cuda", str(png)])
    assert r.exit_code == 2
    assert "--device cuda" in r.stderr and "--device cpu" in r.stderr
    assert "internal error" not in r.stderr
    r = runner.invoke(main, ["decompress", "--device", "tpu", str(png)])
    assert r.exit_code == 2 and "not a device name" in r.stderr


def test_a_missing_model_says_what_to_do(runner, png, tmp_path):
    r = runner.invoke(main, ["compress", "--model", "my-model", str(png), str(png) + ".2.png"])
    assert r.exit_code == 6
    assert r.stderr.count("\n") == 1            # once for the batch, not once per input
    assert "'my-model' is not installed" in r.stderr and "nnc models" in r.stderr
    assert "my-model.pt" in r.stderr and "my-model.analysis.onnx" in r.stderr


def test_info_reports_good_files_and_names_the_bad_one(runner, small_nnc, png):
    r = runner.invoke(main, ["info", str(small_nnc), str(png), str(small_nnc)])
    assert r.exit_code == 4
    assert r.stdout.count("nnc v2, 56x40") == 2
    assert r.stderr.strip() == (f"nnc: error: {png}: not an .nnc file (wrong magic bytes); "
                                "'nnc compress' turns an image into one")
    r = runner.invoke(main, ["decompress", str(png), str(png) + ".out.png"])
    assert r.exit_code == 4 and r.stderr.startswith(f"nnc: error: {png}: not an .nnc file")
