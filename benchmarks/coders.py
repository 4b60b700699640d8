"""Coder benchmark on synthetic Gaussian posteriors (not a test).

For each coder, over a range of KL budgets and block sizes: bits sent / KL, and the mean
squared distance of the coded sample to the posterior mean relative to that of an exact
posterior sample (1.0 = as good as exact sampling; < 1 = closer to the mean than a sample).

    python -m benchmarks.coders                  # writes benchmarks/results/coders.json
    python -m benchmarks.coders --per-rate-only  # only the per-rate table of every coder
    python -m benchmarks.coders --per-rate-only --out /tmp/coders.json
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from nnc.coding.greedy import greedy_encode, kl_bits_standardized, likelihood_of, shard_counts
from nnc.coding.importance import importance_encode

from benchmarks.common import RESULTS


def posteriors(n: int, kl_per_dim_bits: float, seed: int):
    """Posteriors in prior-standardized coordinates with about the given mean KL per dim,
    shaped like the trained model's level-1 latents: the KL is mostly in the precision
    (std well below 1) with means of about 0.5 (measured on Kodak, see docs/benchmarks.md)."""
    g = torch.Generator().manual_seed(seed)
    log_std = -(kl_per_dim_bits * math.log(2)) * (0.7 + 0.6 * torch.rand(n, generator=g))
    mean = torch.randn(n, generator=g) * 0.5
    return mean, torch.exp(log_std)


def exact_sample(mean, std, seed):
    """The exact posterior sample the ratios compare against."""
    g = torch.Generator().manual_seed(seed + 99)
    return mean + std * torch.randn(mean.shape, generator=g)


def mse_ratio(sample, mean, std, seed):
    exact = exact_sample(mean, std, seed)
    return (((sample - mean) ** 2).sum() / ((exact - mean) ** 2).sum()).item()


def nll_ratio(sample, mean, std, seed):
    """The distortion the model predicts for the coded sample, 0.5 lam (z - c)^2 summed
    over the likelihood N(c, 1/lam) the posterior implies (greedy.likelihood_of), relative
    to an exact posterior sample's (< 1: the sample decodes better than an exact one)."""
    exact = exact_sample(mean, std, seed)
    c, s = likelihood_of(mean, std)
    return (((sample - c) / s).square().sum() / ((exact - c) / s).square().sum()).item()


def greedy_rows(n=16384):
    rows = []
    for kl_dim in (0.5, 1.0, 2.0, 4.0):
        for block in (4, 8, 16, 32):
            for bits, decay in ((4, 1.0), (6, 1.0), (8, 1.0), (8, 0.375)):
                mean, std = posteriors(n, kl_dim, seed=1)
                m, s = mean.reshape(-1, block), std.reshape(-1, block)
                kl = kl_bits_standardized(m, s).sum(1)
                shards = shard_counts(kl, bits, 64)
                t = time.perf_counter()
                _, sample = greedy_encode(m, s, shards, seed=0, bits=bits, decay=decay)
                dt = time.perf_counter() - t
                rows.append({"coder": "greedy", "kl_per_dim_bits": kl_dim, "block_dims": block,
                             "shard_bits": bits, "shard_decay": decay,
                             "kl_bits": kl.sum().item(),
                             "bits_over_kl": shards.sum().item() * bits / kl.sum().item(),
                             "mse_ratio": mse_ratio(sample.flatten(), mean, std, 1),
                             "encode_s": dt})
    return rows


def importance_rows(n=4096):
    rows = []
    for kl_dim in (0.25, 0.5, 1.0, 2.0):
        for index_bits, budget in ((8, 7), (10, 9), (12, 11), (12, 12), (14, 13)):
            for max_group in (16, 64):
                mean, std = posteriors(n, kl_dim, seed=2)
                t = time.perf_counter()
                code, sample = importance_encode(mean, std, 0, index_bits, budget, max_group,
                                                 outlier_kl_bits=budget)
                dt = time.perf_counter() - t
                kl = kl_bits_standardized(mean, std)
                bits = len(code.indices) * index_bits + 32 * len(code.outlier_positions)
                rows.append({"coder": "importance", "kl_per_dim_bits": kl_dim,
                             "index_bits": index_bits, "group_kl_bits": budget,
                             "max_group": max_group, "kl_bits": kl.sum().item(),
                             "groups": len(code.indices),
                             "outliers": len(code.outlier_positions),
                             "bits_over_kl": bits / kl.sum().item(),
                             "mse_ratio": mse_ratio(sample, mean, std, 2), "encode_s": dt})
    return rows


def _ncdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def dithered_sample(mean, std, delta, seed):
    """Dithered (universal) quantization in prior-standardized coordinates, the candidate
    level-1 coder measured for issue 13 (a prototype here, not in nnc): with a shared dither
    u ~ U(-1/2, 1/2), k = round(mean / delta + u) and the decoder's value is delta (k - u),
    an exact sample of mean + U(-delta/2, delta/2). Its index is entropy-coded with the
    table the prior implies, N(0, 1 - delta^2 / 12) for the mean, given the dither.
    Returns (sample, bits per dimension)."""
    g = torch.Generator().manual_seed(seed + 7)
    u = torch.rand(mean.shape, generator=g) - 0.5
    k = torch.round(mean / delta + u)
    s = torch.sqrt((1 - delta.square() / 12).clamp(min=0.05))
    p = _ncdf(delta * (k - u + 0.5) / s) - _ncdf(delta * (k - u - 0.5) / s)
    return delta * (k - u), -torch.log2(p.clamp(min=1e-12))


def per_rate_rows(n=16384):
    """Every coder at 0.5, 1, 2, 4 and 6 bits of KL per dimension, side information left
    out: bits / KL and squared error relative to an exact posterior sample.

    greedy: the shipped level-1 setting (8-dim blocks, 8-bit shards, decay 0.5, beam 16,
    lookahead; shards = round(KL / 8)), searching for the posterior (before 2026-11-30) or
    for the likelihood (shipped). nll_ratio: the distortion the model predicts, relative to
    an exact sample's (:func:`nll_ratio`). importance: the level-2 coder (12-bit indices,
    11-bit groups of at most 64 dims). dithered: the step matched to each dimension's
    posterior (delta = sqrt(12) std, an oracle: the decoder would need the step), and one
    step per 8-dim block from the half-octave grid 2^(1.5 - j/2) chosen for the block's
    mean std (what a real format could send, at 8-15% of the file in the Kodak prototype)."""
    rows = []
    for kl_dim in (0.5, 1.0, 2.0, 4.0, 6.0):
        mean, std = posteriors(n, kl_dim, seed=3)
        kl = kl_bits_standardized(mean, std)
        m, s = mean.reshape(-1, 8), std.reshape(-1, 8)
        shards = shard_counts(kl_bits_standardized(m, s).sum(1), 8, 63)
        _, sample = greedy_encode(m, s, shards, seed=0, bits=8, decay=0.5, beam=16)
        rows.append({"coder": "greedy, posterior target (before 2026-11-30)",
                     "kl_per_dim_bits": kl_dim,
                     "bits_over_kl": shards.sum().item() * 8 / kl.sum().item(),
                     "mse_ratio": mse_ratio(sample.flatten(), mean, std, 3),
                     "nll_ratio": nll_ratio(sample.flatten(), mean, std, 3)})
        c, cs = likelihood_of(m, s)
        _, sample = greedy_encode(c, cs, shards, seed=0, bits=8, decay=0.5, beam=16)
        rows.append({"coder": "greedy, likelihood target (shipped level 1)",
                     "kl_per_dim_bits": kl_dim,
                     "bits_over_kl": shards.sum().item() * 8 / kl.sum().item(),
                     "mse_ratio": mse_ratio(sample.flatten(), mean, std, 3),
                     "nll_ratio": nll_ratio(sample.flatten(), mean, std, 3)})
        code, sample = importance_encode(mean, std, 0, 12, 11.0, 64, outlier_kl_bits=11.0)
        bits = len(code.indices) * 12 + 32 * len(code.outlier_positions)
        rows.append({"coder": "importance", "kl_per_dim_bits": kl_dim,
                     "bits_over_kl": bits / kl.sum().item(),
                     "mse_ratio": mse_ratio(sample, mean, std, 3),
                     "nll_ratio": nll_ratio(sample, mean, std, 3)})
        sample, b = dithered_sample(mean, std, math.sqrt(12) * std, 3)
        rows.append({"coder": "dithered, matched step per dim (oracle)",
                     "kl_per_dim_bits": kl_dim, "bits_over_kl": b.sum().item() / kl.sum().item(),
                     "mse_ratio": mse_ratio(sample, mean, std, 3),
                     "nll_ratio": nll_ratio(sample, mean, std, 3)})
        j = torch.round(2 * (1.5 - torch.log2(math.sqrt(12) * s.mean(1)))).clamp(0, 30)
        delta = (2.0 ** (1.5 - j / 2))[:, None].expand_as(s).flatten()
        sample, b = dithered_sample(mean, std, delta, 3)
        rows.append({"coder": "dithered, half-octave step per 8-dim block",
                     "kl_per_dim_bits": kl_dim, "bits_over_kl": b.sum().item() / kl.sum().item(),
                     "mse_ratio": mse_ratio(sample, mean, std, 3),
                     "nll_ratio": nll_ratio(sample, mean, std, 3)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-rate-only", action="store_true",
                    help="measure only the per-rate table; keep the other grids of --out as "
                         "they were measured")
    ap.add_argument("--out", type=Path, default=RESULTS / "coders.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.per_rate_only:
        res = json.loads(args.out.read_text()) if args.out.exists() else {}
        res["per_rate"] = per_rate_rows()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")
        for r in res["per_rate"]:
            print(f"{r['coder']:45s} KL/dim={r['kl_per_dim_bits']:<4} "
                  f"bits/KL={r['bits_over_kl']:.3f} mse_ratio={r['mse_ratio']:.3f} "
                  f"nll_ratio={r['nll_ratio']:.3f}")
        return
    res = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU",
           "note": "bits exclude side information (group sizes, shard counts), which the "
                   "Kodak benchmark measures on real files",
           "per_rate": per_rate_rows(),
           "greedy": greedy_rows(), "importance": importance_rows()}
    for r in res["per_rate"]:
        print(f"{r['coder']:45s} KL/dim={r['kl_per_dim_bits']:<4} "
              f"bits/KL={r['bits_over_kl']:.3f} mse_ratio={r['mse_ratio']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["greedy"] + res["importance"]:
        keys = [k for k in ("kl_per_dim_bits", "block_dims", "shard_bits", "shard_decay",
                            "index_bits",
                            "group_kl_bits", "max_group") if k in r]
        print(r["coder"], " ".join(f"{k}={r[k]}" for k in keys),
              f"bits/KL={r['bits_over_kl']:.3f} mse_ratio={r['mse_ratio']:.3f} "
              f"t={r['encode_s']:.2f}s")


if __name__ == "__main__":
    main()
