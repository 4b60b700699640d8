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
    kernels are built, :func:`_search_step` does this in C instead.)"""
    n, beams, cands = score.shape
    if beams == 1 or k >= cands:
        top = score.reshape(n, -1).topk(k, dim=1, largest=False).indices
        return top // cands, top % cands
    few = score.amin(1).topk(k, dim=1, largest=False).indices            # (n, k)
    sub = torch.gather(score, 2, few[:, None, :].expand(n, beams, k))   # (n, beams, k)
    top = sub.reshape(n, -1).topk(k, dim=1, largest=False).indices
    return top // k, torch.gather(few, 1, top % k)


def _search_step(lhs: torch.Tensor, rhs: torch.Tensor, k: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best (beam, candidate) pairs of each block and try, best first, each
    (n * tries, k): the scores lhs (n, tries, beams, width) @ rhs (n, width, candidates) and
    their :func:`_best_pairs`. On the CPU, where the install built it, in one C pass that
    keeps the scores in registers (nnc/coding/_kernels.c ``search_step``)."""
    n, T, B, width = lhs.shape
    cands = rhs.shape[2]
    if kernels is not None and lhs.device.type == "cpu" and cands % 32 == 0:
        top = torch.empty(n * T, k, dtype=torch.int64)
        kernels.search_step(lhs.contiguous().numpy(), rhs.contiguous().numpy(), n, T, B,
                                width, cands, k, top.numpy(), torch.get_num_threads())
        return top // cands, top % cands
    score = torch.bmm(lhs.reshape(n, T * B, width), rhs)
    return _best_pairs(score.view(n * T, B, cands), k)


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
    cand = torch.arange(n_cand, device=device, dtype=torch.int32)
    chunk = max(1, CHUNK_ELEMENTS // (n_cand * T * max(beam, dims)))
    most = k_try.max(1).values
    order = torch.argsort(most, descending=True, stable=True)
    order = order[most[order] > 0]
    for start in range(0, order.numel(), chunk):   # each chunk of blocks through all shards
        b = order[start:start + chunk]                 # most shards first: the chunk shrinks
        n, k_b = b.numel(), k_try[b]                   # from its end as blocks are done
        mu, var = mean[b], std[b].square()
        buffer = torch.empty(n * (2 * dims + 1) * n_cand, device=device)
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
            rhs = candidate_rhs(keys, cand, dims, buffer)                # [g; g^2; 1]
            g = rhs[:, :dims]
            look = remaining_variance(k_s, k, decay)[..., None] if lookahead else 0.0
            w = 1.0 / (var[:, None] + look)                              # (n, T, dims)
            r = s - mu[:, None, None]                                    # (n, T, B, dims)
            wr = w[:, :, None] * r
            B = r.shape[2]
            # one product: [2 sigma w r, sigma^2 w, sum_d w r^2] . [g; g^2; 1]
            lhs = torch.cat([wr * (2 * sigma)[..., None, None],
                             (w * sigma.square()[..., None])[:, :, None].expand(n, T, B, dims),
                             (wr * r).sum(-1, keepdim=True)], dim=3)
            parent, choice = _search_step(lhs, rhs, min(beam, B * n_cand))
            nb = parent.shape[1]
            parent, choice = parent.view(n, T, nb), choice.view(n, T, nb)
            chosen = torch.gather(g, 2, choice.view(n, 1, T * nb).expand(n, dims, T * nb))
            new_s = torch.gather(s, 2, parent[..., None].expand(n, T, nb, dims))
            new_s += chosen.view(n, dims, T, nb).permute(0, 2, 3, 1) * sigma[..., None, None]
            new_idx = torch.cat([torch.gather(idx, 2, parent[..., None].expand(
                n, T, nb, idx.shape[3])), choice[..., None]], dim=3)
            if not act.all():                          # finished tries keep their samples
                keep_old = ~act[..., None, None]
                if B < nb:                             # the beam is still growing: pad
                    pad = torch.arange(nb, device=device).clamp_(max=B - 1)   # with copies
                    s, idx = s[:, :, pad], idx[:, :, pad]
                new_s = torch.where(keep_old, s, new_s)
                new_idx = torch.where(keep_old, torch.cat(
                    [idx, torch.full_like(choice[..., None], -1)], dim=3), new_idx)
            s, idx = new_s, new_idx
        sample[b] = s[:, :, 0]
        indices[b, :, :idx.shape[3]] = idx[:, :, 0]
    return indices, sample


def candidate_rhs(keys: torch.Tensor, cand: torch.Tensor, dims: int,
                  buffer: "torch.Tensor | None" = None) -> torch.Tensor:
    """The shared candidates of blocks with ``keys`` (n,) int32, as the right-hand side of
    search_tries' score product: (n, 2 dims + 1, len(cand)) float32, rows g (the candidates'
    Gaussians, dims first), g^2 and 1. On the CPU, where the install built it, in one C pass
    (nnc/coding/_kernels.c: the same words, G within a few float32 ulps of torch's, 3x
    faster on two cores); else with torch's ops. ``buffer``: a float32 tensor of at least
    that many elements to write them to (one buffer for all shards of a chunk of blocks
    saves faulting fresh memory in every shard)."""
    n, n_cand = keys.shape[0], cand.shape[0]
    shape = (n, 2 * dims + 1, n_cand)
    rhs = (torch.empty(shape, device=keys.device) if buffer is None
           else buffer.view(-1)[:math.prod(shape)].view(shape))
    if (kernels is not None and keys.device.type == "cpu"
            and bool((cand == torch.arange(n_cand, dtype=cand.dtype)).all())):
        kernels.fill(keys.contiguous().numpy(), n_cand, dims, rhs.numpy(),
                         torch.get_num_threads())
        return rhs
    g = words_to_gaussian(candidate_words(keys, cand, dims, dims_first=True),
                          out=rhs[:, :dims], scratch=True)
    torch.mul(g, g, out=rhs[:, dims:2 * dims])
    rhs[:, 2 * dims].fill_(1.0)
    return rhs
