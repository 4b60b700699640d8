import io

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


def png_bytes(arr_or_img, **save) -> bytes:
    im = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    im.save(buf, format="PNG", **save)
    return buf.getvalue()


def smooth_image(h, w, seed=0) -> np.ndarray:
    """A photo-like test image: smooth gradients plus a little texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / 23 + c) * np.cos(y / 31 - c) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


SAMPLE = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "sample.png"
SHARED = SAMPLE.parents[2] / "shared"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``kodak`` need ../shared (Kodak and the anchors): skipped without it, so
    the suite means the same on every machine and the Kodak checks are extra."""
    if (SHARED / "data" / "kodak").is_dir() and (SHARED / "anchors").is_dir():
        return
    skip = pytest.mark.skip(reason="needs ../shared (Kodak images and anchors)")
    for item in items:
        if "kodak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kodim23_crop() -> np.ndarray:
    """A 256x192 crop of Kodak's kodim23 (rows 128-319, columns 256-511), shipped in the
    repository as docs/sample.png, so the tests see the same photo on every machine."""
    return np.asarray(Image.open(SAMPLE).convert("RGB")).copy()


@pytest.fixture
def runner():
    from click.testing import CliRunner
    return CliRunner()


@pytest.fixture
def png(tmp_path):
    """A small photo-like PNG on disk."""
    p = tmp_path / "in.png"
    p.write_bytes(png_bytes(smooth_image(40, 56)))
    return p


PHONE_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
             b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
             b'xmlns:dc="http://purl.org/dc/elements/1.1/" '
             b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6">'
             b'<dc:title>Harbour at dawn</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>')


def phone_jpeg(arr: np.ndarray, icc: bytes) -> bytes:
    """JPEG bytes as a phone writes a portrait photo: stored sideways with EXIF orientation
    6, make, model, dates and a GPS position, an XMP packet and the ICC profile ``icc``."""
    from PIL.ExifTags import IFD
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Pear", "pPhone 17"          # make, model
    exif[0x0132] = "2026:12:01 07:15:00"                       # date and time
    exif[0x0112] = 6                                           # orientation: turn 90° right
    exif.get_ifd(IFD.Exif)[0x9003] = "2026:12:01 07:15:00"    # when shot
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[1], gps[2], gps[3], gps[4] = "N", (59.0, 54.0, 41.25), "E", (10.0, 44.0, 8.5)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, exif=exif, xmp=PHONE_XMP,
                              icc_profile=icc)
    return buf.getvalue()
