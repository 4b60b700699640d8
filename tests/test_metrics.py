"""PSNR, MS-SSIM and BD-rate against known values."""
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnc.metrics import MS_SSIM_WEIGHTS, bd_rate, ms_ssim, ms_ssim_db, psnr

SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_psnr_known_values():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)
    b = a.copy(); b[0, 0, 0] = 110          # one sample off by 10: MSE = 100 / 192
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 * 192 / 100), abs=1e-12)


def test_ms_ssim_identical_is_one():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_closed_form_for_flat_images():
    # flat images: every contrast-structure term is exactly 1, so MS-SSIM is the coarsest
    # scale's luminance term to the power of its weight
    a = np.full((176, 176, 3), 100, np.uint8)
    b = np.full((176, 176, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    lum = (2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1)
    assert ms_ssim(a, b) == pytest.approx(lum ** MS_SSIM_WEIGHTS[-1], abs=1e-6)


def test_ms_ssim_orders_distortions_and_rejects_bad_shapes():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (192, 192), dtype=np.uint8)
    def noisy(s):
        return np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8)
    assert 1 > ms_ssim(a, noisy(2)) > ms_ssim(a, noisy(10)) > ms_ssim(a, noisy(40)) > 0
    with pytest.raises(ValueError):
        ms_ssim(a, a[:100])
    with pytest.raises(ValueError):
        ms_ssim(a[:150, :150], a[:150, :150])


@pytest.mark.kodak
def test_ms_ssim_matches_the_measured_anchor():
    """JPEG 4:4:4 quality 10 on Kodak: the anchors' mean MS-SSIM (measured with the
    standard definition) is reproduced — when this Pillow's encoder makes the same files."""
    anchor = next(d for d in json.loads((SHARED / "anchors/measured_kodak/jpeg444.json")
                                        .read_text()) if d["setting"] == 10)
    bpps, scores, psnrs = [], [], []
    for f in sorted((SHARED / "data/kodak").glob("*.png")):
        im = Image.open(f).convert("RGB")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=10, subsampling=0, optimize=True)
        a = np.asarray(im)
        b = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        bpps.append(8 * buf.tell() / (a.shape[0] * a.shape[1]))
        psnrs.append(psnr(a, b))
        scores.append(ms_ssim(a, b))
    if abs(np.mean(bpps) - anchor["bpp"]) > 1e-9:
        pytest.skip("this Pillow's JPEG encoder differs from the one the anchors used")
    assert np.mean(psnrs) == pytest.approx(anchor["psnr"], abs=1e-9)
    assert np.mean(scores) == pytest.approx(anchor["ms_ssim"], abs=1e-5)


def test_bd_rate_known_values():
    rate = np.array([0.2, 0.4, 0.8, 1.6])
    q = np.array([28.0, 31.0, 34.0, 37.0])
    assert bd_rate(rate, q, rate, q) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rate, q, 0.9 * rate, q) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(rate, q, 1.25 * rate, q) == pytest.approx(25.0, abs=1e-9)
    # a curve 1 dB better on a line of 3 dB per doubling needs 2^(-1/3) of the rate
    assert bd_rate(rate, q, rate, q + 1) == pytest.approx((2 ** (-1 / 3) - 1) * 100, abs=1e-6)
    assert math.isnan(bd_rate(rate, q, rate, q + 20))
    with pytest.raises(ValueError):
        bd_rate(rate[:1], q[:1], rate, q)


def test_bd_rate_piecewise_cubic_is_exact_where_it_should_be():
    # order of points does not matter; a point that loses quality is dropped
    rate = np.array([0.2, 0.4, 0.8, 1.6, 3.2])
    q = np.array([28.0, 31.0, 34.0, 37.0, 36.5])
    shuffled = [3, 0, 2, 1, 4]
    assert bd_rate(rate, q, rate[shuffled], q[shuffled]) == pytest.approx(0.0, abs=1e-9)
    # a saturating curve (most of its rate buys little quality) stays finite and sane,
    # where a single cubic fit overshoots
    sat_r, sat_q = [0.2, 0.4, 0.6, 0.8, 1.0], [25.0, 27.0, 28.0, 28.5, 28.7]
    v = bd_rate(sat_r, sat_q, np.array(sat_r) * 0.5, sat_q)
    assert v == pytest.approx(-50.0, abs=1e-9)
    lin_r = np.exp(np.linspace(np.log(0.1), np.log(2), 6))
    lin_q = 24 + 3 * np.log2(lin_r / 0.1)
    v = bd_rate(lin_r, lin_q, sat_r, sat_q)
    assert -100 < v < 1000


def test_ms_ssim_db():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
