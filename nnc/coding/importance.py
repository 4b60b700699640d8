"""Level-2 coder: importance sampling over groups of dimensions (thesis §3.4.1,
Algorithms 1 and 3), and its sections Z2SA (or the older Z2SI) and Z2IX.

In prior-standardized coordinates (p = N(0, 1)). Steps:

1. Dimensions whose KL exceeds ``outlier_kl_bits`` are outliers: an exact posterior sample
   (encoder-local randomness) quantized to 16 bits (coding/outliers.py), sent as values.
2. The rest are cut into consecutive groups of at most ``group_kl_bits`` of KL and
   ``max_group`` dimensions (greedy, Algorithm 3).
3. Each group draws 2^index_bits shared candidates from p (stream STREAM_LEVEL2, block =
   group); the encoder picks one with probability proportional to (q/p)^sharpen (Gumbel-max,
   encoder-local noise) and sends its index. The decoder regenerates only the chosen one.

All candidates of all groups are scored at once (log-weights per dimension, summed per group
with ``index_add_``) in chunks that bound memory; the grouping itself is a cumulative-sum
search with one numpy call per group.

What a file carries for this level (:class:`Level2Code`), the header fields the coder reads
(:class:`Level2Format`), its encoder-only settings (:class:`Level2Search`) and its sections
(:func:`write_sections`, :func:`read_sections`) all live here; reading the sections needs
neither torch nor the network.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError
from ..lazy import torch
from . import outliers, sideinfo
from .native import kernels
from .prng import (STREAM_L2_GUMBEL, STREAM_L2_OUTLIER_NOISE, STREAM_LEVEL2, block_keys,
                   block_keys_np, mix32, mix32_, mix32_np, words_to_gaussian,
                   words_to_gaussian_np, words_to_uniform)

LEVEL = 2
SECTIONS = {"Z2SA": 0, "Z2SI": 0, "Z2IX": 1}   # tag: rank in the file (spec §1); equal
                                               # ranks are alternatives


@dataclass(frozen=True)
class Level2Format:
    """The header fields of this level (spec §2); floats as the file stores them (f32)."""
    index_bits: int = 12
    max_group: int = 1024
    group_kl_bits: float = 11.0      # encoder settings, recorded for reproducibility
    outlier_kl_bits: float = 11.0

    def __post_init__(self):          # as the header stores them: float32
        for name in ("group_kl_bits", "outlier_kl_bits"):
            object.__setattr__(self, name, float(np.float32(getattr(self, name))))

    @classmethod
    def from_header(cls, hd) -> "Level2Format":
        return cls(hd.l2_index_bits, hd.l2_max_group, hd.l2_group_kl_bits,
                   hd.l2_outlier_kl_bits)

    def header_fields(self) -> dict:
        return {"l2_index_bits": self.index_bits, "l2_max_group": self.max_group,
                "l2_group_kl_bits": self.group_kl_bits,
                "l2_outlier_kl_bits": self.outlier_kl_bits}


@dataclass(frozen=True)
class Level2Search:
    """Encoder-only: they change which indices are chosen, not how a file decodes."""
    sharpen: float = 3.0     # choose candidates by (q/p)^sharpen


@dataclass
class Level2Code:
    outlier_positions: np.ndarray   # int64, sorted, into the flattened latent
    outlier_values: np.ndarray      # int64 in [0, 2^16)
    group_sizes: np.ndarray         # int64 >= 1, over the non-outlier dims in order
    indices: np.ndarray             # int64 in [0, 2^index_bits), one per group


def encode(mean: "torch.Tensor", std: "torch.Tensor", seed: int, fmt: Level2Format,
           search: Level2Search) -> "tuple[Level2Code, torch.Tensor]":
    """Code q(z2|x) (standardized: p(z2) = N(0, I)); returns the code and the decoded z2 in
    the latent's shape."""
    code, z2 = importance_encode(mean, std, seed, fmt.index_bits, fmt.group_kl_bits,
                                 fmt.max_group, fmt.outlier_kl_bits, search.sharpen)
    return code, z2.reshape(mean.shape)


def decode(code: Level2Code, shape: tuple, seed: int, device="cpu") -> "torch.Tensor":
    """The decoded z2, (1, *shape)."""
    return importance_decode(code, math.prod(shape), seed, device).reshape(1, *shape)


CHUNK_ELEMENTS = 1 << 22


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
    if candidates.ndim == 1:
        # every dim tries the same candidates: hash each group's (key, candidate) once and
        # share it among the group's dims (group_of_dim is ascending); the same words
        groups, inv = torch.unique_consecutive(group_of_dim, return_inverse=True)
        keys = block_keys(seed, STREAM_LEVEL2, groups, group_of_dim.device)
        h = mix32_(keys.unsqueeze(-1) ^ candidates.to(torch.int32))[inv]
    else:
        keys = block_keys(seed, STREAM_LEVEL2, group_of_dim, group_of_dim.device)
        h = mix32_(keys.unsqueeze(-1) ^ candidates.to(torch.int32))
    h = mix32_(h ^ pos_in_group.to(torch.int32).unsqueeze(-1))
    return words_to_gaussian(h)


def _add_weights(logw, seed, groups, rows, pos_in_group, m, s, n_cand: int) -> None:
    """Adds each dimension's log q(x) - log p(x) (up to the group-constant -log s) for every
    candidate x (0 ... n_cand - 1) of its group to ``logw``'s row ``rows``. On the CPU, where
    nnc's C kernels are built, in one pass (nnc/coding/_kernels.c ``level2_weights``: the
    same words, G within a few float32 ulps of torch's); else with torch's ops."""
    if (kernels is not None and logw.device.type == "cpu" and logw.is_contiguous()
            and logw.dtype == torch.float32):
        keys = block_keys(seed, STREAM_LEVEL2, groups, logw.device)
        i32 = lambda t: t.to(torch.int32).contiguous().numpy()   # noqa: E731
        kernels.level2_weights(keys.numpy(), i32(pos_in_group), m.contiguous().numpy(),
                               s.contiguous().numpy(), i32(rows), logw.numpy(), n_cand,
                               torch.get_num_threads())
        return
    cand = torch.arange(n_cand, device=logw.device, dtype=torch.int32)
    x = _candidate_gaussians(seed, groups, pos_in_group, cand)
    lw = x.square().mul_(0.5)                   # in place: these are the largest arrays
    lw.sub_(x.sub_(m[:, None]).div_(s[:, None]).square_(), alpha=0.5)
    logw.index_add_(0, rows, lw)


def _gumbel_choice(seed: int, g0: int, g1: int, cand: torch.Tensor,
                   logw: torch.Tensor) -> torch.Tensor:
    """Gumbel-max over groups g0 ... g1 - 1: a sample of the categorical distribution
    proportional to exp(logw), with encoder-local noise."""
    groups = torch.arange(g0, g1, device=logw.device)
    gkeys = block_keys(seed, STREAM_L2_GUMBEL, groups, logw.device)
    u = words_to_uniform(mix32_(gkeys.unsqueeze(-1) ^ cand))
    return torch.argmax(logw - torch.log(-torch.log(u)), dim=1)


def importance_encode(mean: "torch.Tensor", std: "torch.Tensor", seed: int, index_bits: int,
                      group_kl_bits: float, max_group: int,
                      outlier_kl_bits: float,
                      sharpen: float = 1.0) -> "tuple[Level2Code, torch.Tensor]":
    """Code a flattened standardized posterior; returns the code and the decoded sample."""
    device = mean.device
    mean, std = mean.flatten().float(), std.flatten().float()
    kl = (-torch.log(std) + 0.5 * (std * std + mean * mean - 1)) / math.log(2)
    is_out = kl > outlier_kl_bits
    out_pos = torch.nonzero(is_out).squeeze(1)
    sample = torch.empty_like(mean)
    # outliers: an exact posterior sample (encoder-local noise), quantized to 16 bits
    local = block_keys(seed, STREAM_L2_OUTLIER_NOISE, 0, device)
    noise = words_to_gaussian(mix32(local ^ out_pos.to(torch.int32)))
    out_q = outliers.quantize(mean[out_pos] + std[out_pos] * noise)
    sample[out_pos] = outliers.dequantize(out_q)

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
        _add_weights(logw, seed, gd, gd - open_lo, pos_in_group[sl], m[sl], s[sl], n_cand)
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


def importance_decode(code: Level2Code, n_dims: int, seed: int, device="cpu") -> "torch.Tensor":
    """Regenerate the level-2 sample (flattened) from the code."""
    sample = torch.empty(n_dims, device=device)
    out_pos = torch.as_tensor(code.outlier_positions, dtype=torch.int64, device=device)
    sample[out_pos] = outliers.dequantize(torch.as_tensor(code.outlier_values, device=device))
    is_out = torch.zeros(n_dims, dtype=torch.bool, device=device)
    is_out[out_pos] = True
    keep = torch.nonzero(~is_out).squeeze(1)
    group_of_dim, pos_in_group = _group_layout(code.group_sizes, device)
    idx = torch.as_tensor(code.indices, dtype=torch.int64, device=device)
    x = _candidate_gaussians(seed, group_of_dim, pos_in_group, idx[group_of_dim].unsqueeze(-1))
    sample[keep] = x[:, 0]
    return sample


def check_sections(sections: dict) -> None:
    """The file holds this level's side information in one coding, and its indices."""
    if {"Z2SA", "Z2SI"} <= sections.keys():
        raise FormatError("corrupt .nnc file: side information is there in two codings")
    for tag in ("Z2SA" if "Z2SA" in sections else "Z2SI", "Z2IX"):
        if tag not in sections:
            raise FormatError(f"corrupt .nnc file: section {tag} is missing")


def decode_numpy(code: Level2Code, shape: tuple, seed: int) -> np.ndarray:
    """:func:`decode` in numpy (float32, (1, *shape)), for the torch-free decoder."""
    n_dims = math.prod(shape)
    sample = np.empty(n_dims, dtype=np.float32)
    sample[code.outlier_positions] = outliers.dequantize_np(code.outlier_values)
    keep = np.ones(n_dims, dtype=bool)
    keep[code.outlier_positions] = False
    sizes = np.asarray(code.group_sizes, dtype=np.int64)
    group_of_dim = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.cumsum(sizes) - sizes
    pos_in_group = np.arange(group_of_dim.size) - starts[group_of_dim]
    keys = block_keys_np(seed, STREAM_LEVEL2, group_of_dim)
    h = mix32_np(keys ^ (np.asarray(code.indices, dtype=np.int64)[group_of_dim]
                         & 0xFFFFFFFF).astype(np.uint32))
    h = mix32_np(h ^ pos_in_group.astype(np.uint32))
    sample[keep] = words_to_gaussian_np(h)
    return sample.reshape(1, *shape)


def write_sections(code: Level2Code, n_dims: int, fmt: Level2Format) -> dict[str, bytes]:
    """Sections Z2SA (outliers, group sizes) and Z2IX (indices). Each group size is coded
    with the previous one as its Laplace mean (the first with the median m0)."""
    n_out, n_groups = len(code.outlier_positions), len(code.group_sizes)
    si = sideinfo.Writer()
    si.uniform(code.outlier_positions, n_dims)
    si.uniform(code.outlier_values, 1 << 16)
    sizes = code.group_sizes - 1
    m0 = int(np.clip(np.median(sizes) if n_groups else 0, 0, 255))
    means = np.concatenate([[m0], sizes[:-1]]).astype(np.float64) if n_groups else \
        np.zeros(0)
    s0, s1 = sideinfo.choose_scale(sizes, means, fmt.max_group - 1)
    si.laplace(sizes, means, s0, s1, fmt.max_group - 1)
    side = struct.pack("<IIBBB", n_out, n_groups, s0, s1, m0) + si.bytes()
    ix = sideinfo.Writer()
    ix.uniform(code.indices, 1 << fmt.index_bits)
    return {"Z2SA": side, "Z2IX": ix.bytes()}


def read_sections(sections: dict[str, bytes], n_dims: int, fmt: Level2Format) -> Level2Code:
    """Z2SA (each size's mean is the previous size) or the older Z2SI (every mean is m0),
    and Z2IX; checked against the latent's size (FormatError)."""
    chained = "Z2SA" in sections
    side, ix = sections["Z2SA" if chained else "Z2SI"], sections["Z2IX"]
    if len(side) < 11:
        raise FormatError("corrupt .nnc file: level-2 side information is too short")
    n_out, n_groups, s0, s1, m0 = struct.unpack_from("<IIBBB", side)
    if n_out > n_dims or n_groups > n_dims or s0 >= len(sideinfo.S0_GRID) \
            or s1 >= len(sideinfo.S1_GRID):
        raise FormatError("corrupt .nnc file: level-2 counts are out of range")
    if n_groups * fmt.max_group < n_dims - n_out:
        raise FormatError("corrupt .nnc file: too few level-2 groups for the latent")
    # work bounded by the bytes given: a section must be long enough for what it claims
    sideinfo.need_bits(ix, n_groups * fmt.index_bits, "level-2 index")
    sideinfo.need_bits(side[11:], n_out * (math.log2(max(n_dims, 2)) + 16), "level-2 side information")
    r = sideinfo.Reader(side[11:])
    pos = r.uniform(n_out, n_dims)
    vals = r.uniform(n_out, 1 << 16)
    if chained:
        sizes = r.laplace_chain(n_groups, m0, s0, s1, fmt.max_group - 1) + 1
    else:
        sizes = r.laplace(np.full(n_groups, float(m0)), s0, s1, fmt.max_group - 1) + 1
    if np.any(np.diff(pos) <= 0):   # spec §5.2: strictly increasing (values pair by order)
        raise FormatError("corrupt .nnc file: level-2 outlier positions are not increasing")
    if sizes.sum() != n_dims - n_out:
        raise FormatError("corrupt .nnc file: level-2 grouping does not match the latent size")
    idx = sideinfo.Reader(ix).uniform(n_groups, 1 << fmt.index_bits)
    return Level2Code(pos, vals, sizes, idx)


# --- the coder protocol (coding/protocol.py): one signature for both levels ---------------
def format_from_header(hd) -> Level2Format:
    return Level2Format.from_header(hd)


def write(code: Level2Code, ctx) -> dict[str, bytes]:
    return write_sections(code, math.prod(ctx.shape), ctx.fmt)


def read(sections: dict[str, bytes], ctx) -> Level2Code:
    return read_sections(sections, math.prod(ctx.shape), ctx.fmt)


def decode_latent(code: Level2Code, ctx) -> np.ndarray:
    return decode_numpy(code, ctx.shape, ctx.seed)


def encode_latent(mean: "torch.Tensor", std: "torch.Tensor", ctx, search: Level2Search):
    return encode(mean, std, ctx.seed, ctx.fmt, search)[0]
