"""Level-1 coder: block-wise greedy sharded sampling (thesis §3.4.2, Algorithm 2).

Works in prior-standardized coordinates: the prior of every dimension is N(0, 1) and the
posterior N(mean, std^2) with mean = (mu_q - mu_p) / sigma_p, std = sigma_q / sigma_p.
The latent is cut into blocks of ``block_dims`` dimensions. A block with K shards splits the
prior into K shards N(0, w_k) with sum w_k = 1 (equal, w_k = 1/K, in the thesis; here
optionally decaying geometrically, coarse to fine, which helps high-KL dimensions); at
shard k the encoder adds each of 2^bits shared candidates (stream STREAM_LEVEL1 + k, block
b) to the running sample and keeps the one that best approaches a target Gaussian (see
:func:`greedy_encode` for the score and the optional beam search). The decoder regenerates
only the chosen candidates. A block with 0 shards decodes to the prior mean (0).

The target is, by default, the likelihood that the posterior implies (:func:`likelihood_of`):
the candidates chosen are those the model predicts decode best, not those nearest a
posterior sample. Which target the encoder used is not in the file; the decoder is the same.

Blocks are processed in chunks that bound memory, all blocks of a chunk at once per shard
(the search: coding/greedy_search.py, its inner loops in C where built).

Dimensions whose KL exceeds ``outlier_kl_bits`` are sent as 16-bit values instead
(coding/outliers.py). Shard counts are entropy-coded with a table of counts per context that
ships with the model (coding/shard_table.py). The format, sections and numpy decoder are
coding/greedy_format.py (no torch), re-exported here: this module is the registry's coder.
"""
from __future__ import annotations

import math

from ..lazy import torch
from . import outliers
from .greedy_format import (LEVEL, SECTIONS, Level1Code, Level1Format, Level1Search,  # noqa: F401
                           _shard_count_rows, check_sections, decode_latent, decode_numpy,
                           format_from_header, from_blocks, read, read_sections,
                           shard_contexts, to_blocks, write, write_sections)
from .greedy_search import search_tries, shard_scale
from .prng import (STREAM_L1_OUTLIER_NOISE, STREAM_LEVEL1, block_keys, candidate_words, mix32,
                   words_to_gaussian)


def shard_counts(kl_bits: torch.Tensor, bits: int, max_shards: int,
                 first_kl: float | None = None) -> torch.Tensor:
    """Shards per block from the block KL in bits: round(KL / bits), clipped to max_shards;
    with ``first_kl``, blocks from that KL up get at least one shard and blocks below it none
    (round() puts that threshold at bits / 2)."""
    k = torch.round(kl_bits / bits)
    if first_kl is not None:
        k = torch.where(kl_bits >= first_kl, k.clamp(min=1), torch.zeros_like(k))
    return torch.clamp(k, 0, max_shards).to(torch.int64)


def _shard_noise(seed, shard, block_ids, candidates, dims, scale=None):
    keys = block_keys(seed, STREAM_LEVEL1 + shard, block_ids, block_ids.device)
    g = words_to_gaussian(candidate_words(keys, candidates, dims))
    return g if scale is None else g.mul_(scale)


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
    idx, sample = search_tries(mean, std, shards[:, None], seed, bits, decay, beam, lookahead,
                               block_ids)
    return idx[:, 0], sample[:, 0]


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
              offsets=(-1, 0, 1), lookahead: bool = True, likelihood: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_rd_encode_blocks` over chunks of RD_CHUNK_BLOCKS blocks (each block's coding
    is independent of the others', so the result is the same as in one piece, with memory
    bounded by a chunk)."""
    n = mean.shape[0]
    if n <= RD_CHUNK_BLOCKS:
        return _rd_encode_blocks(mean, std, shards, seed, bits, decay, beam, kappa,
                                 max_shards, offsets, lookahead, likelihood=likelihood)
    parts = [_rd_encode_blocks(mean[a:a + RD_CHUNK_BLOCKS], std[a:a + RD_CHUNK_BLOCKS],
                               shards[a:a + RD_CHUNK_BLOCKS], seed, bits, decay, beam, kappa,
                               max_shards, offsets, lookahead, block_offset=a,
                               likelihood=likelihood)
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
                      offsets=(-1, 0, 1), lookahead: bool = True, block_offset: int = 0,
                      likelihood: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose each block's shard count by rate-distortion instead of round(KL / bits).

    Each block is coded (:func:`search_tries`, the search of :func:`greedy_encode`) with
    K = shards + offset for every offset, and scored, like K = 0 (the prior mean), by
    0.5 sum_d (sample_d - mean_d)^2 w_d + kappa ln2 bits K, in nats, w = 1 / std^2 - 1: the
    first term is the loss in the model's log-likelihood that the Gaussian posterior
    N(mean, std^2) predicts for that error, the second the rate; kappa = 1 weighs them as
    the model's own ELBO does. With ``likelihood``, (mean, std) is the likelihood itself
    (:func:`likelihood_of`) and w = 1 / std^2: the first term is then the negative
    log-likelihood of the sample, up to a constant.
    The lowest score wins. A count is tried only where it can beat K = 0, and all counts of
    a block share its candidates. Encoder only: the decoder reads the chosen counts as
    always. ``block_offset``: the number of the first block in the shared stream. Returns
    (shards, indices, sample)."""
    n, dims = mean.shape
    device = mean.device
    w = std.pow(-2) if likelihood else (std.pow(-2) - 1).clamp(min=0)
    per_shard = kappa * math.log(2) * bits
    cost0 = 0.5 * (mean.square() * w).sum(1)                         # K = 0: the prior mean
    tries = torch.stack([(shards + o).clamp(0, max_shards) for o in sorted(set(offsets))], 1)
    keep = (tries > 0) & (cost0[:, None] > per_shard * tries)
    keep[:, 1:] &= tries[:, 1:] != tries[:, :-1]                    # clamped duplicates
    blocks = torch.nonzero(keep.any(1)).squeeze(1)                   # blocks with a try
    k_try = torch.where(keep[blocks], tries[blocks], 0)              # (u, T); 0: no try
    idx, sample = search_tries(mean[blocks], std[blocks], k_try, seed, bits, decay, beam,
                               lookahead, blocks + block_offset)
    cost = 0.5 * ((sample - mean[blocks, None]).square() * w[blocks, None]).sum(2) \
        + per_shard * k_try
    cost = torch.where(k_try > 0, cost, torch.full_like(cost, math.inf))
    best, t = cost.min(1)                 # equal costs (never seen): the fewest shards
    win = best < cost0[blocks]
    chosen, t = blocks[win], t[win]
    rows = torch.nonzero(win).squeeze(1)
    out_k = torch.zeros(n, dtype=torch.int64, device=device)
    out_k[chosen] = k_try[rows, t]
    kmax = int(out_k.max().item()) if n else 0
    out_idx = torch.full((n, kmax), -1, dtype=torch.int64, device=device)
    out_idx[chosen] = idx[rows, t, :kmax]
    out_sample = torch.zeros_like(mean)
    out_sample[chosen] = sample[rows, t]
    return out_k, out_idx, out_sample


def plan(mean: "torch.Tensor", std: "torch.Tensor", fmt: Level1Format, search: Level1Search,
         kl: "torch.Tensor | None" = None):
    """Split blocks into outlier dims (sent as values, thesis Algorithm 3's rule applied to
    level 1) and the rest. Returns (outlier mask, shards, mean, std) where the outlier dims
    are neutralized (mean 0, std 1: no KL, no preference). ``kl``: the per-dimension KL in
    bits, if the caller has it."""
    if kl is None:
        kl = kl_bits_standardized(mean, std)
    out = kl > fmt.outlier_kl_bits
    mean = torch.where(out, torch.zeros_like(mean), mean)
    std = torch.where(out, torch.ones_like(std), std)
    kl = torch.where(out, torch.zeros_like(kl), kl)
    shards = shard_counts(kl.sum(1) * search.rate_scale, fmt.shard_bits, fmt.max_shards,
                          search.first_shard_kl)
    return out, shards, mean, std


LIKELIHOOD_MIN_PRECISION = 1e-3   # bounds the likelihood's mean at 1000x the posterior's


def likelihood_of(mean: "torch.Tensor", std: "torch.Tensor"):
    """The Gaussian likelihood N(c, 1/lam) that the standardized posterior N(mean, std^2)
    is the product of with the prior N(0, 1): lam = 1/std^2 - 1, c = mean (1 + lam) / lam.
    Its negative log, 0.5 lam (z - c)^2, is the distortion the model predicts for a decoded
    z: coding against it, rather than against the posterior, chooses the candidates that
    decode best instead of those nearest a posterior sample (the posterior mean shrinks c
    towards the prior mean; decoding at c is 2-3 dB better than at the mean at low rates).
    Returns (c, 1 / sqrt(lam))."""
    lam = (std.pow(-2) - 1).clamp(min=LIKELIHOOD_MIN_PRECISION)
    return mean * (1 + lam) / lam, lam.rsqrt()


def coded_mask(mean: "torch.Tensor", std: "torch.Tensor", fmt: Level1Format,
               search: Level1Search) -> "torch.Tensor":
    """(1, M, H1, W1) bool, from the standardized posterior of that shape: the dimensions
    of blocks that get a shard. The others decode to the prior mean, which a coder-aware
    refinement (model/refine.py) must assume."""
    from ..model.pln import gaussian_kl_nats
    kl_bits = gaussian_kl_nats(mean, std, 0.0, 1.0) / math.log(2)
    _, m, h, w = kl_bits.shape
    bh, bw = fmt.block_h, fmt.block_w
    s = kl_bits.reshape(m, h // bh, bh, w // bw, bw).sum((2, 4), keepdim=True)
    block_kl = s.expand(m, h // bh, bh, w // bw, bw).reshape(1, m, h, w)
    return block_kl >= search.first_shard_kl


def encode(mean: "torch.Tensor", std: "torch.Tensor", seed: int, fmt: Level1Format,
           search: Level1Search, stats: dict | None = None) -> Level1Code:
    """Code q(z1|z2,x) standardized by the prior, mean and std (1, M, H1, W1). ``stats``,
    when given, receives the ΣKL and the outliers' count and bits."""
    bh, bw = fmt.block_h, fmt.block_w
    m, h1, w1 = mean.shape[1:]
    mean, std = to_blocks(mean, bh, bw), to_blocks(std, bh, bw)
    kl = kl_bits_standardized(mean, std)
    out_mask, shards, g_mean, g_std = plan(mean, std, fmt, search, kl)
    if search.target == "likelihood":
        g_mean, g_std = likelihood_of(g_mean, g_std)
    elif search.target != "posterior":
        raise ValueError(f"unknown level-1 search target {search.target!r}")
    if search.rd_kappa > 0:
        shards, indices, _ = rd_encode(g_mean, g_std, shards, seed, fmt.shard_bits,
                                       fmt.shard_decay, search.beam, search.rd_kappa,
                                       fmt.max_shards, search.rd_offsets, search.lookahead,
                                       likelihood=search.target == "likelihood")
    else:
        indices, _ = greedy_encode(g_mean, g_std, shards, seed, fmt.shard_bits,
                                   fmt.shard_decay, search.beam, search.lookahead)
    out_pos = torch.nonzero(out_mask.flatten()).squeeze(1)
    noise = words_to_gaussian(mix32(block_keys(seed, STREAM_L1_OUTLIER_NOISE, 0, mean.device)
                                    ^ out_pos.to(torch.int32)))
    out_vals = outliers.quantize(mean.flatten()[out_pos] + std.flatten()[out_pos] * noise)
    if stats is not None:
        stats["kl1_bits"] = kl.sum().item()
        stats["l1_outliers"] = int(out_pos.numel())
        stats["l1_outlier_bits"] = 32 + out_pos.numel() * (math.log2(mean.numel()) + 16)
    return Level1Code(shards.cpu().numpy().reshape(m, h1 // bh, w1 // bw),
                      indices.cpu().numpy(), out_pos.cpu().numpy(), out_vals.cpu().numpy())


def decode(code: Level1Code, fmt: Level1Format, shape: tuple, seed: int,
           device="cpu") -> "torch.Tensor":
    """The decoded z1 standardized by the prior, (1, M, H1, W1) = (1, *shape)."""
    z = greedy_decode(torch.as_tensor(code.indices, device=device),
                      torch.as_tensor(code.shards.reshape(-1), device=device), seed,
                      fmt.block_dims, fmt.shard_decay)
    flat = z.view(-1)
    flat[torch.as_tensor(code.outlier_positions, device=device)] = outliers.dequantize(
        torch.as_tensor(code.outlier_values, device=device))
    return from_blocks(z, *shape, fmt.block_h, fmt.block_w)


def encode_latent(mean: "torch.Tensor", std: "torch.Tensor", ctx, search: Level1Search):
    """The coder protocol's encode (coding/protocol.py): :func:`encode` in the context."""
    return encode(mean, std, ctx.seed, ctx.fmt, search)
