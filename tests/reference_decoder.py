"""An independent decoder of .nnc files, written from the spec alone.

It follows formats/nnc-v1.md (container, header, sections) and formats/entropy-coding.md
(the range decoder and its models) and uses nothing but the Python standard library and
numpy: no constriction, no torch, nothing from the ``nnc`` package (a test checks this).
It does not run networks: it produces the integers a file holds (header fields, level-2
outliers, group sizes and indices, level-1 outliers, shard counts and indices, the alpha
plane), which tests/test_reference_decoder.py compares with nnc's own reader. Comments
cite the spec: "§n" is nnc-v1.md, "§En" is entropy-coding.md.

None of the entropy models depends on a network output: the level-2 group sizes' Laplace
parameters come from integers in the file (m0, the previous size) and the fixed grids S0,
S1 (§5.1), the shard counts' tables from the model's shipped count table (§7).

    decode(data, weights_dir) -> Codes        (raises Refused for a file a decoder refuses)
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class Refused(Exception):
    """The file is one a decoder must refuse (nnc-v1.md §9)."""


# ---------------------------------------------------------------------------------------
# §E7 exp: the exponential the quantized Laplace uses, operation by operation
# ---------------------------------------------------------------------------------------

def _f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


_LN2HI = _f64(0x3FE62E42FEE00000)
_LN2LO = _f64(0x3DEA39EF35793C76)
_INVLN2 = _f64(0x3FF71547652B82FE)
_P1 = _f64(0x3FC555555555553E)
_P2 = _f64(0xBF66C16C16BEBD93)
_P3 = _f64(0x3F11566AAF25DE2C)
_P4 = _f64(0xBEBBBD41C5D26BF1)
_P5 = _f64(0x3E66376972BEA4D0)
_EXP_OVERFLOW = 709.782712893383973096
_EXP_UNDERFLOW = -745.13321910194110842


def exp_e7(x: float) -> float:
    """§E7. Python floats are binary64 with round-to-nearest-even, and CPython evaluates
    every operation separately (no fused multiply-add), as the spec requires."""
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    sign = bits >> 63
    hx = (bits >> 32) & 0x7FFFFFFF              # high word of |x|
    if hx >= 0x4086232B:                        # |x| >= 708.39...
        if x != x:
            return x
        if x > _EXP_OVERFLOW:
            return math.inf
        if x < _EXP_UNDERFLOW:
            return 0.0
    if hx > 0x3FD62E42:                         # |x| > 0.5 ln 2
        if hx >= 0x3FF0A2B2:                    # |x| >= 1.5 ln 2
            k = int(_INVLN2 * x + (-0.5 if sign else 0.5))   # truncation toward zero
        else:
            k = -1 if sign else 1
        hi = x - k * _LN2HI                     # k * LN2HI is exact
        lo = k * _LN2LO
        r = hi - lo
    elif hx > 0x3E300000:                       # |x| > 2^-28
        k, hi, lo, r = 0, x, 0.0, x
    else:
        return 1.0 + x
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 + ((r * c) / (2.0 - c) - lo + hi)
    return y if k == 0 else math.ldexp(y, k)    # y * 2^k, rounded once


# ---------------------------------------------------------------------------------------
# §E3-§E5 the models: each gives the symbol whose interval [C(s), C(s+1)) holds q
# ---------------------------------------------------------------------------------------

PRECISION = 24
ONE = 1 << PRECISION                            # 2^24: every model's total


class Uniform:
    """§E3: 2 <= n <= 2^24; C(s) = s * floor(2^24 / n), the last symbol to 2^24."""

    def __init__(self, n: int):
        assert 2 <= n <= ONE
        self.n, self.w = n, ONE // n

    def lookup(self, q: int) -> tuple[int, int, int]:
        s = min(q // self.w, self.n - 1)
        return s, s * self.w, ONE if s == self.n - 1 else (s + 1) * self.w


class Categorical:
    """§E4: leaky quantization of binary64 weights (constriction's Categorical with
    perfect=False): S_i left-to-right partial sums, f = (2^24 - n) / S_n,
    C(i) = trunc(S_i * f) + i, C(n) = 2^24."""

    def __init__(self, weights):
        n = len(weights)
        if n < 2:
            raise Refused("a categorical model needs two symbols or more")
        s, partial = 0.0, []
        for w in weights:
            partial.append(s)
            s = s + float(w)
        if not (s > 0 and math.isfinite(s)):
            raise Refused("a categorical model's weights do not sum to a positive number")
        f = float(ONE - n) / s
        self.c = [int(p * f) + i for i, p in enumerate(partial)] + [ONE]

    def lookup(self, q: int) -> tuple[int, int, int]:
        c = self.c
        lo, hi = 0, len(c) - 2                  # the largest s with C(s) <= q
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if c[mid] <= q:
                lo = mid
            else:
                hi = mid - 1
        return lo, c[lo], c[lo + 1]


class QuantizedLaplace:
    """§E5: the Laplace(mean, scale) CDF F on the support {0, ..., vmax}, leakily quantized:
    C(0) = 0, C(s) = trunc(fw * F(s - 1/2)) + s, C(vmax + 1) = 2^24, fw = 2^24 - 1 - vmax."""

    def __init__(self, mean: float, scale: float, vmax: int):
        assert scale > 0 and vmax >= 1
        self.mean, self.scale, self.vmax = float(mean), float(scale), vmax
        self.fw = float((ONE - 1) - vmax)

    def cdf(self, x: float) -> float:           # §E5, F
        if x <= self.mean:
            return 0.5 * exp_e7((x - self.mean) / self.scale)
        return 1.0 - 0.5 * exp_e7(-(x - self.mean) / self.scale)

    def c(self, s: int) -> int:
        if s <= 0:
            return 0
        if s > self.vmax:
            return ONE
        return int(self.fw * self.cdf(s - 0.5)) + s

    def lookup(self, q: int) -> tuple[int, int, int]:
        lo, hi = 0, self.vmax                   # the largest s with C(s) <= q
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.c(mid) <= q:
                lo = mid
            else:
                hi = mid - 1
        return lo, self.c(lo), self.c(lo + 1)


# ---------------------------------------------------------------------------------------
# §E1-§E2 the stream and the range decoder
# ---------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


class RangeDecoder:
    def __init__(self, payload: bytes):
        if len(payload) % 4:                    # §E1
            raise Refused("a range-coded stream's length is not a multiple of 4 bytes")
        self.words = struct.unpack(f"<{len(payload) // 4}I", payload)
        self.next = 0
        self.lower, self.range = 0, MASK64      # §E2 initial state
        self.point = (self._word() << 32) | self._word()

    def _word(self) -> int:                     # §E2: past the end, words read as 0
        w = self.words[self.next] if self.next < len(self.words) else 0
        self.next += 1
        return w

    def decode(self, model) -> int:             # §E2 steps 1-5
        scale = self.range >> PRECISION
        q = ((self.point - self.lower) & MASK64) // scale
        if q >= ONE:
            raise Refused("entropy-coded data does not decode (quantile out of range)")
        s, c_lo, c_hi = model.lookup(q)
        self.lower = (self.lower + scale * c_lo) & MASK64
        self.range = scale * (c_hi - c_lo)
        if self.range < (1 << 32):
            self.lower = (self.lower << 32) & MASK64
            self.range <<= 32
            self.point = ((self.point << 32) & MASK64) | self._word()
        return s

    def uniform(self, count: int, n: int) -> list[int]:
        """§E3 / §E6: ``count`` values in [0, n); n = 1 codes nothing; n > 2^24 is split."""
        if n == 1 or count == 0:
            return [0] * count
        if n > ONE:                             # §E6
            high = self.uniform(count, -(-n // SPLIT))
            low = self.uniform(count, SPLIT)
            v = [h * SPLIT + lo for h, lo in zip(high, low)]
            if any(x >= n for x in v):
                raise Refused("a split uniform value is out of range")
            return v
        m = Uniform(n)
        return [self.decode(m) for _ in range(count)]


SPLIT = 1 << 12

# ---------------------------------------------------------------------------------------
# §1-§2 container and header
# ---------------------------------------------------------------------------------------

MAGIC = b"\x89NNC\r\n\x1a\n"
VERSIONS = (1, 2)
KNOWN = ("HEAD", "Z2SA", "Z2SI", "Z2IX", "Z1SA", "Z1SI", "Z1IX", "ALPH", "iCCP", "eXIf",
         "xMPd", "END ")
RANK = {"Z2SA": 0, "Z2SI": 0, "Z2IX": 1, "Z1SA": 2, "Z1SI": 2, "Z1IX": 3, "ALPH": 4,
        "iCCP": 5, "eXIf": 6, "xMPd": 7}        # §1 order (§6b, §6c: after Z1IX and ALPH)
MAX_ICC = 16 << 20                              # §6b (and §6c's limit)
HEAD_FIXED = struct.Struct("<IIBBfIBBBBffBHff")  # §2, up to name_length


@dataclass
class Header:
    width: int
    height: int
    channels: int
    alpha: int
    quality: float
    seed: int
    l1_block_w: int
    l1_block_h: int
    l1_shard_bits: int
    l1_max_shards: int
    l1_shard_decay: float
    l1_outlier_kl_bits: float
    l2_index_bits: int
    l2_max_group: int
    l2_group_kl_bits: float
    l2_outlier_kl_bits: float
    model_name: str
    weights_sha256: bytes


def read_header(p: bytes) -> Header:            # §2
    if len(p) < HEAD_FIXED.size + 1:
        raise Refused("HEAD is too short")
    vals = HEAD_FIXED.unpack_from(p)
    n = p[HEAD_FIXED.size]
    end = HEAD_FIXED.size + 1 + n
    if len(p) != end + 32:
        raise Refused("HEAD has the wrong length")
    try:
        name = p[HEAD_FIXED.size + 1:end].decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("the model name is not UTF-8") from None
    h = Header(*vals, model_name=name, weights_sha256=p[end:])
    ok = (1 <= h.width <= 65536 and 1 <= h.height <= 65536 and h.channels in (1, 3)
          and 0.0 <= h.quality <= 1.0 and 1 <= h.l1_block_w <= 16 and 1 <= h.l1_block_h <= 16
          and 1 <= h.l1_shard_bits <= 16 and 1 <= h.l1_max_shards <= 63
          and 0.01 <= h.l1_shard_decay <= 1.0 and 1 <= h.l2_index_bits <= 20
          and 2 <= h.l2_max_group <= 4096 and 1 <= len(name.encode("utf-8")) <= 64)
    if not ok:                                  # §2 ranges (comparisons with NaN fail)
        raise Refused("a header field is out of range")
    return h


def read_container(data: bytes) -> tuple[int, Header, dict[str, bytes]]:
    """§1: signature, version, sections with their CRCs; the known sections by tag."""
    if len(data) < 10 or data[:8] != MAGIC:
        raise Refused("wrong signature")
    (version,) = struct.unpack_from("<H", data, 8)
    if version not in VERSIONS:
        raise Refused(f"unknown version {version}")
    pos, previous, header, sections, first = 10, 0, None, {}, True
    while True:
        if pos + 8 > len(data):
            raise Refused("truncated: a section header is cut off")
        raw_tag = data[pos:pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + length + 4
        if end > len(data):
            raise Refused("truncated: a section is cut off")
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        # version 1: every CRC from the standard start; version 2: chained (§1)
        if zlib.crc32(raw_tag + payload, previous if version >= 2 else 0) != crc:
            raise Refused("CRC mismatch")
        previous = crc
        try:
            tag = raw_tag.decode("ascii")
        except UnicodeDecodeError:
            raise Refused("a tag is not ASCII") from None
        if first:
            if tag != "HEAD":
                raise Refused("the first section is not HEAD")
            header, first = read_header(payload), False
        elif tag == "END ":
            if end != len(data):
                raise Refused("bytes after END")
            break
        elif tag == "HEAD" or tag in sections:
            raise Refused(f"{tag!r} appears twice")
        elif tag not in KNOWN:
            if "A" <= tag[0] <= "Z":            # critical and unknown
                raise Refused(f"unknown critical section {tag!r}")
        else:                                   # known: in the order of §1
            if any(RANK[t] >= RANK[tag] for t in sections):
                raise Refused(f"{tag!r} is out of order")
            sections[tag] = payload
        pos = end
    if "ALPH" in sections and not header.alpha:
        raise Refused("ALPH in a file without alpha")
    return version, header, sections


# ---------------------------------------------------------------------------------------
# §5 the entropy-coded sections
# ---------------------------------------------------------------------------------------

S0 = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
S1 = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)   # §5.1 grids (binary64 of these decimals)
SLACK_BITS = 64


def need_bits(stream: bytes, bits: float) -> None:   # §5.6
    if 8 * len(stream) + SLACK_BITS < bits:
        raise Refused("a section is too short for the symbols it must carry")


@dataclass
class Codes:
    version: int
    header: Header
    side2: str                   # "Z2SA" or "Z2SI"
    side1: str                   # "Z1SA" or "Z1SI"
    shape2: tuple[int, int, int]
    shape1: tuple[int, int, int]
    l2_outlier_positions: np.ndarray   # in file order
    l2_outlier_values: np.ndarray
    group_sizes: np.ndarray
    l2_indices: np.ndarray
    l1_outlier_positions: np.ndarray
    l1_outlier_values: np.ndarray
    live: np.ndarray | None      # Z1SA's live flags per channel
    shards: np.ndarray           # per block, block order (channel, block row, block column)
    l1_indices: np.ndarray       # (blocks, max shards), -1 where unused
    alpha: np.ndarray | None


def read_level2(side: bytes, ix: bytes, n2: int, h: Header, chained: bool):
    """§5.2 Z2SA (``chained``) / Z2SI, §5.3 Z2IX, §5.6 length checks."""
    if len(side) < 11:
        raise Refused("level-2 side information is too short")
    n_out, n_groups, s0, s1, m0 = struct.unpack_from("<IIBBB", side)
    if n_out > n2 or n_groups > n2 or s0 >= len(S0) or s1 >= len(S1):
        raise Refused("level-2 counts are out of range")
    if n_groups * h.l2_max_group < n2 - n_out:
        raise Refused("too few level-2 groups for the latent")
    need_bits(ix, n_groups * h.l2_index_bits)
    need_bits(side[11:], n_out * (math.log2(max(n2, 2)) + 16))
    d = RangeDecoder(side[11:])
    pos = d.uniform(n_out, n2)
    vals = d.uniform(n_out, 1 << 16)
    vmax, sizes, prev = h.l2_max_group - 1, [], float(m0)
    for _ in range(n_groups):
        mean = prev if chained else float(m0)
        scale = S0[s0] + S1[s1] * mean          # binary64: one product, one sum (§5.2)
        v = d.decode(QuantizedLaplace(mean, scale, vmax))
        sizes.append(v + 1)
        prev = float(v)
    if any(b <= a for a, b in zip(pos, pos[1:])):     # §5.2, §9 item 20
        raise Refused("level-2 outlier positions are not strictly increasing")
    if sum(sizes) != n2 - n_out:
        raise Refused("level-2 grouping does not match the latent size")
    idx = RangeDecoder(ix).uniform(n_groups, 1 << h.l2_index_bits)
    return pos, vals, sizes, idx


def initial_counts(table: np.ndarray) -> np.ndarray:
    """§5.4: C0 = max(1, rint(1024 * fl((T + 1/2) / rowsum(T + 1/2)))), per context row."""
    t = table.astype(np.float64) + 0.5
    total = t.sum(-1, keepdims=True)              # exact: half-integers, far below 2^53
    return np.maximum(np.rint((t / total) * 1024.0), 1).astype(np.int64)


def read_level1(side: bytes, ix: bytes, m: int, rows: int, cols: int, h: Header,
                table: np.ndarray, adaptive: bool):
    """§5.4 Z1SA (``adaptive``) / Z1SI, §5.5 Z1IX, §5.6 length checks."""
    K = h.l1_max_shards
    if table.shape != (K + 1, K + 1, K + 1):
        raise Refused("the file's l1_max_shards does not match the model's table")
    if len(side) < 4:
        raise Refused("level-1 side information is too short")
    (n_out,) = struct.unpack_from("<I", side)
    n1 = m * rows * cols * h.l1_block_w * h.l1_block_h
    if n_out > n1:
        raise Refused("more level-1 outliers than latents")
    need_bits(side[4:], n_out * (math.log2(max(n1, 2)) + 16))
    d = RangeDecoder(side[4:])
    pos = d.uniform(n_out, n1)
    vals = d.uniform(n_out, 1 << 16)
    if len(set(pos)) != n_out:
        raise Refused("repeated level-1 outlier positions")
    shards = np.zeros((m, rows, cols), dtype=np.int64)
    live = None
    if adaptive:
        live = np.array(d.uniform(m, 2), dtype=np.int64)
        channels = [c for c in range(m) if live[c]]
        counts = initial_counts(table)
    else:
        channels = list(range(m))
    for r in range(rows):                        # order: block row, block column, channel
        for col in range(cols):
            ctx = [(min(int(shards[c, r - 1, col]) if r else 0, K),
                    min(int(shards[c, r, col - 1]) if col else 0, K)) for c in channels]
            if adaptive:    # every row of this position before any of its updates
                rows_w = [counts[a, b].astype(np.float64) for a, b in ctx]
            else:
                rows_w = [table[a, b].astype(np.float64) + 0.5 for a, b in ctx]
            for c, w in zip(channels, rows_w):
                shards[c, r, col] = d.decode(Categorical(w))
            if adaptive:
                for c, (a, b) in zip(channels, ctx):
                    counts[a, b, shards[c, r, col]] += 16
    flat = shards.ravel()
    need_bits(ix, int(flat.sum()) * h.l1_shard_bits)
    kmax = int(flat.max()) if flat.size else 0
    indices = np.full((flat.size, kmax), -1, dtype=np.int64)
    dix = RangeDecoder(ix)
    for k in range(kmax):                         # shard step k, blocks in block order
        sel = np.nonzero(flat > k)[0]
        indices[sel, k] = dix.uniform(len(sel), 1 << h.l1_shard_bits)
    return pos, vals, live, flat, indices


# ---------------------------------------------------------------------------------------
# §7 model data, and the whole file
# ---------------------------------------------------------------------------------------

def model_data(weights_dir: Path, name: str) -> tuple[dict, np.ndarray]:
    """§7: the manifest entry (channel counts, weights' sha256) and the count table T."""
    manifest = json.loads((Path(weights_dir) / "manifest.json").read_text())
    entry = manifest["models"].get(name)
    if entry is None:
        raise Refused(f"model {name!r} is not installed")
    raw = (Path(weights_dir) / entry["shard_table_file"]).read_bytes()
    if hashlib.sha256(raw).hexdigest() != entry["shard_table_sha256"]:
        raise Refused(f"the count table of {name!r} is corrupt")
    return entry, np.load(io.BytesIO(raw), allow_pickle=False).astype(np.int64)


def decode(data: bytes, weights_dir, max_pixels: int = 100_000_000) -> Codes:
    version, h, secs = read_container(data)
    if h.width * h.height > max_pixels:
        raise Refused("more pixels than this reader accepts")
    if {"Z2SA", "Z2SI"} <= secs.keys() or {"Z1SA", "Z1SI"} <= secs.keys():
        raise Refused("side information in two codings")
    side2 = "Z2SA" if "Z2SA" in secs else "Z2SI"
    side1 = "Z1SA" if "Z1SA" in secs else "Z1SI"
    for tag in (side2, "Z2IX", side1, "Z1IX") + (("ALPH",) if h.alpha else ()):
        if tag not in secs:
            raise Refused(f"section {tag} is missing")
    entry, table = model_data(weights_dir, h.model_name)
    if entry["sha256"] != h.weights_sha256.hex():
        raise Refused("the file was made with other weights")
    g, m = int(entry["config"]["g"]), int(entry["config"]["m"])
    H, W = h.height + (-h.height) % 64, h.width + (-h.width) % 64      # §3 padding
    h2, w2, h1, w1 = H // 64, W // 64, H // 16, W // 16
    if h1 % h.l1_block_h or w1 % h.l1_block_w:
        raise Refused("the level-1 block size does not tile the latent")
    n2 = g * h2 * w2
    pos2, vals2, sizes, idx2 = read_level2(secs[side2], secs["Z2IX"], n2, h,
                                           chained=side2 == "Z2SA")
    pos1, vals1, live, shards, idx1 = read_level1(
        secs[side1], secs["Z1IX"], m, h1 // h.l1_block_h, w1 // h.l1_block_w, h, table,
        adaptive=side1 == "Z1SA")
    alpha = None
    if h.alpha:                                   # §6: zlib, exactly width x height bytes
        try:
            raw = zlib.decompressobj().decompress(secs["ALPH"], h.width * h.height + 1)
        except zlib.error:
            raise Refused("the alpha plane does not inflate") from None
        if len(raw) != h.width * h.height:
            raise Refused("the alpha plane has the wrong size")
        alpha = np.frombuffer(raw, dtype=np.uint8).reshape(h.height, h.width)
    for tag in ("iCCP", "eXIf", "xMPd"):          # §6b, §6c (checked, not returned)
        if tag not in secs:
            continue
        d = zlib.decompressobj()
        try:
            raw = d.decompress(secs[tag], MAX_ICC + 1)
        except zlib.error:
            raise Refused(f"{tag} does not inflate") from None
        if len(raw) > MAX_ICC:
            raise Refused(f"{tag} is too large")
        if not d.eof or d.unused_data or not raw:
            raise Refused(f"{tag} is not one whole, non-empty zlib stream")
        if tag == "eXIf" and raw[:4] not in (b"II*\0", b"MM\0*"):
            raise Refused("eXIf does not start with a TIFF byte-order mark")
    i64 = lambda v: np.asarray(v, dtype=np.int64)          # noqa: E731
    return Codes(version, h, side2, side1, (g, h2, w2), (m, h1, w1), i64(pos2), i64(vals2),
                 i64(sizes), i64(idx2), i64(pos1), i64(vals1), live, shards, idx1, alpha)
