"""Tiled transforms (nnc/model/tiling.py): memory bounded by a tile, results as untiled up
to float noise (issue 15: PSNR difference within 0.05 dB)."""
import numpy as np
import torch

from nnc.image_io import RasterImage
from nnc.metrics import psnr
from nnc.model import tiling
from nnc.model.weights import load_model


def test_tiles_match_the_whole_image(kodim23_crop):
    model = load_model(None, "cpu").net
    h, w, _ = kodim23_crop.shape
    x = tiling.to_tensor(RasterImage(kodim23_crop, False, None), model.stride, "cpu")
    q = torch.tensor([0.5])
    with torch.no_grad():
        (mu_x, s_x), (mu2, s2) = model.encode(x, q)
        (tmu_x, ts_x), (tmu2, ts2) = tiling.encode(model, x, q, tile=64, halo=48)
        for a, b in ((mu_x, tmu_x), (s_x, ts_x), (mu2, tmu2), (s2, ts2)):
            assert (a - b).abs().max().item() < 1e-4
        whole = (model.decode(mu_x, q)[0, :, :h, :w].clamp(0, 1) * 255).round() \
            .to(torch.uint8).permute(1, 2, 0).numpy()
    tiled = tiling.decode_uint8(model, mu_x, q, h, w, tile=4, halo=4)   # 48 tiles
    assert tiled.shape == whole.shape
    assert np.abs(tiled.astype(int) - whole).max() <= 2
    assert abs(psnr(kodim23_crop, tiled) - psnr(kodim23_crop, whole)) < 0.05
    # one tile: exactly the untiled pass
    assert np.array_equal(tiling.decode_uint8(model, mu_x, q, h, w), whole)
