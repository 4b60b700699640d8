"""Level-1 coder: block-wise greedy sharded sampling (thesis §3.4.2, Algorithm 2).

Works in prior-standardized coordinates: the prior of every dimension is N(0, 1) and the
posterior N(mean, std^2) with mean = (mu_q - mu_p) / sigma_p, std = sigma_q / sigma_p.
The latent is cut into blocks of ``block_dims`` dimensions. A block with K shards splits the
prior into K shards N(0, w_k) with sum w_k = 1 (equal, w_k = 1/K, in the thesis; here
optionally decaying geometrically, coarse to fine, which helps high-KL dimensions); at shard k the encoder adds each of 2^bits shared candidates
(stream STREAM_LEVEL1 + k, block b) to the running sample and keeps the one with the highest
posterior log-density. The decoder regenerates only the chosen candidates. A block with 0
shards decodes to the prior mean (0).

All blocks are processed at once per shard step (vectorized), in chunks that bound memory.
"""
from __future__ import annotations

import math

import torch

from .prng import STREAM_LEVEL1, block_keys, candidate_words, words_to_gaussian

# elements (blocks x candidates x dims) processed per chunk: bounds peak memory (~0.5 GiB)
CHUNK_ELEMENTS = 1 << 23


def shard_counts(kl_bits: torch.Tensor, bits: int, max_shards: int) -> torch.Tensor:
    """Shards per block from the block KL in bits: round(KL / bits), clipped to max_shards."""
    return torch.clamp(torch.round(kl_bits / bits), 0, max_shards).to(torch.int64)


def shard_scale(shards: torch.Tensor, k: int, decay: float) -> torch.Tensor:
    """Standard deviation of shard k for blocks with ``shards`` shards: the shard variances
    decay geometrically, w_k = decay^k (1 - decay) / (1 - decay^K), and sum to 1 (the prior).
    decay = 1 gives the thesis's equal shards N(0, 1/K)."""
    K = shards.to(torch.float64)
    if decay >= 1.0:
        w = 1.0 / K
    else:
        w = decay ** k * (1 - decay) / (1 - decay ** K)
    return w.sqrt().to(torch.float32)


def _shard_noise(seed, shard, block_ids, candidates, dims, scale):
    keys = block_keys(seed, STREAM_LEVEL1 + shard, block_ids, block_ids.device)
    g = words_to_gaussian(candidate_words(keys, candidates, dims))
    return g * scale


def greedy_encode(mean: torch.Tensor, std: torch.Tensor, shards: torch.Tensor, seed: int,
                  bits: int, decay: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Code each block's standardized posterior.

    mean, std: (n_blocks, block_dims); shards: (n_blocks,) int64.
    Returns (indices, sample): indices (n_blocks, max(shards)) int64, -1 where unused;
    sample (n_blocks, block_dims), the decoded latent in standardized coordinates.
    """
    n_blocks, dims = mean.shape
    device = mean.device
    kmax = int(shards.max().item()) if n_blocks else 0
    indices = torch.full((n_blocks, kmax), -1, dtype=torch.int64, device=device)
    sample = torch.zeros_like(mean)
    n_cand = 1 << bits
    cand = torch.arange(n_cand, device=device, dtype=torch.int32)
    inv_var = std.pow(-2)
    chunk = max(1, CHUNK_ELEMENTS // (n_cand * dims))
    for k in range(kmax):
        active = torch.nonzero(shards > k).squeeze(1)
        for start in range(0, active.numel(), chunk):
            b = active[start:start + chunk]
            scale = shard_scale(shards[b], k, decay).to(mean.device)[:, None, None]
            c = sample[b].unsqueeze(1) + _shard_noise(seed, k, b, cand, dims, scale)
            c -= mean[b].unsqueeze(1)
            c.square_()
            score = (c * inv_var[b].unsqueeze(1)).sum(-1)           # -2 log q + const
            best = score.argmin(1)
            indices[b, k] = best
            sample[b] += _shard_noise(seed, k, b, best[:, None].to(torch.int32), dims,
                                      scale)[:, 0]
    return indices, sample


def greedy_decode(indices: torch.Tensor, shards: torch.Tensor, seed: int,
                  dims: int, decay: float = 1.0) -> torch.Tensor:
    """Regenerate the sample from the chosen indices: O(n_blocks x shards x dims)."""
    n_blocks = shards.shape[0]
    device = shards.device
    sample = torch.zeros(n_blocks, dims, device=device)
    kmax = indices.shape[1] if indices.ndim == 2 else 0
    for k in range(kmax):
        b = torch.nonzero(shards > k).squeeze(1)
        if b.numel() == 0:
            continue
        scale = shard_scale(shards[b], k, decay).to(device)[:, None, None]
        idx = indices[b, k][:, None].to(torch.int32)
        sample[b] += _shard_noise(seed, k, b, idx, dims, scale)[:, 0]
    return sample


def kl_bits_standardized(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Elementwise KL[N(mean, std^2) || N(0, 1)] in bits."""
    return (-torch.log(std) + 0.5 * (std * std + mean * mean - 1)) / math.log(2)
