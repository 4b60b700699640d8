"""Level-2 coder: adaptive importance sampling (thesis §3.4.3, Algorithms 3 and 5).

In prior-standardized coordinates (p = N(0, 1)). Steps:

1. Outliers: dimensions whose KL exceeds ``outlier_kl_bits`` are sent directly: a
   posterior sample quantized to 16 bits over [-OUTLIER_RANGE, OUTLIER_RANGE] (the level-1
   coder uses the same rule and quantizer).
2. Groups: the remaining dimensions, in order, are cut greedily into groups whose KL stays
   within ``group_kl_bits`` and whose size stays within ``max_group``.
3. Each group draws 2^index_bits shared candidates (stream STREAM_LEVEL2, block = group
   number, dim = position in the group) and picks one with probability proportional to its
   importance weight q/p, by Gumbel-max with encoder-local noise. Its index is sent.
   ``sharpen`` > 1 picks with probability proportional to (q/p)^sharpen instead, which
   leans toward the most probable candidate (encoder only; the decoder is the same).

All candidates of all groups are scored at once (log-weights per dimension, summed per group
with ``index_add_``) in chunks that bound memory; the grouping itself is a cumulative-sum
search with one numpy call per group.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..codes import Level2Code  # noqa: F401  (the code's integers live with the format)
from .prng import (STREAM_LEVEL2, STREAM_ENCODER, block_keys, mix32, words_to_gaussian,
                   words_to_uniform)

OUTLIER_RANGE = 64.0
OUTLIER_LEVELS = 1 << 16
CHUNK_ELEMENTS = 1 << 23


def quantize_outlier(v: torch.Tensor) -> torch.Tensor:
    step = 2 * OUTLIER_RANGE / (OUTLIER_LEVELS - 1)
    return torch.clamp(torch.round((v + OUTLIER_RANGE) / step), 0, OUTLIER_LEVELS - 1).long()


def dequantize_outlier(q: torch.Tensor) -> torch.Tensor:
    step = 2 * OUTLIER_RANGE / (OUTLIER_LEVELS - 1)
    return q.to(torch.float32) * step - OUTLIER_RANGE


def make_groups(kl_bits: np.ndarray, budget_bits: float, max_group: int) -> np.ndarray:
    """Greedy grouping (Algorithm 3): sizes of consecutive groups, each within the KL
    budget (a single dimension over budget forms a group of its own) and size cap."""
    n = kl_bits.size
    csum = np.concatenate([[0.0], np.cumsum(kl_bits, dtype=np.float64)])
    sizes = []
    start = 0
    while start < n:
        end = int(np.searchsorted(csum, csum[start] + budget_bits, side="right")) - 1
        end = min(max(end, start + 1), start + max_group, n)
        sizes.append(end - start)
        start = end
    return np.asarray(sizes, dtype=np.int64)


def _group_layout(sizes: np.ndarray, device):
    sizes_t = torch.as_tensor(sizes, dtype=torch.int64, device=device)
    group_of_dim = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes_t)
    starts = torch.cumsum(sizes_t, 0) - sizes_t
    pos_in_group = torch.arange(group_of_dim.numel(), device=device) - starts[group_of_dim]
    return group_of_dim, pos_in_group


def _candidate_gaussians(seed, group_of_dim, pos_in_group, candidates):
    """Shared N(0,1) for each (dim, candidate): shape (n_dims, n_cand) or (n_dims, 1)."""
    keys = block_keys(seed, STREAM_LEVEL2, group_of_dim, group_of_dim.device)
    h = mix32(keys.unsqueeze(-1) ^ candidates.to(torch.int32))
    h = mix32(h ^ pos_in_group.to(torch.int32).unsqueeze(-1))
    return words_to_gaussian(h)


def _gumbel_choice(seed: int, g0: int, g1: int, cand: torch.Tensor,
                   logw: torch.Tensor) -> torch.Tensor:
    """Gumbel-max over groups g0 ... g1 - 1: a sample of the categorical distribution
    proportional to exp(logw), with encoder-local noise."""
    groups = torch.arange(g0, g1, device=logw.device)
    gkeys = block_keys(seed, STREAM_ENCODER + 1, groups, logw.device)
    u = words_to_uniform(mix32(gkeys.unsqueeze(-1) ^ cand))
    return torch.argmax(logw - torch.log(-torch.log(u)), dim=1)


def importance_encode(mean: torch.Tensor, std: torch.Tensor, seed: int, index_bits: int,
                      group_kl_bits: float, max_group: int,
                      outlier_kl_bits: float,
                      sharpen: float = 1.0) -> tuple[Level2Code, torch.Tensor]:
    """Code a flattened standardized posterior; returns the code and the decoded sample."""
    device = mean.device
    mean, std = mean.flatten().float(), std.flatten().float()
    kl = (-torch.log(std) + 0.5 * (std * std + mean * mean - 1)) / math.log(2)
    is_out = kl > outlier_kl_bits
    out_pos = torch.nonzero(is_out).squeeze(1)
    sample = torch.empty_like(mean)
    # outliers: an exact posterior sample (encoder-local noise), quantized to 16 bits
    local = block_keys(seed, STREAM_ENCODER, 0, device)
    noise = words_to_gaussian(mix32(local ^ out_pos.to(torch.int32)))
    out_q = quantize_outlier(mean[out_pos] + std[out_pos] * noise)
    sample[out_pos] = dequantize_outlier(out_q)

    keep = torch.nonzero(~is_out).squeeze(1)
    sizes = make_groups(kl[keep].double().cpu().numpy(), group_kl_bits, max_group)
    n_groups = len(sizes)
    n_cand = 1 << index_bits
    group_of_dim, pos_in_group = _group_layout(sizes, device)
    m, s = mean[keep], std[keep]
    cand = torch.arange(n_cand, device=device, dtype=torch.int32)
    chunk = max(1, CHUNK_ELEMENTS // n_cand)
    ends = np.cumsum(sizes)                        # one past each group's last dimension
    chosen = torch.zeros(n_groups, dtype=torch.int64, device=device)
    # log-weights are kept only for the groups the current chunk of dimensions touches, and
    # each group is chosen as soon as all its dimensions are in: memory is bounded by a
    # chunk, not by the latent (the sums, and so the choices, are those of one big table)
    open_lo, logw = 0, torch.zeros(0, n_cand, device=device)
    for a in range(0, keep.numel(), chunk):
        sl = slice(a, a + chunk)
        gd = group_of_dim[sl]
        g_hi = int(gd[-1]) + 1                     # groups [open_lo, g_hi) are touched
        logw = torch.cat([logw, torch.zeros(g_hi - open_lo - logw.shape[0], n_cand,
                                            device=device)])
        x = _candidate_gaussians(seed, gd, pos_in_group[sl], cand)
        # log q(x) - log p(x), up to the group-constant -log s
        lw = 0.5 * x * x - 0.5 * ((x - m[sl, None]) / s[sl, None]) ** 2
        logw.index_add_(0, gd - open_lo, lw)
        done = g_hi if ends[g_hi - 1] <= a + chunk else g_hi - 1
        if done > open_lo:
            chosen[open_lo:done] = _gumbel_choice(seed, open_lo, done, cand,
                                                  sharpen * logw[:done - open_lo])
            logw, open_lo = logw[done - open_lo:], done
    x = _candidate_gaussians(seed, group_of_dim, pos_in_group,
                             chosen[group_of_dim].unsqueeze(-1))[:, 0]
    sample[keep] = x
    code = Level2Code(out_pos.cpu().numpy().astype(np.int64), out_q.cpu().numpy(),
                      sizes, chosen.cpu().numpy().astype(np.int64))
    return code, sample


def importance_decode(code: Level2Code, n_dims: int, seed: int, device="cpu") -> torch.Tensor:
    """Regenerate the level-2 sample (flattened) from the code."""
    sample = torch.empty(n_dims, device=device)
    out_pos = torch.as_tensor(code.outlier_positions, dtype=torch.int64, device=device)
    sample[out_pos] = dequantize_outlier(torch.as_tensor(code.outlier_values, device=device))
    is_out = torch.zeros(n_dims, dtype=torch.bool, device=device)
    is_out[out_pos] = True
    keep = torch.nonzero(~is_out).squeeze(1)
    group_of_dim, pos_in_group = _group_layout(code.group_sizes, device)
    idx = torch.as_tensor(code.indices, dtype=torch.int64, device=device)
    x = _candidate_gaussians(seed, group_of_dim, pos_in_group, idx[group_of_dim].unsqueeze(-1))
    sample[keep] = x[:, 0]
    return sample
