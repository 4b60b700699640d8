"""The analysis and synthesis transforms over tiles, so that memory is bounded by a tile
and not by the image (inference only).

Each tile is run with a halo of neighbouring pixels (latent pixels for the synthesis, image
pixels for the analysis) that covers the transforms' receptive field, and only its own
part of the result is kept; tiles at the image's border see the same zero padding as the
whole image would. The results differ from an untiled pass by float noise only, and images
that fit in one tile run untiled (bit for bit the same). Decoded pixels are converted to
8 bits tile by tile, so the full-resolution float image never exists at once.

Receptive fields: g_s is four 5x5 stride-2 transposed convolutions, so an output pixel
depends on latent pixels within 2 + 1 + 1/2 + 1/4 < 4 of it; g_a is four 5x5 stride-2
convolutions, so a latent pixel depends on image pixels within 2 + 4 + 8 + 16 = 30 of its
16x16 cell. The halos below cover that (4 latent pixels, 48 image pixels); measured on
kodim05 with small tiles, the latents differ from an untiled pass by at most 1e-6 and the
decoded pixels by at most one level (PSNR difference 3e-6 dB).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .pln import PLN

from .tiles import (ANALYSIS_HALO, ANALYSIS_TILE, STRIDE1, SYNTHESIS_HALO,  # noqa: F401
                    SYNTHESIS_TILE, spans as _spans, synthesis_tiles)


def to_tensor(img, stride: int, device: str, as_float: bool = True) -> torch.Tensor:
    """An image (image_io.RasterImage) padded (edge replication, in 8 bits) to multiples of
    ``stride``, as a (1, 3, H, W) tensor: float in [0, 1], or (``as_float`` False) uint8,
    which the tiled transforms convert a tile at a time (a quarter of the memory of one
    float copy)."""
    h, w, _ = img.rgb.shape
    ph, pw = (-h) % stride, (-w) % stride
    padded = np.pad(img.rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).to(device).permute(2, 0, 1).unsqueeze(0)
    return x.float().div_(255.0) if as_float else x


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


@torch.no_grad()
def encode(model: PLN, x: torch.Tensor, quality: torch.Tensor,
           tile: int = ANALYSIS_TILE, halo: int = ANALYSIS_HALO,
           analysis: "Callable[[torch.Tensor], torch.Tensor] | None" = None):
    """``model.encode`` with g_a over tiles of ``tile`` image pixels. ``x``: (1, 3, H, W),
    float in [0, 1] or uint8 (converted a tile at a time). ``analysis``: x -> g_a(x - 0.5)
    in place of the network's (model/fused.py ``folded_analysis``)."""
    _, _, H, W = x.shape
    if analysis is None:
        def analysis(t):
            return model.g_a(t - 0.5, quality)
    if H <= tile and W <= tile:
        return model.encode_from(analysis(_float(x)), quality)
    s = STRIDE1
    y = None
    for y0, y1, wy0, wy1 in _spans(H, tile, halo):
        for x0, x1, wx0, wx1 in _spans(W, tile, halo):
            part = analysis(_float(x[..., wy0:wy1, wx0:wx1]))
            if y is None:
                y = torch.empty(1, part.shape[1], H // s, W // s, device=x.device)
            y[..., y0 // s:y1 // s, x0 // s:x1 // s] = part[
                ..., (y0 - wy0) // s:(y1 - wy0) // s, (x0 - wx0) // s:(x1 - wx0) // s]
    return model.encode_from(y, quality)


@torch.no_grad()
def decode_uint8(model: PLN, z1: torch.Tensor, quality: torch.Tensor, height: int,
                 width: int, tile: int = SYNTHESIS_TILE,
                 halo: int = SYNTHESIS_HALO) -> np.ndarray:
    """g_s(z1) cropped to height x width, as 8-bit RGB (H, W, 3), over tiles of ``tile``
    latent pixels."""
    _, _, h1, w1 = z1.shape
    out = np.empty((height, width, 3), dtype=np.uint8)
    for (wy0, wy1, wx0, wx1), (oy, ox), (y, x, ph, pw) in synthesis_tiles(
            h1, w1, height, width, tile, halo):
        x_hat = model.decode(z1[..., wy0:wy1, wx0:wx1], quality)[0]
        part = x_hat[:, oy:oy + ph, ox:ox + pw]
        out[y:y + ph, x:x + pw] = \
            (part.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return out
