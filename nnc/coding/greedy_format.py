"""The level-1 coder's format, without torch: its header fields (:class:`Level1Format`),
encoder-only settings (:class:`Level1Search`, plain data), what a file carries
(:class:`Level1Code`), its sections Z1SA (or the older Z1SI) and Z1IX, the shard-count
contexts, and the numpy decoder the torch-free decoder uses. The search that chooses a code
is nnc/coding/greedy.py, which re-exports every name here (the registry's coder module)."""
from __future__ import annotations

import math
import struct
from typing import Callable

import numpy as np

from dataclasses import dataclass

from ..errors import FormatError
from . import outliers, sideinfo
from .prng import STREAM_LEVEL1, block_keys_np, candidate_words_np, words_to_gaussian_np


LEVEL = 1
SECTIONS = {"Z1SA": 2, "Z1SI": 2, "Z1IX": 3}   # tag: rank in the file (spec §1)


# --- the coder's format, settings and code -------------------------------------------------

@dataclass(frozen=True)
class Level1Format:
    """The header fields of this level (spec §2); floats as the file stores them (f32)."""
    block_w: int = 4
    block_h: int = 4               # 4x2 until late on 2026-11-30: with 10-bit shards 4x4 blocks
                                   # code the same images in 4 BD points fewer bits (fewer counts)
    shard_bits: int = 10           # 1024 candidates per shard (8 until 2026-11-30, then 9)
    max_shards: int = 15
    shard_decay: float = 0.6       # coarse to fine; refit per model and block shape (0.5 for
                                   # 4x2 blocks until late on 2026-11-30; coder_params.py)
    outlier_kl_bits: float = 16.0  # dims above this KL are sent as 16-bit values (informative)

    def __post_init__(self):          # as the header stores them: float32
        for name in ("shard_decay", "outlier_kl_bits"):
            object.__setattr__(self, name, float(np.float32(getattr(self, name))))

    @property
    def block_dims(self) -> int:
        return self.block_w * self.block_h

    @classmethod
    def from_header(cls, hd) -> "Level1Format":
        return cls(hd.l1_block_w, hd.l1_block_h, hd.l1_shard_bits, hd.l1_max_shards,
                   hd.l1_shard_decay, hd.l1_outlier_kl_bits)

    def header_fields(self) -> dict:
        return {"l1_block_w": self.block_w, "l1_block_h": self.block_h,
                "l1_shard_bits": self.shard_bits, "l1_max_shards": self.max_shards,
                "l1_shard_decay": self.shard_decay,
                "l1_outlier_kl_bits": self.outlier_kl_bits}


@dataclass(frozen=True)
class Level1Search:
    """Encoder-only: they change which shard counts and indices are chosen, not how a file
    decodes. Defaults chosen with benchmarks/coder_params.py (real files, BD-rate)."""
    rate_scale: float = 1.0        # shards = round(rate_scale * KL / shard_bits)
    first_shard_kl: float = 4.0    # blocks from this KL (bits) up get >= 1 shard
    beam: int = 16                 # beam width of the search (16 until 2026-11-30, then 24
                                   # for 4x2 blocks of 9-bit shards)
    lookahead: bool = True         # score against what later shards add
    rd_kappa: float = 1.0          # > 0: shard counts by rate-distortion (rd_encode)
    target: str = "likelihood"     # what the search approaches: "likelihood" (likelihood_of)
                                   # or "posterior" (the mean of q; before 2026-11-30)
    rd_offsets: tuple = (-1, 0, 1)  # shard counts tried around round(KL / bits)


@dataclass
class Level1Code:
    shards: np.ndarray              # (M, block rows, block cols) int64 shard counts
    indices: np.ndarray             # (blocks, max shards) int64, -1 where unused
    outlier_positions: np.ndarray   # int64, into the block-ordered latent
    outlier_values: np.ndarray      # int64 in [0, 2^16)


def decode_numpy(code: Level1Code, fmt: Level1Format, shape: tuple, seed: int) -> np.ndarray:
    """:func:`decode` in numpy (float32, (1, M, H1, W1)), for the torch-free decoder: the
    same integers, the same shared numbers up to erfinv's last bits."""
    shards = code.shards.reshape(-1)
    dims = fmt.block_dims
    sample = np.zeros((shards.size, dims), dtype=np.float32)
    for k in range(code.indices.shape[1] if code.indices.ndim == 2 else 0):
        b = np.nonzero(shards > k)[0]
        if b.size == 0:
            continue
        K = shards[b].astype(np.float64)
        d = float(fmt.shard_decay)
        w = 1.0 / K if d >= 1.0 else d ** k * (1 - d) / (1 - d ** K)
        scale = np.sqrt(w).astype(np.float32)
        keys = block_keys_np(seed, STREAM_LEVEL1 + k, b)
        g = words_to_gaussian_np(candidate_words_np(keys, code.indices[b, k][:, None], dims))
        sample[b] += g[:, 0] * scale[:, None]
    flat = sample.reshape(-1)
    flat[code.outlier_positions] = outliers.dequantize_np(code.outlier_values)
    m, h, w_ = shape
    bh, bw = fmt.block_h, fmt.block_w
    return (sample.reshape(m, h // bh, w_ // bw, bh, bw).transpose(0, 1, 3, 2, 4)
            .reshape(1, m, h, w_))


def shard_contexts(shards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Context of each shard count (M, rows, cols): the counts of the blocks above and to
    the left in the same channel (0 outside the latent)."""
    above = np.zeros_like(shards)
    left = np.zeros_like(shards)
    above[:, 1:, :] = shards[:, :-1, :]
    left[:, :, 1:] = shards[:, :, :-1]
    return above, left


# --- sections ----------------------------------------------------------------------------------
def _shard_count_rows(shards: np.ndarray, model,
                      decoded: "Callable[[np.ndarray], np.ndarray] | None" = None):
    """The model of the shard counts ``shards`` (channels, rows, cols), position by position
    in the order (block row, block column, channel): ``model.rows`` for the context (above,
    left), then ``model.update`` after each position (sideinfo.AdaptiveCounts for Z1SA, the
    fixed sideinfo.TableCounts for Z1SI).

    Encoder: returns the probability rows of all counts in that order. Decoder: pass
    ``decoded(rows) -> counts`` to read each position's counts; fills ``shards`` in place."""
    n_live, n_rows, n_cols = shards.shape
    zero = np.zeros(n_live, dtype=np.int64)
    out = []
    for row in range(n_rows):
        for col in range(n_cols):
            above = shards[:, row - 1, col] if row else zero
            left = shards[:, row, col - 1] if col else zero
            rows = model.rows(above, left)
            if decoded is None:
                out.append(rows)
            else:
                shards[:, row, col] = decoded(rows)
            model.update(above, left, shards[:, row, col])
    return np.concatenate(out) if out else np.zeros((0, model.n))


def check_sections(sections: dict) -> None:
    """The file holds this level's side information in one coding, and its indices."""
    if {"Z1SA", "Z1SI"} <= sections.keys():
        raise FormatError("corrupt .nnc file: side information is there in two codings")
    for tag in ("Z1SA" if "Z1SA" in sections else "Z1SI", "Z1IX"):
        if tag not in sections:
            raise FormatError(f"corrupt .nnc file: section {tag} is missing")


def write_sections(code: Level1Code, fmt: Level1Format, table: np.ndarray) -> dict[str, bytes]:
    """Sections Z1SA and Z1IX. Z1SA: the outliers, one live flag per channel (any block with
    a shard), then the counts of the live channels with :func:`_shard_count_rows` and
    adaptive counts."""
    shards, indices = code.shards, code.indices
    out_pos, out_vals = code.outlier_positions, code.outlier_values
    si = sideinfo.Writer()
    si.uniform(out_pos, shards.size * fmt.block_dims)
    si.uniform(out_vals, 1 << 16)
    live = shards.reshape(shards.shape[0], -1).max(1, initial=0) > 0
    si.uniform(live.astype(np.int64), 2)
    ls = shards[live]
    si.categorical(ls.transpose(1, 2, 0).ravel(),
                   _shard_count_rows(ls, sideinfo.AdaptiveCounts(table)))
    flat = shards.ravel()
    ix = sideinfo.Writer()
    # shard step k: the indices of all blocks with more than k shards, in block order
    for k in range(indices.shape[1] if indices.ndim == 2 else 0):
        ix.uniform(indices[flat > k, k], 1 << fmt.shard_bits)
    return {"Z1SA": struct.pack("<I", len(out_pos)) + si.bytes(), "Z1IX": ix.bytes()}


def read_sections(sections: dict[str, bytes], fmt: Level1Format, shape: tuple,
                  table: np.ndarray) -> Level1Code:
    """Z1SA (adaptive counts) or the older Z1SI (every channel, the fixed table), and Z1IX;
    checked against the latent's shape (M, H1, W1) (FormatError)."""
    m, h1, w1 = shape
    if h1 % fmt.block_h or w1 % fmt.block_w:
        raise FormatError("corrupt .nnc file: level-1 block size does not tile the latent")
    rows, cols = h1 // fmt.block_h, w1 // fmt.block_w
    adaptive = "Z1SA" in sections
    side, ix = sections["Z1SA" if adaptive else "Z1SI"], sections["Z1IX"]
    if table.shape[0] != fmt.max_shards + 1:
        raise FormatError("unsupported .nnc file: its level-1 shard range does not match "
                          "the model's table")
    if len(side) < 4:
        raise FormatError("corrupt .nnc file: level-1 side information is too short")
    (n_out,) = struct.unpack_from("<I", side)
    n1 = m * rows * cols * fmt.block_dims
    if n_out > n1:
        raise FormatError("corrupt .nnc file: more level-1 outliers than latents")
    sideinfo.need_bits(side[4:], n_out * (math.log2(max(n1, 2)) + 16), "level-1 side information")
    r = sideinfo.Reader(side[4:])
    out_pos = r.uniform(n_out, n1)
    out_vals = r.uniform(n_out, 1 << 16)
    # sorted neighbours, not np.unique (which imports numpy.ma: 0.02 s of a decode)
    ordered = np.sort(np.asarray(out_pos, dtype=np.int64))
    if (ordered[1:] == ordered[:-1]).any():
        raise FormatError("corrupt .nnc file: repeated level-1 outlier positions")
    shards = np.zeros((m, rows, cols), dtype=np.int64)
    if adaptive:
        live = r.uniform(m, 2).astype(bool)
        ls = np.zeros((int(live.sum()), rows, cols), dtype=np.int64)
        _shard_count_rows(ls, sideinfo.AdaptiveCounts(table), r.categorical)
        shards[live] = ls
    else:
        _shard_count_rows(shards, sideinfo.TableCounts(table), r.categorical)
    flat = shards.ravel()
    sideinfo.need_bits(ix, int(flat.sum()) * fmt.shard_bits, "level-1 index")
    kmax = int(flat.max()) if flat.size else 0
    indices = np.full((flat.size, kmax), -1, dtype=np.int64)
    rix = sideinfo.Reader(ix)
    for k in range(kmax):
        sel = flat > k
        indices[sel, k] = rix.uniform(int(sel.sum()), 1 << fmt.shard_bits)
    return Level1Code(shards, indices, out_pos, out_vals)


# --- the block layout: (1, M, H1, W1) <-> (n_blocks, bh*bw), channel-major ---
def to_blocks(t: "torch.Tensor", bh: int, bw: int) -> "torch.Tensor":
    _, m, h, w = t.shape
    return (t.reshape(m, h // bh, bh, w // bw, bw).permute(0, 1, 3, 2, 4)
             .reshape(m * (h // bh) * (w // bw), bh * bw))


def from_blocks(b: "torch.Tensor", m: int, h: int, w: int, bh: int, bw: int) -> "torch.Tensor":
    return (b.reshape(m, h // bh, w // bw, bh, bw).permute(0, 1, 3, 2, 4)
             .reshape(1, m, h, w))


# --- the coder protocol (coding/protocol.py): one signature for both levels ---------------
def format_from_header(hd) -> Level1Format:
    return Level1Format.from_header(hd)


def write(code: Level1Code, ctx) -> dict[str, bytes]:
    return write_sections(code, ctx.fmt, ctx.table)


def read(sections: dict[str, bytes], ctx) -> Level1Code:
    return read_sections(sections, ctx.fmt, ctx.shape, ctx.table)


def decode_latent(code: Level1Code, ctx) -> np.ndarray:
    return decode_numpy(code, ctx.fmt, ctx.shape, ctx.seed)
