"""The integers of an .nnc file, read and checked without the network (and without torch).

A file's container, side information and indices are integers, and everything a decoder
must refuse about a file can be decided from them: :func:`read_codes` parses the container,
decodes every entropy-coded section and checks that each is consistent with the header and
with the others, so that a bad file is refused before any model is loaded (in well under a
second and with the memory of numpy and constriction, not torch's). The writers of the
same sections live here too, beside their readers. The model enters only through its
manifest entry (level-1 and level-2 channel counts, the weights' sha256) and its shard-count
table (``weights/<name>.shard-table.npy``, sha256 in the manifest).

    bytes ─container─▶ sections ─side information─▶ group sizes, shard counts, outliers
          ─indices─▶ FileCodes (everything codec.decompress needs besides the network)
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from . import container
from .coding import sideinfo
from .errors import FormatError, ModelError
from .image_io import MAX_ICC_BYTES, compute_padding

STRIDE2 = 64          # image pixels per level-2 latent pixel (the padding multiple)
STRIDE1 = 16          # image pixels per level-1 latent pixel


@dataclass
class Level2Code:
    outlier_positions: np.ndarray   # int64, sorted, into the flattened latent
    outlier_values: np.ndarray      # int64 in [0, 2^16)
    group_sizes: np.ndarray         # int64 >= 1, over the non-outlier dims in order
    indices: np.ndarray             # int64 in [0, 2^index_bits), one per group


@dataclass
class FileCodes:
    """Everything in a file but the network's part: the decoder's integers."""
    header: container.Header
    level2: Level2Code
    shape2: tuple[int, int, int]    # (G, H/64, W/64)
    shape1: tuple[int, int, int]    # (M, H/16, W/16)
    shards: np.ndarray              # level-1 shard count per block, block order
    indices: np.ndarray             # (blocks, max shards), -1 where unused
    l1_outlier_positions: np.ndarray
    l1_outlier_values: np.ndarray
    alpha: np.ndarray | None        # (height, width) uint8
    icc: bytes | None = None        # the colour profile (iCCP), as the input carried it


def weights_dir() -> Path:
    import nnc.weights
    return Path(nnc.weights.__file__).parent


def manifest(directory: Path | None = None) -> dict:
    """The weights manifest (``weights/manifest.json``): models by name, without torch."""
    path = (directory or weights_dir()) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no weights manifest at {path}; reinstall nnc") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the weights manifest {path}: {e}") from None


@lru_cache(maxsize=8)
def model_entry(name: str) -> tuple[dict, np.ndarray]:
    """The manifest entry of an installed model and its shard-count table (checked against
    the sha256 the manifest records), without loading the weights."""
    m = manifest()
    entry = m["models"].get(name)
    if entry is None:
        raise ModelError(missing_model(name, m, "this file needs model"))
    table_file = weights_dir() / entry.get("shard_table_file", "")
    try:
        raw = table_file.read_bytes()
    except OSError:
        raise ModelError(f"the shard-count table of model {name!r} ({table_file}) is "
                         "missing: " + _how_to_restore(name, m)) from None
    if hashlib.sha256(raw).hexdigest() != entry.get("shard_table_sha256"):
        raise ModelError(f"the shard-count table of model {name!r} ({table_file}) is "
                         "corrupt (sha256 mismatch): " + _how_to_restore(name, m))
    table = np.load(io.BytesIO(raw), allow_pickle=False)
    return entry, np.asarray(table, dtype=np.int64)


def missing_model(name: str, m: dict, lead: str = "") -> str:
    """What to say about a model that is not installed: which are, and how to get it."""
    return (f"{lead or 'model'} {name!r} is not installed here (installed: "
            f"{', '.join(m['models'])}; see 'nnc models'). A model trained with 'nnc train "
            f"--export {name}' is installed by copying {name}.pt, {name}.shard-table.npy "
            f"and its entry in manifest.json from the weights folder where it was made into "
            f"{weights_dir()}")


def _how_to_restore(name: str, m: dict) -> str:
    return (f"reinstall nnc if {name!r} shipped with it ('pip install --force-reinstall "
            f"nnc', or from the repository), or copy the file again from the weights folder "
            f"where it was made (a model from 'nnc train --export {name}')")


def read_codes(data: bytes, max_pixels: int) -> FileCodes:
    """Parse and check a whole file down to its integers (see the module docstring).
    Raises FormatError for a bad file and ModelError for a model that is not installed."""
    c = container.read(data)
    hd = c.header
    if hd.width * hd.height > max_pixels:
        raise FormatError(f"the file declares {hd.width}x{hd.height} pixels, over the limit "
                          f"of {max_pixels} (raise it with --max-pixels if this is intended)")
    # side information: Z2SA / Z1SA, or Z2SI / Z1SI in files from nnc before 2026-11-22
    z2si = "Z2SA" if "Z2SA" in c.sections else "Z2SI"
    z1si = "Z1SA" if "Z1SA" in c.sections else "Z1SI"
    if {"Z2SA", "Z2SI"} <= c.sections.keys() or {"Z1SA", "Z1SI"} <= c.sections.keys():
        raise FormatError("corrupt .nnc file: side information is there in two codings")
    for tag in (z2si, "Z2IX", z1si, "Z1IX"):
        if tag not in c.sections:
            raise FormatError(f"corrupt .nnc file: section {tag} is missing")
    if hd.alpha and "ALPH" not in c.sections:
        raise FormatError("corrupt .nnc file: the alpha section is missing")
    entry, table = model_entry(hd.model_name)
    if entry["sha256"] != hd.weights_sha256.hex():
        raise ModelError(f"this file was made with other weights for model "
                         f"{hd.model_name!r} than the ones installed")
    g, m = int(entry["config"]["g"]), int(entry["config"]["m"])
    ph, pw = compute_padding(hd.height, hd.width, STRIDE2)
    H, W = hd.height + ph, hd.width + pw
    h2, w2, h1, w1 = H // STRIDE2, W // STRIDE2, H // STRIDE1, W // STRIDE1
    if h1 % hd.l1_block_h or w1 % hd.l1_block_w:
        raise FormatError("corrupt .nnc file: level-1 block size does not tile the latent")
    n2 = g * h2 * w2
    bh, bw = hd.l1_block_h, hd.l1_block_w
    try:
        code2 = _read_level2(c.sections[z2si], c.sections["Z2IX"], n2, hd,
                             chained=z2si == "Z2SA")
        shards, indices, out_pos, out_vals = _read_level1(
            c.sections[z1si], c.sections["Z1IX"], m, h1 // bh, w1 // bw, hd, table,
            adaptive=z1si == "Z1SA")
    except (FormatError, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as e:   # constriction refuses streams that do not decode (its Rust
        # panics arrive as pyo3's PanicException, a BaseException)
        raise FormatError(f"corrupt .nnc file: entropy-coded data does not decode ({e})") \
            from None
    alpha = None
    if hd.alpha:
        try:   # never inflate more than the plane's size (zlib bombs)
            raw = zlib.decompressobj().decompress(c.sections["ALPH"], hd.width * hd.height + 1)
        except zlib.error:
            raise FormatError("corrupt .nnc file: the alpha plane does not decompress") from None
        if len(raw) != hd.width * hd.height:
            raise FormatError("corrupt .nnc file: the alpha plane has the wrong size")
        alpha = np.frombuffer(raw, dtype=np.uint8).reshape(hd.height, hd.width).copy()
    return FileCodes(hd, code2, (g, h2, w2), (m, h1, w1), shards, indices, out_pos, out_vals,
                     alpha, read_icc(c.sections.get("iCCP")))


def write_icc(profile: bytes) -> bytes:
    """Section iCCP (spec §6b): the colour profile, deflated."""
    if len(profile) > MAX_ICC_BYTES:
        raise ValueError("colour profile over 16 MiB")
    return zlib.compress(profile, 9)


def read_icc(section: bytes | None) -> bytes | None:
    if section is None:
        return None
    try:   # never inflate more than the format allows
        raw = zlib.decompressobj().decompress(section, MAX_ICC_BYTES + 1)
    except zlib.error:
        raise FormatError("corrupt .nnc file: the colour profile (iCCP) does not "
                          "decompress") from None
    if len(raw) > MAX_ICC_BYTES:
        raise FormatError("corrupt .nnc file: the colour profile (iCCP) is over 16 MiB")
    return raw or None


def _write_level2(code: Level2Code, n_dims: int, p) -> tuple[bytes, bytes]:
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
    s0, s1 = sideinfo.choose_scale(sizes, means, p.l2_max_group - 1)
    si.laplace(sizes, means, s0, s1, p.l2_max_group - 1)
    side = struct.pack("<IIBBB", n_out, n_groups, s0, s1, m0) + si.bytes()
    ix = sideinfo.Writer()
    ix.uniform(code.indices, 1 << p.l2_index_bits)
    return side, ix.bytes()


def _read_level2(side: bytes, ix: bytes, n_dims: int, p: container.Header,
                 chained: bool = True) -> Level2Code:
    """Z2SA (``chained``: each size's mean is the previous size) or the older Z2SI (every
    mean is m0)."""
    if len(side) < 11:
        raise FormatError("corrupt .nnc file: level-2 side information is too short")
    n_out, n_groups, s0, s1, m0 = struct.unpack_from("<IIBBB", side)
    if n_out > n_dims or n_groups > n_dims or s0 >= len(sideinfo.S0_GRID) \
            or s1 >= len(sideinfo.S1_GRID):
        raise FormatError("corrupt .nnc file: level-2 counts are out of range")
    if n_groups * p.l2_max_group < n_dims - n_out:
        raise FormatError("corrupt .nnc file: too few level-2 groups for the latent")
    # work bounded by the bytes given: a section must be long enough for what it claims
    _need_bits(ix, n_groups * p.l2_index_bits, "level-2 index")
    _need_bits(side[11:], n_out * (math.log2(max(n_dims, 2)) + 16), "level-2 side information")
    r = sideinfo.Reader(side[11:])
    pos = r.uniform(n_out, n_dims)
    vals = r.uniform(n_out, 1 << 16)
    if chained:
        sizes = r.laplace_chain(n_groups, m0, s0, s1, p.l2_max_group - 1) + 1
    else:
        sizes = r.laplace(np.full(n_groups, float(m0)), s0, s1, p.l2_max_group - 1) + 1
    if len(np.unique(pos)) != n_out or sizes.sum() != n_dims - n_out:
        raise FormatError("corrupt .nnc file: level-2 grouping does not match the latent size")
    idx = sideinfo.Reader(ix).uniform(n_groups, 1 << p.l2_index_bits)
    return Level2Code(np.sort(pos), vals, sizes, idx)


RANGE_CODER_SLACK_BITS = 64    # a range-coded stream may end up to two words early


def _need_bits(section: bytes, bits: float, what: str) -> None:
    """Refuse a section too short for ``bits`` bits of uniformly coded symbols (which cost
    exactly their bits): the range decoder would read zeros past its end, and a crafted
    file could make the decoder do work and allocate memory that its bytes do not pay for."""
    if 8 * len(section) + RANGE_CODER_SLACK_BITS < bits:
        raise FormatError(f"corrupt .nnc file: the {what} section holds {len(section)} "
                          f"bytes, too few for the {math.ceil(bits)} bits it must carry")


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


def _write_level1(shards: np.ndarray, indices: np.ndarray, p,
                  table: np.ndarray, out_pos: np.ndarray, out_vals: np.ndarray):
    """Sections Z1SA and Z1IX. shards: (M, block rows, block cols); indices: (n_blocks,
    max shards); outliers: positions into the block-ordered latent and their 16-bit values.
    Z1SA: the outliers, one live flag per channel (any block with a shard), then the counts
    of the live channels with :func:`_shard_count_rows` and adaptive counts."""
    si = sideinfo.Writer()
    si.uniform(out_pos, shards.size * p.l1_block_w * p.l1_block_h)
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
        ix.uniform(indices[flat > k, k], 1 << p.l1_shard_bits)
    return struct.pack("<I", len(out_pos)) + si.bytes(), ix.bytes()


def _read_level1(side: bytes, ix: bytes, m: int, rows: int, cols: int, p: container.Header,
                 table: np.ndarray, adaptive: bool = True):
    """Z1SA (``adaptive``) or the older Z1SI (every channel, the fixed table) and Z1IX."""
    if table.shape[0] != p.l1_max_shards + 1:
        raise FormatError("unsupported .nnc file: its level-1 shard range does not match "
                          "the model's table")
    if len(side) < 4:
        raise FormatError("corrupt .nnc file: level-1 side information is too short")
    (n_out,) = struct.unpack_from("<I", side)
    n1 = m * rows * cols * p.l1_block_w * p.l1_block_h
    if n_out > n1:
        raise FormatError("corrupt .nnc file: more level-1 outliers than latents")
    _need_bits(side[4:], n_out * (math.log2(max(n1, 2)) + 16), "level-1 side information")
    r = sideinfo.Reader(side[4:])
    out_pos = r.uniform(n_out, n1)
    out_vals = r.uniform(n_out, 1 << 16)
    if len(np.unique(out_pos)) != n_out:
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
    _need_bits(ix, int(flat.sum()) * p.l1_shard_bits, "level-1 index")
    kmax = int(flat.max()) if flat.size else 0
    indices = np.full((flat.size, kmax), -1, dtype=np.int64)
    rix = sideinfo.Reader(ix)
    for k in range(kmax):
        sel = flat > k
        indices[sel, k] = rix.uniform(int(sel.sum()), 1 << p.l1_shard_bits)
    return flat, indices, out_pos, out_vals
