"""Level 1's search (coding/greedy.py, thesis §3.4.2): the beam search over each block's
shared candidates, shard by shard, for several shard counts of a block at once. Encoder
only.

Its inner loops (the candidates' Gaussians, the scores of every beam and candidate, the
best pairs) run in C where the install built nnc/coding/_kernels.c, and with torch's
ops elsewhere; both choose the same candidates but where the last-ulp differences of the
Gaussians flip a near tie (tests/test_kernels.py).
"""
from __future__ import annotations

import math

from ..lazy import torch
from .native import kernels
from .prng import STREAM_LEVEL1, block_keys, candidate_words, words_to_gaussian


# elements (blocks x candidates x dims) processed per chunk: bounds peak memory (~0.25 GiB);
# smaller chunks reuse freed memory (nnc/malloc.py), larger ones cost more per-op overhead
CHUNK_ELEMENTS = 1 << 22


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


def remaining_variance(shards: torch.Tensor, k: int, decay: float) -> torch.Tensor:
    """Sum of the variances of the shards after shard k, w_{k+1} + ... + w_{K-1} (float32)."""
    K = shards.to(torch.float64)
    if decay >= 1.0:
        r = (K - k - 1) / K
    else:
        r = (decay ** (k + 1) - decay ** K) / (1 - decay ** K)
    return r.clamp(min=0).to(torch.float32)


def _best_pairs(score: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` lowest entries of each row of ``score`` (n, beams, candidates), best first,
    as (beam, candidate) index pairs, each (n, k). The k best pairs can only use the k
    candidates whose best beam scores lowest (any other candidate's pairs all score at least
    the k-th of those), so the full sort runs over k x beams entries per row, not
    candidates x beams: half the time of one topk over all of them. (Where nnc's C
    kernels are built, :func:`_beam_step` does this in C instead.)"""
    n, beams, cands = score.shape
    if beams == 1 or k >= cands:
        top = score.reshape(n, -1).topk(k, dim=1, largest=False).indices
        return top // cands, top % cands
    few = score.amin(1).topk(k, dim=1, largest=False).indices            # (n, k)
    sub = torch.gather(score, 2, few[:, None, :].expand(n, beams, k))   # (n, beams, k)
    top = sub.reshape(n, -1).topk(k, dim=1, largest=False).indices
    return top // k, torch.gather(few, 1, top % k)


def _beam_step(s: torch.Tensor, idx: torch.Tensor, mu: torch.Tensor, var: torch.Tensor,
               sigma: torch.Tensor, look: torch.Tensor, act: torch.Tensor, rhs: torch.Tensor,
               beam: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One shard of the beam search for n blocks and their T tries: from the partial samples
    s (n, T, B, dims) and their indices idx (n, T, B, shards so far), the targets (mu, var)
    (n, dims), the shard's scale sigma and later variance look (n, T) and its candidates rhs
    (n, 2 dims + 1, candidates) = [g; g^2; 1], the best min(beam, B x candidates) partial
    samples of each try and their indices, best first; a finished try (``act`` False)
    keeps its own, its indices extended with -1. A pair (beam, candidate) scores
    sum_d w (r + sigma g)^2, w = 1 / (var + look), r = s - mu: one product,
    [2 sigma w r, sigma^2 w, sum_d w r^2] . [g; g^2; 1]. In C where the install built nnc's
    kernels (nnc/coding/_kernels.c ``beam_step``: the scores never stored, the g^2 terms
    summed once per try); else with torch's ops."""
    n, T, B, dims = s.shape
    n_cand = rhs.shape[2]
    nb = min(beam, B * n_cand)
    if kernels is not None and s.device.type == "cpu" and n_cand % 32 == 0 and beam <= 256:
        new_s = torch.empty(n, T, nb, dims, dtype=torch.float32)
        new_idx = torch.empty(n, T, nb, idx.shape[3] + 1, dtype=torch.int64)
        f32 = lambda t: t.to(torch.float32).contiguous().numpy()   # noqa: E731
        kernels.beam_step(f32(s), idx.contiguous().numpy(), f32(mu), f32(var), f32(sigma),
                          f32(look), act.to(torch.uint8).contiguous().numpy(), f32(rhs),
                          n, T, B, dims, idx.shape[3], n_cand, nb, new_s.numpy(),
                          new_idx.numpy(), torch.get_num_threads())
        return new_s, new_idx
    g = rhs[:, :dims]
    w = 1.0 / (var[:, None] + look[..., None])                           # (n, T, dims)
    r = s - mu[:, None, None]                                            # (n, T, B, dims)
    wr = w[:, :, None] * r
    lhs = torch.cat([wr * (2 * sigma)[..., None, None],
                     (w * sigma.square()[..., None])[:, :, None].expand(n, T, B, dims),
                     (wr * r).sum(-1, keepdim=True)], dim=3)
    score = torch.bmm(lhs.view(n, T * B, 2 * dims + 1), rhs)
    parent, choice = _best_pairs(score.view(n * T, B, n_cand), nb)
    parent, choice = parent.view(n, T, nb), choice.view(n, T, nb)
    chosen = torch.gather(g, 2, choice.view(n, 1, T * nb).expand(n, dims, T * nb))
    new_s = torch.gather(s, 2, parent[..., None].expand(n, T, nb, dims))
    new_s += chosen.view(n, dims, T, nb).permute(0, 2, 3, 1) * sigma[..., None, None]
    new_idx = torch.cat([torch.gather(idx, 2, parent[..., None].expand(
        n, T, nb, idx.shape[3])), choice[..., None]], dim=3)
    if not act.all():                          # finished tries keep their samples
        keep_old = ~act[..., None, None]
        if B < nb:                             # the beam is still growing: pad with copies
            pad = torch.arange(nb, device=s.device).clamp_(max=B - 1)
            s, idx = s[:, :, pad], idx[:, :, pad]
        new_s = torch.where(keep_old, s, new_s)
        new_idx = torch.where(keep_old, torch.cat(
            [idx, torch.full_like(choice[..., None], -1)], dim=3), new_idx)
    return new_s, new_idx


def search_tries(mean: torch.Tensor, std: torch.Tensor, k_try: torch.Tensor, seed: int,
                 bits: int, decay: float = 1.0, beam: int = 1, lookahead: bool = True,
                 block_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`greedy_encode`'s search, for several shard counts of each block at once.

    mean, std: (n_blocks, block_dims); k_try: (n_blocks, T) int64 shard counts to try (0:
    none). Every try of a block searches the block's candidates, which are drawn once per
    block and shard and never copied per try: the scores of all tries and beams of a block
    are one matrix product with them, the shard's scale sigma applied to the products
    (sum_d w (r + sigma g)^2 = sum_d w r^2 + 2 sigma (w r) . g + sigma^2 w . g^2).
    Returns (indices (n_blocks, T, max K) int64, -1 where unused; samples (n_blocks, T,
    block_dims)), each try's as greedy_encode(mean, std, k_try[:, t]) gives them up to the
    rounding of the scores."""
    n_blocks, dims = mean.shape
    T = k_try.shape[1]
    device = mean.device
    if block_ids is None:
        block_ids = torch.arange(n_blocks, device=device)
    kmax = int(k_try.max().item()) if k_try.numel() else 0
    indices = torch.full((n_blocks, T, kmax), -1, dtype=torch.int64, device=device)
    sample = torch.zeros(n_blocks, T, dims, device=device)
    n_cand = 1 << bits
    chunk = max(1, CHUNK_ELEMENTS // (n_cand * T * max(beam, dims)))
    most = k_try.max(1).values
    order = torch.argsort(most, descending=True, stable=True)
    order = order[most[order] > 0]
    for start in range(0, order.numel(), chunk):   # each chunk of blocks through all shards
        b = order[start:start + chunk]                 # most shards first: the chunk shrinks
        n, k_b = b.numel(), k_try[b]                   # from its end as blocks are done
        mu, var = mean[b], std[b].square()
        buffer = torch.empty(n * (2 * dims + 1) * n_cand, device=device, dtype=torch.float32)
        s = torch.zeros(n, T, 1, dims, device=device)                # (blocks, tries, beams, dims)
        idx = torch.zeros(n, T, 1, 0, dtype=torch.int64, device=device)
        for k in range(int(k_b.max().item())):
            n_live = int((k_b.max(1).values > k).sum().item())
            if n_live < n:                             # blocks whose tries are all done
                sample[b[n_live:]] = s[n_live:, :, 0]
                indices[b[n_live:], :, :k] = idx[n_live:, :, 0]
                s, idx, k_b, mu, var, b = s[:n_live], idx[:n_live], k_b[:n_live], \
                    mu[:n_live], var[:n_live], b[:n_live]
                n = n_live
            act = k_b > k                                                # (n, T)
            k_s = k_b.clamp(min=k + 1)          # finished tries: any valid count will do
            sigma = shard_scale(k_s, k, decay)                           # (n, T)
            keys = block_keys(seed, STREAM_LEVEL1 + k, block_ids[b], device)
            rhs = candidate_rhs(keys, n_cand, dims, buffer)              # [g; g^2; 1]
            look = (remaining_variance(k_s, k, decay) if lookahead
                    else torch.zeros_like(sigma))                        # (n, T)
            s, idx = _beam_step(s, idx, mu, var, sigma, look, act, rhs, beam)
        sample[b] = s[:, :, 0]
        indices[b, :, :idx.shape[3]] = idx[:, :, 0]
    return indices, sample


def candidate_rhs(keys: torch.Tensor, n_cand: int, dims: int,
                  buffer: "torch.Tensor | None" = None) -> torch.Tensor:
    """The shared candidates 0 ... n_cand - 1 of blocks with ``keys`` (n,) int32, as the
    right-hand side of search_tries' score product: (n, 2 dims + 1, n_cand) float32, rows g
    (the candidates' Gaussians, dims first), g^2 and 1. On the CPU, where the install built
    it, in one C pass (nnc/coding/_kernels.c: the same words, G within a few float32 ulps of
    torch's, 3x faster on two cores); else with torch's ops. ``buffer``: a float32 tensor of
    at least that many elements to write them to (one buffer for all shards of a chunk of
    blocks saves faulting fresh memory in every shard)."""
    n = keys.shape[0]
    shape = (n, 2 * dims + 1, n_cand)
    rhs = (torch.empty(shape, device=keys.device, dtype=torch.float32) if buffer is None
           else buffer.view(-1)[:math.prod(shape)].view(shape))
    if kernels is not None and keys.device.type == "cpu":
        kernels.fill(keys.contiguous().numpy(), n_cand, dims, rhs.numpy(),
                     torch.get_num_threads())
        return rhs
    cand = torch.arange(n_cand, device=keys.device, dtype=torch.int32)
    g = words_to_gaussian(candidate_words(keys, cand, dims, dims_first=True),
                          out=rhs[:, :dims], scratch=True)
    torch.mul(g, g, out=rhs[:, dims:2 * dims])
    rhs[:, 2 * dims].fill_(1.0)
    return rhs
