"""Dimensions sent as values: an exact posterior sample, quantized to 16 bits on
[-64, 64] (spec §3). Both coders send the dimensions whose KL is too large for their
candidates this way; each coder decides which and where they live in its sections."""
from __future__ import annotations

from ..lazy import torch

OUTLIER_RANGE = 64.0
OUTLIER_LEVELS = 1 << 16
STEP = 2 * OUTLIER_RANGE / (OUTLIER_LEVELS - 1)


def quantize(v: "torch.Tensor") -> "torch.Tensor":
    return torch.clamp(torch.round((v + OUTLIER_RANGE) / STEP), 0, OUTLIER_LEVELS - 1).long()


def dequantize(q: "torch.Tensor") -> "torch.Tensor":
    return q.to(torch.float32) * STEP - OUTLIER_RANGE


def dequantize_np(q):
    """:func:`dequantize` in numpy (float32)."""
    import numpy as np
    return np.asarray(q).astype(np.float32) * np.float32(STEP) - np.float32(OUTLIER_RANGE)
