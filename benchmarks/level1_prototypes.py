"""Level-1 coders tried for issue 13 and not adopted: measured on real Kodak images, against
nnc's actual files and against an exact posterior sample at ΣKL (not a test).

    python -m benchmarks.level1_prototypes --images kodim05 kodim23 \
        --out benchmarks/results/level1-prototypes.json

For each image and rate parameter: nnc's file at the default settings without refinement
(nnc.settings.Settings(), recorded in the output; bpp, PSNR), ΣKL and the PSNR of an exact
posterior sample (the ideal relative-entropy coder), and two prototypes whose rates are
estimated (ideal entropy coding of their symbols; the step map is coded for real with
nnc's adaptive context model):

* ``dithered``: level 1 by dithered (universal) quantization in prior-standardized
  coordinates, one step per 4x2 block from the half-octave grid 2^(1.5 - (j-1)/2), j = 1..15
  (0: the block decodes at the prior mean), chosen per block by rate-distortion
  (0.5 Σ w e² + κ ln2 bits, w = 1/r² − 1 as in greedy.rd_encode); the index k of each
  dimension is coded with the table the prior implies given the shared dither; the step map
  costs what the adaptive count model of section Z1SA would spend on it (``side_iters``
  re-chooses steps with that cost included).
* ``decoder_step``: a per-dimension step the decoder could compute itself, no map sent: the
  encoder's posterior width per channel (a geometric mean, sent once, to 1/8 octave)
  combined with sigma_p into r_hat = (sigma_p^2 / s_x^2 + 1)^(-1/2), step sqrt(12) r_hat;
  the index coded with adaptive counts per context (the magnitudes, up to 2, of the indices
  above and to the left, shared by all channels; integers only). ``bpp_float_table`` is
  the same with the table the prior implies given r_hat, a table the format may not use.
* ``hybrid-is``: nnc's greedy coder as it is, plus the level-2 importance sampler for the
  dimensions of blocks left without shards (KL over ``thr`` bits; which ones is an oracle
  here, charged at the zeroth-order entropy of a per-block flag).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnc import codec
from nnc.coding import importance, sideinfo
from nnc.coding.greedy import (_shard_count_rows, from_blocks, kl_bits_standardized, plan,
                               rd_encode, to_blocks)
from nnc.coding.importance import importance_encode
from nnc.image_io import RasterImage
from nnc.info import describe
from nnc.metrics import psnr
from nnc.model import tiling
from nnc.model.weights import load_model
from nnc.settings import Settings

from benchmarks.common import KODAK

NJ = 15
DELTAS = [2.0 ** (1.5 - (j - 1) / 2) for j in range(1, NJ + 1)]


def _ncdf(x):
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def _step_table(n: int) -> np.ndarray:
    """An integer starting table for the step map's adaptive model: 2^(10 - |2v - a - l|)."""
    a, l, v = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    return (1 << (10 - np.minimum(10, np.abs(2 * v - a - l)))).astype(np.int64)


def _step_map_bits(choice: np.ndarray) -> int:
    """Bits of the step map (channels, rows, cols) coded as section Z1SA codes shard counts."""
    live = choice.reshape(choice.shape[0], -1).max(1) > 0
    w = sideinfo.Writer()
    w.uniform(live.astype(np.int64), 2)
    ls = choice[live]
    w.categorical(ls.transpose(1, 2, 0).ravel(),
                  _shard_count_rows(ls, sideinfo.AdaptiveCounts(_step_table(NJ + 1))))
    return 8 * len(w.bytes())


def _image(model, z1, q, h, w):
    return (model.decode(z1, q)[0, :, :h, :w].clamp(0, 1) * 255).round().byte() \
        .permute(1, 2, 0).numpy()


def dithered(model, rgb, q, mu_p, s_p, mu1, s1, kappa=1.0, bh=2, bw=4, side_iters=0):
    h, w, _ = rgb.shape
    m, r = (mu1 - mu_p) / s_p, s1 / s_p
    u = torch.rand(m.shape, generator=torch.Generator().manual_seed(5)) - 0.5
    wgt = (r.pow(-2) - 1).clamp(min=0)
    Z, B = [], []
    for d in DELTAS:
        k = torch.round(m / d + u)
        s = math.sqrt(max(1 - d * d / 12, 0.05))
        p = _ncdf(d * (k - u + 0.5) / s) - _ncdf(d * (k - u - 0.5) / s)
        B.append(-torch.log2(p.clamp(min=1e-9)))
        Z.append(d * (k - u))
    B, Z = torch.stack(B), torch.stack(Z)

    def blk(t):
        sh = t.shape
        return t.reshape(*sh[:-2], sh[-2] // bh, bh, sh[-1] // bw, bw).sum((-3, -1))
    allc = torch.cat([blk(0.5 * wgt * m ** 2)[None],
                      blk(0.5 * wgt * (Z - m) ** 2) + kappa * math.log(2) * blk(B)], 0)
    choice = allc.argmin(0)
    n = NJ + 1
    for _ in range(side_iters):        # the step map's own cost, from the previous choice
        c = choice[0].numpy()
        a, lft = np.zeros_like(c), np.zeros_like(c)
        a[:, 1:, :], lft[:, :, 1:] = c[:, :-1, :], c[:, :, :-1]
        t = np.ones((n, n, n))
        np.add.at(t, (a.ravel(), lft.ravel(), c.ravel()), 1)
        pen = -np.log2((t / t.sum(-1, keepdims=True))[a, lft])
        choice = (allc + kappa * math.log(2) * torch.from_numpy(pen).permute(3, 0, 1, 2)[:, None]
                  .float()).argmin(0)
    ch = choice.repeat_interleave(bh, -2).repeat_interleave(bw, -1)
    idx = (ch - 1).clamp(min=0)[None]
    z = torch.where(ch == 0, torch.zeros_like(m), torch.gather(Z, 0, idx)[0])
    bits = torch.where(ch == 0, torch.zeros_like(m), torch.gather(B, 0, idx)[0]).sum().item()
    side = _step_map_bits(choice[0].numpy())
    return {"kappa": kappa, "block": f"{bw}x{bh}", "side_iters": side_iters,
            "l1_index_bpp": bits / (h * w), "l1_step_map_bpp": side / (h * w),
            "psnr": psnr(rgb, _image(model, mu_p + s_p * z, q, h, w)),
            "bits_l1": bits + side}


def _adaptive_index_bits(k: np.ndarray, limit: int = 15) -> float:
    """Ideal code length of indices k (M, H, W) under adaptive counts per context (above,
    left magnitudes up to 2), in raster order, all channels at once; escapes cost 16 bits."""
    m, h, w = k.shape
    cnt = np.ones((9, 2 * limit + 2))
    esc = np.abs(k) > limit
    sym = np.where(esc, 2 * limit + 1, np.clip(k, -limit, limit) + limit)
    bits = 16.0 * esc.sum()
    for y in range(h):
        for x in range(w):
            a = np.minimum(np.abs(k[:, y - 1, x]), 2) if y else np.zeros(m, int)
            lft = np.minimum(np.abs(k[:, y, x - 1]), 2) if x else np.zeros(m, int)
            c, s = a * 3 + lft, sym[:, y, x]
            rows = cnt[c]
            bits += -np.log2(rows[np.arange(m), s] / rows.sum(1)).sum()
            np.add.at(cnt, (c, s), 1)
    return bits


def decoder_step(model, rgb, q, mu_p, s_p, mu1, s1, s_x):
    h, w, _ = rgb.shape
    m = (mu1 - mu_p) / s_p
    sx_c = torch.exp(torch.log(s_x).mean((2, 3), keepdim=True))
    sx_c = 2.0 ** (torch.round(torch.log2(sx_c) * 8) / 8)
    r_hat = 1 / torch.sqrt(s_p ** 2 / sx_c ** 2 + 1)
    u = torch.rand(m.shape, generator=torch.Generator().manual_seed(5)) - 0.5
    d = math.sqrt(12) * r_hat
    k = torch.round(m / d + u)
    s = torch.sqrt((1 - r_hat ** 2).clamp(min=0.05))
    p = _ncdf(d * (k - u + 0.5) / s) - _ncdf(d * (k - u - 0.5) / s)
    return {"bits_l1": _adaptive_index_bits(k[0].numpy().astype(np.int64)),
            "bits_l1_float_table": -torch.log2(p.clamp(min=1e-9)).sum().item(),
            "psnr": psnr(rgb, _image(model, mu_p + s_p * d * (k - u), q, h, w))}


def hybrid_is(model, rgb, q, mu_p, s_p, mu1, s1, settings: Settings, thr=0.25, budget=11.0,
              index_bits=12):
    h, w, _ = rgb.shape
    fmt, search = settings.level1, settings.level1_search
    bh, bw = fmt.block_h, fmt.block_w
    mean, std = to_blocks((mu1 - mu_p) / s_p, bh, bw), to_blocks(s1 / s_p, bh, bw)
    kl = kl_bits_standardized(mean, std)
    out, shards, gm, gs = plan(mean, std, fmt, search, kl)
    shards, _, sample = rd_encode(gm, gs, shards, 0, fmt.shard_bits, fmt.shard_decay,
                                  search.beam, search.rd_kappa, fmt.max_shards,
                                  lookahead=search.lookahead)
    sample[out] = mean[out]                  # outliers as nnc sends them (16-bit values)
    zero = shards == 0
    sel = zero[:, None] & (kl > thr)
    pos = torch.nonzero(sel.flatten()).squeeze(1)
    code, zs = importance_encode(mean.flatten()[pos], std.flatten()[pos], 7, index_bits, budget,
                                 4096, 99.0, 3.0)
    s = sample.clone().flatten()
    s[pos] = zs
    z1 = mu_p + s_p * from_blocks(s.view_as(sample), *mu1.shape[1:], bh, bw)
    n_groups = len(code.group_sizes)
    flag = sel.any(1)[zero].float().mean().item()
    flag_bits = zero.sum().item() * -sum(x * math.log2(x) for x in (flag, 1 - flag) if x > 0)
    extra = n_groups * (index_bits + 4) + flag_bits   # ~4 bits per coded group size
    return {"thr": thr, "group_kl_bits": budget, "dims": int(pos.numel()),
            "extra_bpp": extra / (h * w), "psnr_greedy_only": psnr(rgb, _image(
                model, mu_p + s_p * from_blocks(sample, *mu1.shape[1:], bh, bw), q, h, w)),
            "psnr": psnr(rgb, _image(model, z1, q, h, w))}


@torch.no_grad()
def measure(model, name: str, q: float, settings: Settings) -> dict:
    rgb = np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB"))
    h, w, _ = rgb.shape
    img = RasterImage(rgb, False, None)
    st = codec.CompressStats()
    data = codec.compress(img, quality=q, device="cpu", settings=settings, stats=st)
    dec = codec.decompress(data, device="cpu").rgb
    x = tiling.to_tensor(img, model.stride, "cpu")
    qt = torch.tensor([q])
    # level 1 conditioned on z2 as the file codes it (seed 0, as codec.compress)
    post = model.posteriors(x, qt, encode=tiling.encode)
    _, z2 = importance.encode(*post.z2, 0, settings.level2, settings.level2_search)
    (mu_p, s_p), (mu1, s1) = model.level1(post.x, z2, qt)
    s_x = post.x[1]
    g = torch.Generator().manual_seed(0)
    exact = _image(model, mu1 + s1 * torch.randn(mu1.shape, generator=g), qt, h, w)
    secs = {s["section"]: s["bytes"] for s in describe(data)["sections"]}
    rest_bits = 8 * (len(data) - secs["Z1SA"] - secs["Z1IX"])   # level 2, header, framing
    row = {"image": name, "quality": q, "file_bpp": 8 * len(data) / (h * w),
           "file_psnr": psnr(rgb, dec), "kl_bpp": (st.kl1_bits + st.kl2_bits) / (h * w),
           "exact_sample_psnr": psnr(rgb, exact), "level2_and_framing_bpp": rest_bits / (h * w),
           "dithered": [], "hybrid_is": []}
    d = decoder_step(model, rgb, qt, mu_p, s_p, mu1, s1, s_x)
    row["decoder_step"] = {"bpp": (rest_bits + d["bits_l1"]) / (h * w),
                           "bpp_float_table": (rest_bits + d["bits_l1_float_table"]) / (h * w),
                           "psnr": d["psnr"]}
    for kw in ({}, {"side_iters": 2}, {"side_iters": 2, "bh": 4, "bw": 4},
               {"side_iters": 2, "kappa": 0.7}):
        d = dithered(model, rgb, qt, mu_p, s_p, mu1, s1, **kw)
        d["bpp"] = (rest_bits + d.pop("bits_l1")) / (h * w)
        row["dithered"].append(d)
    for thr in (0.25, 0.5):
        d = hybrid_is(model, rgb, qt, mu_p, s_p, mu1, s1, settings, thr=thr)
        d["bpp"] = row["file_bpp"] + d["extra_bpp"]
        row["hybrid_is"].append(d)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=["kodim05", "kodim23"])
    ap.add_argument("--qualities", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(None, "cpu").net
    settings = Settings()
    res = {"machine": f"{platform.machine()} CPU, 2 threads", "settings": settings.flat(),
           "rows": []}
    for name in args.images:
        for q in args.qualities:
            r = measure(model, name, q, settings)
            res["rows"].append(r)
            print(f"{name} q={q}: file {r['file_bpp']:.3f}/{r['file_psnr']:.2f}  exact@ΣKL "
                  f"{r['kl_bpp']:.3f}/{r['exact_sample_psnr']:.2f}  " + "  ".join(
                      f"dq{d['block']}/s{d['side_iters']}/κ{d['kappa']} {d['bpp']:.3f}/"
                      f"{d['psnr']:.2f}" for d in r["dithered"]) + "  " + "  ".join(
                      f"is>{d['thr']} {d['bpp']:.3f}/{d['psnr']:.2f}" for d in r["hybrid_is"])
                  + f"  decoder-step {r['decoder_step']['bpp']:.3f}/"
                  f"{r['decoder_step']['psnr']:.2f}",
                  flush=True)
            args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
