"""Decoded floats to 8-bit pixels, and gray (spec §10): one conversion for every engine
(numpy only: the torch-free decoder uses it)."""
from __future__ import annotations

import numpy as np


def to_8bit(x: np.ndarray) -> np.ndarray:
    """(3, h, w) floats in [0, 1] to (h, w, 3) uint8 (round half to even, spec §10)."""
    return np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8).transpose(1, 2, 0)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """8-bit RGB to gray (spec §10), replicated over three channels."""
    gray = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
