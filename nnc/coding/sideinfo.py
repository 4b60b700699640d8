"""Entropy coding of side information with constriction's range coder.

Level-1 shard counts are coded with a categorical model per context (the counts of the
blocks above and to the left), whose table ships with the model's weights (estimated on
training images, like the thesis's §3.5.1 index tables); :class:`AdaptiveCounts` starts from
that table and learns the image's own statistics as it goes, in integer counts that encoder
and decoder update identically. Level-2 group sizes are coded with a quantized Laplace model
on [0, vmax] whose mean is a context the decoder already knows (the previous group's size)
and whose scale is ``s0 + s1 * mean``; the encoder picks (s0, s1) from fixed grids by the
exact cross-entropy and sends the two grid indices. Everything else (indices, outlier positions
and values) is coded with uniform models. One :class:`Writer` / :class:`Reader` pair holds
one range-coded stream; the order of calls is the format.
"""
from __future__ import annotations

import math

import numpy as np
import constriction

from ..errors import FormatError

S0_GRID = np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                    8.0, 12.0, 16.0], dtype=np.float64)
S1_GRID = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6], dtype=np.float64)
MAX_UNIFORM = 1 << 24   # constriction's Uniform(n) needs 2 <= n <= 2^24 ...
SPLIT = 1 << 12         # ... so larger ranges are sent as two symbols (Writer.uniform)


def _laplace_cdf(x, mean, scale):
    z = (x - mean) / scale
    return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))


def laplace_bits(values: np.ndarray, means: np.ndarray, scales: np.ndarray, vmax: int) -> float:
    """Cross-entropy (bits) of values under the quantized, truncated Laplace on [0, vmax]."""
    lo = np.where(values <= 0, 0.0, _laplace_cdf(values - 0.5, means, scales))
    hi = np.where(values >= vmax, 1.0, _laplace_cdf(values + 0.5, means, scales))
    mass = _laplace_cdf(vmax + 0.5, means, scales) - _laplace_cdf(-0.5, means, scales)
    p = np.maximum(hi - lo, 1e-12) / np.maximum(mass, 1e-12)
    return float(-np.log2(p).sum())


def choose_scale(values: np.ndarray, means: np.ndarray, vmax: int) -> tuple[int, int]:
    """The (s0, s1) grid indices that minimize the estimated bits."""
    best, arg = np.inf, (0, 0)
    v = values.astype(np.float64)
    for i, s0 in enumerate(S0_GRID):
        for j, s1 in enumerate(S1_GRID):
            b = laplace_bits(v, means, s0 + s1 * means, vmax)
            if b < best:
                best, arg = b, (i, j)
    return arg


class TableCounts:
    """The fixed categorical model per context (i, j): ``table[i, j] + 0.5``, contexts
    clipped to the table's range (sections Z1SI)."""

    def __init__(self, table: np.ndarray):
        self.table = np.asarray(table, dtype=np.float64)
        self.n = self.table.shape[0]

    def rows(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.table[np.minimum(i, self.n - 1), np.minimum(j, self.n - 1)] + 0.5

    def update(self, i: np.ndarray, j: np.ndarray, values: np.ndarray) -> None:
        pass


class AdaptiveCounts:
    """Categorical models per context (i, j), adapted to the data coded so far.

    Starts from ``table`` (counts[i, j, value], any scale): each row becomes PRIOR_WEIGHT
    observations' worth of integer counts (at RESOLUTION units per observation, at least 1
    per value), and every coded value adds RESOLUTION to its context's row. All arithmetic
    on the counts is integer, so encoder and decoder hold the same rows on any machine.
    """
    PRIOR_WEIGHT = 64
    RESOLUTION = 16

    def __init__(self, table: np.ndarray):
        t = np.asarray(table, dtype=np.float64) + 0.5
        scaled = t / t.sum(-1, keepdims=True) * (self.PRIOR_WEIGHT * self.RESOLUTION)
        self.counts = np.maximum(np.rint(scaled), 1).astype(np.int64)
        self.n = self.counts.shape[0]

    def rows(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Unnormalized probability rows (float64 holding integers) for contexts (i, j),
        clipped to the table's range."""
        return self.counts[np.minimum(i, self.n - 1), np.minimum(j, self.n - 1)].astype(
            np.float64)

    def update(self, i: np.ndarray, j: np.ndarray, values: np.ndarray) -> None:
        np.add.at(self.counts, (np.minimum(i, self.n - 1), np.minimum(j, self.n - 1),
                                values), self.RESOLUTION)


def _laplace_model(vmax: int):
    return constriction.stream.model.QuantizedLaplace(0, vmax)


class Writer:
    def __init__(self):
        self.enc = constriction.stream.queue.RangeEncoder()

    def uniform(self, values, n: int) -> None:
        """values in [0, n), n >= 1 (n == 1 costs nothing and writes nothing). Above
        constriction's limit of 2^24, each value is sent as two: v // SPLIT with
        Uniform(ceil(n / SPLIT)) for all values, then v % SPLIT with Uniform(SPLIT)."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        if n == 1 or values.size == 0:
            return
        if n > MAX_UNIFORM:
            self.uniform(values // SPLIT, -(-n // SPLIT))
            self.uniform(values % SPLIT, SPLIT)
            return
        self.enc.encode(values.astype(np.int32), constriction.stream.model.Uniform(n))

    def laplace(self, values, means, s0: int, s1: int, vmax: int) -> None:
        values = np.ascontiguousarray(values, dtype=np.int32)
        if values.size == 0:
            return
        means = np.ascontiguousarray(means, dtype=np.float64)
        scales = S0_GRID[s0] + S1_GRID[s1] * means
        self.enc.encode(values, _laplace_model(vmax), means, scales)

    def categorical(self, values, probabilities: np.ndarray) -> None:
        """values[i] coded with the (unnormalized) row probabilities[i]."""
        values = np.ascontiguousarray(values, dtype=np.int32)
        if values.size == 0:
            return
        self.enc.encode(values, constriction.stream.model.Categorical(perfect=False),
                        np.ascontiguousarray(probabilities, dtype=np.float64))

    def bytes(self) -> bytes:
        return self.enc.get_compressed().astype("<u4").tobytes()


class Reader:
    def __init__(self, payload: bytes):
        if len(payload) % 4:
            raise ValueError("range-coded stream length is not a multiple of 4")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self.dec = constriction.stream.queue.RangeDecoder(words)

    def uniform(self, count: int, n: int) -> np.ndarray:
        if n == 1 or count == 0:
            return np.zeros(count, dtype=np.int64)
        if n > MAX_UNIFORM:
            high = self.uniform(count, -(-n // SPLIT))
            v = high * SPLIT + self.uniform(count, SPLIT)
            if (v >= n).any():
                raise ValueError("a split uniform value is out of range")
            return v
        return self.dec.decode(constriction.stream.model.Uniform(n), count).astype(np.int64)

    def categorical(self, probabilities: np.ndarray) -> np.ndarray:
        if probabilities.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        return self.dec.decode(constriction.stream.model.Categorical(perfect=False),
                               np.ascontiguousarray(probabilities, dtype=np.float64)
                               ).astype(np.int64)

    def laplace(self, means, s0: int, s1: int, vmax: int) -> np.ndarray:
        means = np.ascontiguousarray(means, dtype=np.float64)
        if means.size == 0:
            return np.zeros(0, dtype=np.int64)
        scales = S0_GRID[s0] + S1_GRID[s1] * means
        return self.dec.decode(_laplace_model(vmax), means, scales).astype(np.int64)

    def laplace_chain(self, count: int, first_mean: int, s0: int, s1: int,
                      vmax: int) -> np.ndarray:
        """``count`` values, each with the previous value as its mean (``first_mean`` for
        the first): the decoding side of ``Writer.laplace(v, [first_mean, *v[:-1]], ...)``."""
        out = np.zeros(count, dtype=np.int64)
        model = _laplace_model(vmax)
        prev = float(first_mean)
        for i in range(count):
            m = np.array([prev])
            out[i] = self.dec.decode(model, m, S0_GRID[s0] + S1_GRID[s1] * m)[0]
            prev = float(out[i])
        return out


RANGE_CODER_SLACK_BITS = 64    # a range-coded stream may end up to two words early


def need_bits(section: bytes, bits: float, what: str) -> None:
    """Refuse a section too short for ``bits`` bits of uniformly coded symbols (which cost
    exactly their bits): the range decoder would read zeros past its end, and a crafted
    file could make the decoder do work and allocate memory that its bytes do not pay for."""
    if 8 * len(section) + RANGE_CODER_SLACK_BITS < bits:
        raise FormatError(f"corrupt .nnc file: the {what} section holds {len(section)} "
                          f"bytes, too few for the {math.ceil(bits)} bits it must carry")
