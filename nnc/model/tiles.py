"""Tile geometry shared by the torch transforms (tiling.py) and the torch-free decoder
(nnc/decoder.py): plain integers, no torch."""
from __future__ import annotations

STRIDE1 = 16               # image pixels per level-1 latent pixel
SYNTHESIS_TILE = 48        # latent pixels (768 image pixels) per tile side
SYNTHESIS_HALO = 4         # latent pixels
ANALYSIS_TILE = 768        # image pixels per tile side (a multiple of 64)
ANALYSIS_HALO = 48         # image pixels (a multiple of 16)


def spans(n: int, tile: int, halo: int):
    """(start, stop) of each tile along an axis of length n, and of its haloed window."""
    for a in range(0, n, tile):
        b = min(a + tile, n)
        yield a, b, max(a - halo, 0), min(b + halo, n)


def synthesis_tiles(h1: int, w1: int, height: int, width: int, tile: int = SYNTHESIS_TILE,
                    halo: int = SYNTHESIS_HALO):
    """For each synthesis tile of a (h1, w1) latent: the latent window to decode
    (wy0, wy1, wx0, wx1), where its own pixels start within the decoded window (oy, ox),
    and where they go in the height x width image (y, x, ph, pw)."""
    s = STRIDE1
    for y0, y1, wy0, wy1 in spans(h1, tile, halo):
        for x0, x1, wx0, wx1 in spans(w1, tile, halo):
            ph, pw = min(y1 * s, height) - y0 * s, min(x1 * s, width) - x0 * s
            if ph <= 0 or pw <= 0:
                continue
            yield (wy0, wy1, wx0, wx1), ((y0 - wy0) * s, (x0 - wx0) * s), \
                (y0 * s, x0 * s, ph, pw)
