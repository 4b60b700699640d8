"""Level-1 coder: block-wise greedy sharded sampling (thesis §3.4.2, Algorithm 2).

Works in prior-standardized coordinates: the prior of every dimension is N(0, 1) and the
posterior N(mean, std^2) with mean = (mu_q - mu_p) / sigma_p, std = sigma_q / sigma_p.
The latent is cut into blocks of ``block_dims`` dimensions. A block with K shards splits the
prior into K shards N(0, w_k) with sum w_k = 1 (equal, w_k = 1/K, in the thesis; here
optionally decaying geometrically, coarse to fine, which helps high-KL dimensions); at
shard k the encoder adds each of 2^bits shared candidates (stream STREAM_LEVEL1 + k, block
b) to the running sample and keeps the one that best approaches the posterior (see
:func:`greedy_encode` for the score and the optional beam search). The decoder regenerates
only the chosen candidates. A block with 0 shards decodes to the prior mean (0).

Blocks are processed in chunks that bound memory, all blocks of a chunk at once per shard.
"""
from __future__ import annotations

import math

import torch

from .prng import STREAM_LEVEL1, block_keys, candidate_words, words_to_gaussian

# elements (blocks x candidates x dims) processed per chunk: bounds peak memory (~0.5 GiB)
CHUNK_ELEMENTS = 1 << 23


def shard_counts(kl_bits: torch.Tensor, bits: int, max_shards: int,
                 first_kl: float | None = None) -> torch.Tensor:
    """Shards per block from the block KL in bits: round(KL / bits), clipped to max_shards;
    with ``first_kl``, blocks from that KL up get at least one shard and blocks below it none
    (round() puts that threshold at bits / 2)."""
    k = torch.round(kl_bits / bits)
    if first_kl is not None:
        k = torch.where(kl_bits >= first_kl, k.clamp(min=1), torch.zeros_like(k))
    return torch.clamp(k, 0, max_shards).to(torch.int64)


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


def remaining_variance(shards: torch.Tensor, k: int, decay: float) -> torch.Tensor:
    """Sum of the variances of the shards after shard k, w_{k+1} + ... + w_{K-1} (float32)."""
    K = shards.to(torch.float64)
    if decay >= 1.0:
        r = (K - k - 1) / K
    else:
        r = (decay ** (k + 1) - decay ** K) / (1 - decay ** K)
    return r.clamp(min=0).to(torch.float32)


def greedy_encode(mean: torch.Tensor, std: torch.Tensor, shards: torch.Tensor, seed: int,
                  bits: int, decay: float = 1.0, beam: int = 1, lookahead: bool = True,
                  block_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Code each block's standardized posterior.

    mean, std: (n_blocks, block_dims); shards: (n_blocks,) int64.
    At shard k, a partial sample s is scored by how well it can still reach the posterior:
    sum_d (s_d - mean_d)^2 / (std_d^2 + R_k), where R_k is the variance the block's later
    shards will add (``lookahead``; R_k = 0 is the thesis's greedy rule, which scores the
    partial sum as if it were final). ``beam`` > 1 keeps the best ``beam`` partial samples
    per block instead of one (a beam search over the same candidates); encoder only.
    ``block_ids``: the blocks' numbers in the shared stream (default: their row numbers).
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
    coded = torch.nonzero(shards > 0).squeeze(1)
    chunk = max(1, CHUNK_ELEMENTS // (n_cand * dims))
    for start in range(0, coded.numel(), chunk):     # each chunk of blocks through all shards
        b = coded[start:start + chunk]
        n, k_b = b.numel(), shards[b]
        mu, var = mean[b], std[b].square()
        s = torch.zeros(n, 1, dims, device=device)          # (blocks, beams, dims)
        idx = torch.zeros(n, 1, 0, dtype=torch.int64, device=device)
        for k in range(int(k_b.max().item())):
            live = torch.nonzero(k_b > k).squeeze(1)
            if live.numel() < n:                  # blocks that are done keep their best beam
                done = torch.nonzero(k_b <= k).squeeze(1)
                sample[b[done]] = s[done, 0]
                indices[b[done], :k] = idx[done, 0]
                s, idx, k_b, mu, var, b = s[live], idx[live], k_b[live], mu[live], \
                    var[live], b[live]
                n = b.numel()
            scale = shard_scale(k_b, k, decay)[:, None, None]
            if block_ids is None:
                noise = _shard_noise(seed, k, b, cand, dims, scale)      # (n, C, dims)
            else:        # rows may repeat a block (rd_encode): draw its candidates once
                uniq, inv = torch.unique(block_ids[b], return_inverse=True)
                noise = _shard_noise(seed, k, uniq, cand, dims, 1.0)[inv] * scale
            look = remaining_variance(k_b, k, decay)[:, None] if lookahead else 0.0
            w = 1.0 / (var + look)                                       # (n, dims)
            r = s - mu[:, None]                                          # (n, B, dims)
            # sum_d w (r + noise)^2 = sum_d w r^2 + 2 (w r) . noise + sum_d w noise^2
            score = (w[:, None] * r.square()).sum(-1, keepdim=True) \
                + 2 * torch.bmm(w[:, None] * r, noise.transpose(1, 2)) \
                + (w[:, None] * noise.square()).sum(-1)[:, None]          # (n, B, C)
            keep = min(beam, score.shape[1] * n_cand)
            top = score.reshape(n, -1).topk(keep, dim=1, largest=False).indices  # best first
            parent, choice = top // n_cand, top % n_cand
            rows = torch.arange(n, device=device)[:, None]
            s = s[rows, parent] + noise[rows, choice]
            idx = torch.cat([idx[rows, parent], choice[..., None]], dim=2)
        sample[b] = s[:, 0]
        indices[b, :idx.shape[2]] = idx[:, 0]
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


RD_CHUNK_BLOCKS = 1 << 16    # blocks coded at once by rd_encode: bounds its memory


def rd_encode(mean: torch.Tensor, std: torch.Tensor, shards: torch.Tensor, seed: int,
              bits: int, decay: float, beam: int, kappa: float, max_shards: int,
              offsets=(-1, 0, 1), lookahead: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_rd_encode_blocks` over chunks of RD_CHUNK_BLOCKS blocks (each block's coding
    is independent of the others', so the result is the same as in one piece, with memory
    bounded by a chunk)."""
    n = mean.shape[0]
    if n <= RD_CHUNK_BLOCKS:
        return _rd_encode_blocks(mean, std, shards, seed, bits, decay, beam, kappa,
                                 max_shards, offsets, lookahead)
    parts = [_rd_encode_blocks(mean[a:a + RD_CHUNK_BLOCKS], std[a:a + RD_CHUNK_BLOCKS],
                               shards[a:a + RD_CHUNK_BLOCKS], seed, bits, decay, beam, kappa,
                               max_shards, offsets, lookahead, block_offset=a)
             for a in range(0, n, RD_CHUNK_BLOCKS)]
    kmax = max(p[1].shape[1] for p in parts)
    out_idx = torch.full((n, kmax), -1, dtype=torch.int64, device=mean.device)
    a = 0
    for _, idx, _ in parts:
        out_idx[a:a + idx.shape[0], :idx.shape[1]] = idx
        a += idx.shape[0]
    return torch.cat([p[0] for p in parts]), out_idx, torch.cat([p[2] for p in parts])


def _rd_encode_blocks(mean: torch.Tensor, std: torch.Tensor, shards: torch.Tensor, seed: int,
                      bits: int, decay: float, beam: int, kappa: float, max_shards: int,
                      offsets=(-1, 0, 1), lookahead: bool = True, block_offset: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose each block's shard count by rate-distortion instead of round(KL / bits).

    Each block is coded (:func:`greedy_encode`) with K = shards + offset for every offset,
    and scored, like K = 0 (the prior mean), by
    0.5 sum_d (sample_d - mean_d)^2 (1 / std_d^2 - 1) + kappa ln2 bits K, in nats: the
    first term is the loss in the model's log-likelihood that the Gaussian posterior predicts
    for that error, the second the rate; kappa = 1 weighs them as the model's own ELBO does.
    The lowest score wins. A count is tried only where it can beat K = 0, and all counts of
    a block share its candidates. Encoder only: the decoder reads the chosen counts as
    always. ``block_offset``: the number of the first block in the shared stream. Returns
    (shards, indices, sample)."""
    n, dims = mean.shape
    device = mean.device
    w = (std.pow(-2) - 1).clamp(min=0)
    per_shard = kappa * math.log(2) * bits
    cost0 = 0.5 * (mean.square() * w).sum(1)                         # K = 0: the prior mean
    tries = torch.stack([(shards + o).clamp(0, max_shards) for o in sorted(set(offsets))], 1)
    keep = (tries > 0) & (cost0[:, None] > per_shard * tries)
    keep[:, 1:] &= tries[:, 1:] != tries[:, :-1]                    # clamped duplicates
    rows, col = torch.nonzero(keep, as_tuple=True)                  # sorted by block
    k_rows = tries[rows, col]
    idx, sample = greedy_encode(mean[rows], std[rows], k_rows, seed, bits, decay, beam,
                                lookahead, block_ids=rows + block_offset)
    cost = 0.5 * ((sample - mean[rows]).square() * w[rows]).sum(1) + per_shard * k_rows
    best = cost0.scatter_reduce(0, rows, cost, reduce="amin")
    win = (cost == best[rows]) & (cost < cost0[rows])
    r = torch.arange(rows.numel(), device=device)
    pick = torch.full((n,), -1, dtype=torch.int64, device=device).scatter_reduce(
        0, rows[win], r[win], reduce="amax")                        # one winner per block
    chosen = torch.nonzero(pick >= 0).squeeze(1)
    out_k = torch.zeros(n, dtype=torch.int64, device=device)
    out_k[chosen] = k_rows[pick[chosen]]
    kmax = int(out_k.max().item()) if n else 0
    out_idx = torch.full((n, kmax), -1, dtype=torch.int64, device=device)
    out_idx[chosen] = idx[pick[chosen], :kmax]
    out_sample = torch.zeros_like(mean)
    out_sample[chosen] = sample[pick[chosen]]
    return out_k, out_idx, out_sample
