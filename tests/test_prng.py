"""Shared randomness: golden vectors, an independent pure-Python reference, random access."""
from statistics import NormalDist

import numpy as np
import pytest
import torch

from nnc.coding.prng import (STREAM_LEVEL1, STREAM_LEVEL2, block_keys, candidate_words,
                             gaussians, mix32, words_to_gaussian)


def ref_mix32(x: int) -> int:
    """lowbias32 with Python integers, straight from formats/nnc-v1.md."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def ref_word(seed, stream, block, cand, dim) -> int:
    h = ref_mix32(seed)
    for v in (stream, block, cand, dim):
        h = ref_mix32(h ^ v)
    return h


def ref_gaussian(word: int) -> float:
    k = word >> 8
    return NormalDist().inv_cdf((2 * k + 1) / 2 ** 25)


GOLDEN_WORDS = [[[3017451625, 2981307236, 2829130077, 3382256055],
                 [530171541, 3010373095, 336450350, 4184517037],
                 [992799450, 1598103058, 195268634, 283993649]],
                [[248675630, 352963476, 3691613896, 1760806619],
                 [201004189, 2321123489, 1311816724, 3516247856],
                 [3124950509, 656324509, 2619253918, 3808451730]]]
GOLDEN_GAUSS = [[-0.893225371837616, 0.2684963643550873, -0.512203574180603,
                 -1.2097053527832031],
                [-0.4523552358150482, -0.9853435754776001, 0.2670519948005676,
                 0.17233853042125702]]


def test_golden_words():
    w = candidate_words(block_keys(12345, STREAM_LEVEL1 + 1, torch.tensor([0, 7])),
                        torch.arange(3), 4)
    assert (w.long() & 0xFFFFFFFF).tolist() == GOLDEN_WORDS


def test_golden_words_match_reference():
    for bi, block in enumerate([0, 7]):
        for c in range(3):
            for d in range(4):
                assert ref_word(12345, STREAM_LEVEL1 + 1, block, c, d) == GOLDEN_WORDS[bi][c][d]


def test_golden_gaussians():
    g = gaussians(12345, STREAM_LEVEL2, 3, torch.arange(2), 4)
    assert torch.allclose(g, torch.tensor(GOLDEN_GAUSS), atol=1e-6)
    for c in range(2):
        for d in range(4):
            ref = ref_gaussian(ref_word(12345, STREAM_LEVEL2, 3, c, d))
            assert abs(g[c, d].item() - ref) < 1e-4


def test_mix32_matches_reference_on_edge_values():
    xs = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 0xDEADBEEF, 123456789]
    t = torch.tensor([x - 2 ** 32 if x >= 2 ** 31 else x for x in xs], dtype=torch.int32)
    got = (mix32(t).long() & 0xFFFFFFFF).tolist()
    assert got == [ref_mix32(x) for x in xs]


def test_extreme_words_give_finite_gaussians():
    w = torch.tensor([0, -1, 255, -256], dtype=torch.int32)   # k = 0 and k = 2^24 - 1
    g = words_to_gaussian(w)
    assert torch.isfinite(g).all()
    assert g[0] < -5 and g[1] > 5


def test_random_access_equals_full_table():
    full = gaussians(7, STREAM_LEVEL1, torch.arange(5), torch.arange(64), 8)
    picked = torch.tensor([[3], [0], [63], [17], [42]])
    some = gaussians(7, STREAM_LEVEL1, torch.arange(5), picked, 8)
    assert torch.equal(some[:, 0], full[torch.arange(5), picked[:, 0]])


def test_distribution_is_standard_normal():
    g = gaussians(1, STREAM_LEVEL1, torch.arange(200), torch.arange(256), 8).flatten()
    assert abs(g.mean().item()) < 0.01
    assert abs(g.std().item() - 1) < 0.01
    # streams differ
    g2 = gaussians(2, STREAM_LEVEL1, torch.arange(200), torch.arange(256), 8).flatten()
    assert abs(torch.corrcoef(torch.stack([g, g2]))[0, 1].item()) < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_integers_identical():
    keys = block_keys(99, STREAM_LEVEL1, torch.arange(1000))
    cpu = candidate_words(keys, torch.arange(256), 8)
    gpu = candidate_words(keys.cuda(), torch.arange(256).cuda(), 8).cpu()
    assert torch.equal(cpu, gpu)
    assert torch.allclose(words_to_gaussian(cpu), words_to_gaussian(gpu.cuda()).cpu(), atol=1e-5)


def test_in_place_hash_takes_both_paths():
    """mix32_ xors the int16 halves of a contiguous tensor and shifts otherwise: the same
    words either way, and as the numpy reference."""
    from nnc.coding.prng import mix32_, mix32_np
    x = torch.randint(-2 ** 31, 2 ** 31 - 1, (64, 6), dtype=torch.int32,
                      generator=torch.Generator().manual_seed(3))
    want = mix32_np(x.numpy().view(np.uint32)).view(np.int32).reshape(64, 6)
    assert np.array_equal(mix32_(x.clone()).numpy(), want)
    strided = x.clone().t()                     # not contiguous: the shifting path
    assert np.array_equal(mix32_(strided).t().numpy(), want)
