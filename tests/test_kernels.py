"""The encoders' C kernels (nnc/coding/_kernels.c) against the torch code they
replace (coding/greedy_search.py) and the spec's Gaussian transform (formats/nnc-v1.md §4)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from nnc.coding import greedy_search
from nnc.coding.prng import (STREAM_LEVEL1, block_keys, candidate_words, erfinv_np,
                             words_to_gaussian)

C = greedy_search.kernels
needs_c = pytest.mark.skipif(C is None, reason="nnc's C kernels are not built here")


def test_built_where_a_compiler_is():
    """pip builds the kernels wherever a C compiler is (the extension is optional, so a
    failed build would otherwise pass unseen and leave the encoder 2x slower)."""
    from nnc.coding import native
    if sys.platform.startswith("linux") and shutil.which("cc"):
        assert native.built is not None, "nnc/coding/_kernels.c did not build: pip install -e . -v"


def ulps(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float64) - ref) / np.spacing(np.abs(ref.astype(np.float32)))


@needs_c
def test_gaussians_within_the_spec_of_the_reference():
    """G within 8 binary32 ulps of the spec's reference for every k checked: both ends,
    and every 7th k between (all 2^24 measured: at most 3 ulps)."""
    k = np.concatenate([np.arange(4096), np.arange(4096, (1 << 24) - 4096, 7),
                        np.arange((1 << 24) - 4096, 1 << 24)]).astype(np.uint32)
    out = np.empty(k.shape, np.float32)
    C.gaussians(k << np.uint32(8) | np.uint32(0xA5), out)
    x = k.astype(np.float32) * np.float32(2.0 ** -23) + np.float32(2.0 ** -24 - 1)
    ref = erfinv_np(x) * 1.4142135623730951
    assert ulps(out, ref).max() <= 8


@needs_c
def test_fill_is_torchs_candidates():
    keys = block_keys(7, STREAM_LEVEL1 + 2, torch.arange(5))
    cand = torch.arange(1024, dtype=torch.int32)
    out = torch.empty(5, 33, 1024)
    C.fill(keys.numpy(), 1024, 16, out.numpy(), 2)
    g = words_to_gaussian(candidate_words(keys, cand, 16, dims_first=True))
    assert ulps(out[:, :16].numpy(), g.double().numpy()).max() <= 8
    assert torch.equal(out[:, 16:32], out[:, :16] * out[:, :16])
    assert bool((out[:, 32] == 1).all())
    with pytest.raises(ValueError):
        C.fill(keys.numpy(), 1024, 16, out[:4].numpy(), 1)


@needs_c
@pytest.mark.parametrize("beams,width", [(1, 16), (16, 16), (5, 5), (3, 8)])
def test_beam_step_is_torchs(beams, width, monkeypatch):
    """One shard of the beam search in C and with torch's ops: the same beams, indices and
    partial samples, finished tries (act False) kept and padded with copies."""
    gen = torch.Generator().manual_seed(beams)
    n, tries, dims, cands, shards = 7, 3, 16, 1024, 2
    s = torch.randn(n, tries, beams, dims, generator=gen)
    idx = torch.randint(0, cands, (n, tries, beams, shards), generator=gen)
    mu, var = torch.randn(n, dims, generator=gen), torch.rand(n, dims, generator=gen) + 0.1
    sigma, look = torch.rand(n, tries, generator=gen) + 0.2, torch.rand(n, tries, generator=gen)
    act = torch.rand(n, tries, generator=gen) > 0.3
    rhs = greedy_search.candidate_rhs(block_keys(1, STREAM_LEVEL1, torch.arange(n)),
                                      cands, dims)
    got = greedy_search._beam_step(s, idx, mu, var, sigma, look, act, rhs, width)
    monkeypatch.setattr(greedy_search, "kernels", None)
    want = greedy_search._beam_step(s, idx, mu, var, sigma, look, act, rhs, width)
    assert torch.equal(got[1], want[1])
    assert torch.allclose(got[0], want[0], atol=1e-6)


SEARCH = """
import torch
from nnc.coding import greedy_search
torch.manual_seed(0)
mean, std = torch.randn(300, 16) * 2, torch.rand(300, 16) * 0.5 + 0.1
k = torch.randint(0, 6, (300, 2))
idx, s = greedy_search.search_tries(mean, std, k, 3, 10, 0.6, 8)
print(greedy_search.kernels.ISA, idx.tolist())
"""


@needs_c
def test_the_kernels_of_every_isa_agree():
    """The kernels built for AVX-512, for AVX2 and for the ISA's baseline (NNC_KERNELS caps
    the choice) choose the same candidates."""
    outs = [subprocess.run([sys.executable, "-c", SEARCH], check=True, capture_output=True,
                           text=True, env=dict(os.environ, NNC_KERNELS=isa)
                           ).stdout.split(" ", 1) for isa in ("avx512", "avx2", "baseline")]
    assert outs[2][0] == "baseline"
    assert outs[0][1] == outs[1][1] == outs[2][1]


@needs_c
def test_search_tries_with_and_without_the_kernels(monkeypatch):
    """The encoder's search gives the same indices with the C kernels as with torch's ops,
    but where G's last-ulp differences flip a near tie (rare)."""
    torch.manual_seed(1)
    mean, std = torch.randn(400, 16) * 2, torch.rand(400, 16) * 0.5 + 0.1
    k = torch.randint(0, 8, (400, 3))
    idx_c, s_c = greedy_search.search_tries(mean, std, k, 5, 10, 0.6, 16)
    monkeypatch.setattr(greedy_search, "kernels", None)
    idx_t, s_t = greedy_search.search_tries(mean, std, k, 5, 10, 0.6, 16)
    same = (idx_c == idx_t).all(-1).float().mean().item()
    assert same > 0.99
    rows = (idx_c == idx_t).all(-1)
    assert torch.allclose(s_c[rows], s_t[rows], atol=1e-5)


@needs_c
def test_level2_weights_are_torchs(monkeypatch):
    """Level 2's log-weights (coding/importance.py _add_weights) in C and with torch's ops,
    groups of several dimensions each, split over threads at group boundaries."""
    from nnc.coding import importance
    gen = torch.Generator().manual_seed(3)
    sizes = torch.randint(1, 9, (40,), generator=gen)
    groups = torch.repeat_interleave(torch.arange(40), sizes)
    pos = torch.arange(groups.numel()) - (torch.cumsum(sizes, 0) - sizes)[groups]
    m = torch.randn(groups.numel(), generator=gen)
    s = torch.rand(groups.numel(), generator=gen) * 0.9 + 0.1
    got = torch.zeros(40, 4096)
    importance._add_weights(got, 11, groups + 100, groups, pos, m, s, 4096)
    monkeypatch.setattr(importance, "kernels", None)
    want = torch.zeros(40, 4096)
    importance._add_weights(want, 11, groups + 100, groups, pos, m, s, 4096)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="ascend"):
        C.level2_weights(*(a.numpy() for a in (block_keys(0, 0, groups), pos.int(), m, s)),
                         groups.flip(0).int().numpy(), got.numpy(), 4096, 2)


@needs_c
def test_beam_step_refuses_bad_buffers_and_survives_non_numbers():
    """Outputs must be writable and of the right types and sizes; scores that are not
    numbers (a zero variance with nothing to come) still give valid beams."""
    n, tries, beams, dims, cands, width = 2, 1, 1, 16, 1024, 8
    s = np.zeros((n, tries, beams, dims), np.float32)
    idx = np.zeros((n, tries, beams, 0), np.int64)
    mu, var = np.ones((n, dims), np.float32), np.zeros((n, dims), np.float32)
    sigma, look = np.ones((n, tries), np.float32), np.zeros((n, tries), np.float32)
    act = np.ones((n, tries), np.uint8)
    rhs = greedy_search.candidate_rhs(block_keys(1, STREAM_LEVEL1, torch.arange(n)),
                                      cands, dims).numpy()
    new_s = np.zeros((n, tries, width, dims), np.float32)
    new_idx = np.full((n, tries, width, 1), -7, np.int64)
    args = (s, idx, mu, var, sigma, look, act, rhs, n, tries, beams, dims, 0, cands, width)
    C.beam_step(*args, new_s, new_idx, 2)
    assert ((new_idx >= 0) & (new_idx < cands)).all()
    frozen = new_s.copy()
    frozen.setflags(write=False)
    with pytest.raises((BufferError, ValueError), match="writ|read-only"):
        C.beam_step(*args, frozen, new_idx, 1)
    with pytest.raises(ValueError, match="int64"):
        C.beam_step(*args, new_s, new_idx.astype(np.int32), 1)
    with pytest.raises(ValueError):
        C.beam_step(*args[:10], 1 << 62, *args[11:], new_s, new_idx, 1)
