"""The two REC coders and the side-information coder on synthetic posteriors."""

import math

import numpy as np
import sys

import pytest
import torch

from nnc.coding import sideinfo
from nnc.coding.greedy import (greedy_decode, greedy_encode, kl_bits_standardized, rd_encode,
                               shard_counts)
from nnc.coding.importance import importance_decode, importance_encode, make_groups


def synthetic(n, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    std = torch.exp(-torch.rand(n, generator=g) * 2 * spread)
    mean = torch.randn(n, generator=g) * 0.6 * spread
    return mean, std


def test_greedy_roundtrip_and_quality():
    mean, std = synthetic(8 * 2000)
    mean, std = mean.reshape(-1, 8), std.reshape(-1, 8)
    kl = kl_bits_standardized(mean, std).sum(1)
    shards = shard_counts(kl, 8, 15)
    idx, sample = greedy_encode(mean, std, shards, seed=3, bits=8)
    assert torch.allclose(greedy_decode(idx, shards, 3, 8), sample, atol=1e-5)
    bits = shards.sum().item() * 8
    assert 0.9 < bits / kl.sum().item() < 1.1
    exact = mean + std * torch.randn_like(mean)
    ratio = ((sample - mean) ** 2).sum() / ((exact - mean) ** 2).sum()
    assert ratio < 1.3          # close to the quality of an exact posterior sample
    # without coding (prior mean) the error would be far larger
    assert ((sample - mean) ** 2).sum() < 0.5 * (mean ** 2 + std ** 2).sum()


def test_beam_and_lookahead_get_closer_to_the_posterior():
    """The search only changes which indices the encoder picks: every variant decodes with
    the same decoder, and each refinement lands closer (in posterior precision) to the
    posterior mean than the thesis's greedy rule at the same bits."""
    g = torch.Generator().manual_seed(5)
    std = torch.exp(-torch.rand(3000, 8, generator=g) * 4)     # high-KL blocks: 2-6 shards
    mean = torch.randn(3000, 8, generator=g) * 0.8
    shards = shard_counts(kl_bits_standardized(mean, std).sum(1), 8, 15)
    assert shards.max() >= 4
    err = {}
    for name, beam, look in [("greedy", 1, False), ("lookahead", 1, True), ("beam8", 8, True)]:
        idx, sample = greedy_encode(mean, std, shards, 7, 8, 0.5, beam=beam, lookahead=look)
        assert torch.allclose(greedy_decode(idx, shards, 7, 8, 0.5), sample, atol=1e-5)
        assert ((idx >= 0).sum(1) == shards).all()
        err[name] = (((sample - mean) / std) ** 2).sum().item()
    assert err["lookahead"] < 0.95 * err["greedy"]
    assert err["beam8"] < 0.9 * err["lookahead"]


def test_rd_shard_counts_never_cost_more():
    """Per block, the rate-distortion choice costs at most what round(KL / 8) costs in the
    same measure, and the decoder regenerates its sample from the chosen counts."""
    g = torch.Generator().manual_seed(11)
    std = torch.exp(-torch.rand(2000, 8, generator=g) * 3)
    mean = torch.randn(2000, 8, generator=g) * 0.7
    k0 = shard_counts(kl_bits_standardized(mean, std).sum(1), 8, 15)
    k, idx, sample = rd_encode(mean, std, k0, 4, 8, 0.5, 4, kappa=1.0, max_shards=15)
    assert torch.allclose(greedy_decode(idx, k, 4, 8, 0.5), sample, atol=1e-5)
    assert ((idx >= 0).sum(1) == k).all() and not torch.equal(k, k0)
    idx0, sample0 = greedy_encode(mean, std, k0, 4, 8, 0.5, 4)
    w = (std.pow(-2) - 1).clamp(min=0)

    def cost(s, kk):
        return 0.5 * ((s - mean) ** 2 * w).sum(1) + math.log(2) * 8 * kk
    assert (cost(sample, k) <= cost(sample0, k0) + 1e-3).all()
    assert cost(sample, k).sum() < 0.95 * cost(sample0, k0).sum()


def test_first_shard_threshold():
    kl = torch.tensor([0.0, 2.5, 3.9, 4.0, 11.0, 13.0])
    assert shard_counts(kl, 8, 15).tolist() == [0, 0, 0, 0, 1, 2]   # round(): 4.0 -> 0
    assert shard_counts(kl, 8, 15, first_kl=2.0).tolist() == [0, 1, 1, 1, 1, 2]
    assert shard_counts(kl, 8, 15, first_kl=5.0).tolist() == [0, 0, 0, 0, 1, 2]


def test_greedy_zero_shards_is_prior_mean():
    mean, std = torch.zeros(4, 8), torch.ones(4, 8)
    shards = torch.zeros(4, dtype=torch.int64)
    idx, sample = greedy_encode(mean, std, shards, 0, 8)
    assert idx.shape == (4, 0) and torch.equal(sample, torch.zeros(4, 8))


def test_seed_changes_indices():
    mean, std = synthetic(8 * 100)
    mean, std = mean.reshape(-1, 8), std.reshape(-1, 8)
    shards = torch.full((100,), 2)
    a, _ = greedy_encode(mean, std, shards, 1, 8)
    b, _ = greedy_encode(mean, std, shards, 2, 8)
    assert not torch.equal(a, b)


def test_make_groups_respects_budget_and_cap():
    kl = np.array([0.5] * 10 + [5.0] + [0.1] * 100 + [30.0])
    sizes = make_groups(kl, 4.0, 16)
    assert sizes.sum() == kl.size
    start = 0
    for s in sizes:
        g = kl[start:start + s]
        assert s <= 16 and (g.sum() <= 4.0 or s == 1)
        start += s


def test_importance_roundtrip_and_rate():
    mean, std = synthetic(3000, seed=1)
    mean[5] = 20.0            # an outlier
    std[5] = 0.01
    code, sample = importance_encode(mean, std, seed=9, index_bits=10, group_kl_bits=9,
                                     max_group=64, outlier_kl_bits=10)
    assert 5 in code.outlier_positions
    assert abs(sample[5].item() - 20.0) < 0.1
    assert torch.allclose(importance_decode(code, 3000, 9), sample)
    kl = kl_bits_standardized(mean, std)
    kl_in = kl.sum().item() - kl[torch.as_tensor(code.outlier_positions)].sum().item()
    bits = len(code.indices) * 10
    assert 1.0 < bits / kl_in < 1.35
    keep = torch.ones(3000, dtype=torch.bool)
    keep[torch.as_tensor(code.outlier_positions)] = False
    exact = mean + std * torch.randn_like(mean)
    err = ((sample - mean)[keep] ** 2).sum() / ((exact - mean)[keep] ** 2).sum()
    assert err < 1.4


def test_sideinfo_roundtrip():
    rng = np.random.default_rng(0)
    vals = rng.integers(0, 16, 500)
    means = np.clip(vals + rng.integers(-2, 3, 500), 0, 15).astype(float)
    s0, s1 = sideinfo.choose_scale(vals, means, 15)
    probs = rng.random((300, 16)) + 0.01
    cats = rng.integers(0, 16, 300)
    w = sideinfo.Writer()
    w.uniform([1, 2, 3], 5)
    w.laplace(vals, means, s0, s1, 15)
    w.categorical(cats, probs)
    w.uniform(rng.integers(0, 1 << 16, 10), 1 << 16)
    data = w.bytes()
    r = sideinfo.Reader(data)
    assert r.uniform(3, 5).tolist() == [1, 2, 3]
    assert np.array_equal(r.laplace(means, s0, s1, 15), vals)
    assert np.array_equal(r.categorical(probs), cats)
    # estimated bits match the real stream to within a couple of words
    est = sideinfo.laplace_bits(vals.astype(float), means,
                                sideinfo.S0_GRID[s0] + sideinfo.S1_GRID[s1] * means, 15)
    assert est < 8 * len(data)


def _reference_search(mean, std, k, seed, bits, decay, beam, block_id):
    """One block's beam search written out plainly: at shard j every beam's partial sample
    plus every candidate scaled by the shard's scale, scored by sum_d (s - mean)^2 /
    (std^2 + R_j); the ``beam`` lowest (beam, candidate) pairs go on."""
    from nnc.coding.greedy_search import remaining_variance, shard_scale
    from nnc.coding.prng import STREAM_LEVEL1, gaussians
    beams = [(torch.zeros(mean.shape[0]), [])]
    kt = torch.tensor([k])
    for j in range(k):
        g = gaussians(seed, STREAM_LEVEL1 + j, block_id, torch.arange(1 << bits),
                      mean.shape[0]) * shard_scale(kt, j, decay)
        w = 1.0 / (std.square() + remaining_variance(kt, j, decay))
        pairs = [(float((w * (s + g[c] - mean).square()).sum()), i, c)
                 for i, (s, _) in enumerate(beams) for c in range(1 << bits)]
        pairs.sort()
        beams = [(beams[i][0] + g[c], beams[i][1] + [c]) for _, i, c in pairs[:beam]]
    return beams[0]


def test_search_tries_is_a_beam_search_per_try():
    """The rate-distortion search codes every tried count of a block over the block's
    candidates at once (one matrix product, the shard scale applied to the products): each
    try's indices and sample are those of a plain beam search with that count."""
    from nnc.coding.greedy import search_tries
    g = torch.Generator().manual_seed(5)
    mean = torch.randn(40, 4, generator=g) * 0.8
    std = torch.rand(40, 4, generator=g) * 0.5 + 0.05
    k = torch.randint(0, 4, (40, 3), generator=g)
    ids = torch.arange(40) + 100
    idx, sample = search_tries(mean, std, k, 3, 6, 0.5, 4, True, ids)
    assert idx.shape == (40, 3, int(k.max())) and sample.shape == (40, 3, 4)
    same = 0
    for b in range(40):
        for t in range(3):
            s, chosen = _reference_search(mean[b], std[b], int(k[b, t]), 3, 6, 0.5, 4,
                                          int(ids[b]))
            kk = len(chosen)
            assert (idx[b, t, kk:] == -1).all()
            if idx[b, t, :kk].tolist() == chosen:
                same += 1
                assert torch.allclose(sample[b, t], s, atol=1e-5)
    assert same >= 118          # of 120: the scores' rounding may swap a near tie


def test_search_tries_with_a_beam_wider_than_the_candidates():
    """With 4 candidates per shard and a beam of 16 the beam still grows after shard 0, and
    a try may finish while another try of its block goes on: each keeps its best sample."""
    from nnc.coding.greedy import search_tries
    g = torch.Generator().manual_seed(8)
    mean = torch.randn(50, 4, generator=g)
    std = torch.rand(50, 4, generator=g) * 0.5 + 0.1
    k = torch.randint(0, 5, (50, 3), generator=g)
    idx, sample = search_tries(mean, std, k, 7, 2, 0.6, 16, True)
    for t in range(3):
        assert ((idx[:, t] >= 0).sum(1) == k[:, t]).all()
        assert torch.allclose(greedy_decode(idx[:, t], k[:, t], 7, 4, 0.6), sample[:, t],
                              atol=1e-5)
        i1, s1 = greedy_encode(mean, std, k[:, t], 7, 2, 0.6, 16, True)
        assert torch.equal(idx[:, t, :i1.shape[1]], i1)


def test_rd_encode_in_chunks_is_the_same_as_in_one_piece(monkeypatch):
    """Large images are coded in chunks of blocks (bounded memory): the same result."""
    import nnc.coding.greedy as greedy
    g = torch.Generator().manual_seed(4)
    mean = torch.randn(3000, 8, generator=g) * 0.8
    std = torch.rand(3000, 8, generator=g) * 0.5 + 0.05
    shards = greedy.shard_counts(greedy.kl_bits_standardized(mean, std).sum(1), 8, 15, 4.0)
    whole = greedy.rd_encode(mean, std, shards, 0, 8, 0.5, 4, 1.0, 15)
    monkeypatch.setattr(greedy, "RD_CHUNK_BLOCKS", 701)
    parts = greedy.rd_encode(mean, std, shards, 0, 8, 0.5, 4, 1.0, 15)
    assert all(torch.equal(a, b) for a, b in zip(whole, parts))
    assert (whole[0] > 0).any()


def test_level2_choices_do_not_depend_on_memory_chunks(monkeypatch):
    """The importance coder keeps log-weights only for open groups: the same code as with
    one table for all groups (compared against a small chunk size)."""
    import nnc.coding.importance as imp
    g = torch.Generator().manual_seed(5)
    mean = torch.randn(6000, generator=g)
    std = torch.rand(6000, generator=g) * 0.6 + 0.2
    a, sa = imp.importance_encode(mean, std, 3, 8, 7.0, 64, 11.0, 3.0)
    monkeypatch.setattr(imp, "CHUNK_ELEMENTS", 256 * 37)      # 37 dims per chunk
    b, sb = imp.importance_encode(mean, std, 3, 8, 7.0, 64, 11.0, 3.0)
    assert (a.indices == b.indices).all() and torch.equal(sa, sb)


def test_likelihood_of_the_posterior():
    """The likelihood N(c, 1/lam) times the prior N(0, 1) gives back the posterior."""
    from nnc.coding.greedy import likelihood_of
    g = torch.Generator().manual_seed(2)
    std = 0.05 + 0.9 * torch.rand(500, 8, generator=g)
    mean = torch.randn(500, 8, generator=g) * 0.5
    c, s = likelihood_of(mean, std)
    lam = s.pow(-2)
    assert torch.allclose(1 / (1 + lam), std ** 2, rtol=1e-4)          # precisions add
    assert torch.allclose(c * lam / (1 + lam), mean, rtol=1e-4, atol=1e-6)
    # an uninformative dimension (std 1) has a bounded, zero-weight likelihood
    c1, s1 = likelihood_of(torch.zeros(1, 8), torch.ones(1, 8))
    assert torch.isfinite(c1).all() and (c1 == 0).all() and torch.isfinite(s1).all()


def test_likelihood_target_decodes_closer_to_what_the_model_predicts():
    """Coding level 1 against the likelihood (Level1Search target "likelihood") lowers the
    distortion the model predicts, 0.5 lam (z - c)^2 summed, at the same shard counts, and
    its files decode with the unchanged decoder."""
    from nnc.coding.greedy import likelihood_of
    g = torch.Generator().manual_seed(9)
    std = torch.exp(-torch.rand(3000, 8, generator=g) * 2.5)
    mean = torch.randn(3000, 8, generator=g) * (1 - std ** 2).sqrt()   # as the model's are
    shards = shard_counts(kl_bits_standardized(mean, std).sum(1), 8, 15).clamp(min=1)
    c, s = likelihood_of(mean, std)

    def distortion(z):
        return (0.5 * (z - c) ** 2 / s ** 2).sum().item()
    _, post = greedy_encode(mean, std, shards, 3, 8, 0.5, beam=4)
    idx, lik = greedy_encode(c, s, shards, 3, 8, 0.5, beam=4)
    assert torch.allclose(greedy_decode(idx, shards, 3, 8, 0.5), lik, atol=1e-5)
    assert distortion(lik) < 0.98 * distortion(post)



@pytest.mark.parametrize("beams,cands,k", [(1, 64, 8), (6, 64, 8), (24, 512, 24), (3, 8, 16)])
def test_best_pairs_are_the_lowest_scores_best_first(beams, cands, k):
    """The beam search's selection (coding/greedy.py _best_pairs) finds the same pairs as
    one sort over all of them."""
    from nnc.coding.greedy_search import _best_pairs
    score = torch.randn(50, beams, cands, generator=torch.Generator().manual_seed(beams))
    k = min(k, beams * cands)
    parent, choice = _best_pairs(score, k)
    want = score.reshape(50, -1).topk(k, dim=1, largest=False)
    rows = torch.arange(50)[:, None]
    assert torch.equal(score[rows, parent, choice], want.values)
    assert torch.equal(parent * cands + choice, want.indices)


def test_the_cli_keeps_freed_memory():
    """nnc/malloc.py: glibc's thresholds raised (or nothing done elsewhere), no error; in a
    child process, so that the test session's allocator is left as it is."""
    import platform
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "from nnc.malloc import keep_freed_memory; "
                          "print(keep_freed_memory())"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out in ("True", "False")
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert out == "True"


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_a_freed_large_array_comes_back_without_page_faults():
    """After keep_freed_memory, a 64 MiB array freed and allocated again reuses the pages it
    had (glibc would map fresh ones above 32 MiB: 16,000 page faults each time)."""
    import subprocess
    code = """
import ctypes, ctypes.util, resource
from nnc.malloc import keep_freed_memory
keep_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def touched(n):
    p = libc.malloc(n); ctypes.memset(p, 1, n); return p
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
libc.free(touched(64 << 20))
before = faults()
libc.free(touched(64 << 20))
print(faults() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert int(out) < 1000, out


# --- the coder protocol: every registered coder through one contract -----------------------
from nnc.coding import LEVEL1_CODERS, LEVEL2_CODERS, SECTIONS as ALL_SECTIONS  # noqa: E402
from nnc.coding.protocol import Coder, CoderContext  # noqa: E402


@pytest.mark.parametrize("coder", LEVEL2_CODERS + LEVEL1_CODERS, ids=lambda c: c.__name__)
def test_every_registered_coder_keeps_the_protocol(coder):
    """encode -> write -> read -> decode with one signature for every coder of either level:
    the sections are the coder's own, read back to the same integers, and decode (numpy, as
    every engine takes it) to a latent of the context's shape that follows the posterior."""
    from nnc.errors import FormatError
    from nnc.settings import Settings
    assert isinstance(coder, Coder)
    assert coder.LEVEL in (1, 2) and coder in (LEVEL1_CODERS if coder.LEVEL == 1 else LEVEL2_CODERS)
    shape = (6, 8, 12)
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(1, *shape, generator=g)
    std = torch.full((1, *shape), 0.3)
    from types import SimpleNamespace
    settings = Settings()
    fmt = settings.level1 if coder.LEVEL == 1 else settings.level2
    assert coder.format_from_header(SimpleNamespace(**fmt.header_fields())) == fmt
    search = settings.level1_search if coder.LEVEL == 1 else settings.level2_search
    table = np.ones((fmt.max_shards + 1,) * 3, np.int64) if coder.LEVEL == 1 else None
    ctx = CoderContext(seed=7, shape=shape, fmt=fmt, table=table)
    code = coder.encode_latent(mean, std, ctx, search)
    sections = coder.write(code, ctx)
    assert set(sections) <= set(coder.SECTIONS) <= set(ALL_SECTIONS)
    coder.check_sections(sections)
    back = coder.read(sections, ctx)
    for name, value in vars(code).items():
        assert np.array_equal(np.asarray(getattr(back, name)), np.asarray(value)), name
    z = coder.decode_latent(back, ctx)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32 and z.shape == (1, *shape)
    assert np.array_equal(z, coder.decode_latent(back, ctx))
    assert np.corrcoef(z.ravel(), mean.numpy().ravel())[0, 1] > 0.8
    with pytest.raises(FormatError):
        coder.check_sections({})
