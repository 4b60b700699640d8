"""Does the synthesis lose by decoding coded latents rather than the posterior samples it was
trained on? Fine-tune it on the latents the CPU default's coders actually decode, and measure
the PSNR gain on held-out coded latents (an experiment for the coder issue; no model is
installed).

1. Every training crop is compressed at ``--rates`` random rate parameters with the default
   settings, and its decoded z1 (prior mean + prior scale x the level-1 code, as the decoder
   computes it) is kept with the crop and its rate.
2. Only the synthesis g_s is trained (Adam, batch ``--batch``, loss the mean log MSE of the
   batch, so every rate counts alike); every ``--every`` steps the PSNR of the 8-bit decodes
   of the held-out latents (one in 16) is compared with the shipped synthesis's.

    python -m benchmarks.decoder_finetune --out benchmarks/results/decoder-finetune.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import SHARED

TRAIN = SHARED / "data" / "train"


def coded_latents(files: list[Path], rates: int, seed: int = 1234):
    """(z1 float16 (n, M, h, w), rate parameters (n,), crop numbers (n,), the crops as
    float tensors (crops, 3, H, W) in [0, 1]) of the crops' files compressed with the
    default settings, z1 as the decoder computes it (codec.decoded_latent)."""
    from nnc import codec
    from nnc.codes import read_codes
    from nnc.image_io import read_image
    from nnc.model.weights import load_model
    rng = np.random.default_rng(seed)
    model = load_model(None, "cpu").net
    zs, qs, ids, crops = [], [], [], []
    for i, f in enumerate(files):
        img = read_image(f.read_bytes())
        crops.append(torch.from_numpy(img.rgb).permute(2, 0, 1).float() / 255)
        for _ in range(rates):
            data = codec.compress(img, float(rng.uniform(0, 1)),
                                  seed=int(rng.integers(0, 2 ** 31)))
            c = read_codes(data, 1 << 30)
            z1 = codec.decoded_latent(c, model, "cpu")
            zs.append(z1[0].numpy().astype(np.float16))
            qs.append(c.header.quality)
            ids.append(i)
    return np.stack(zs), np.asarray(qs, np.float32), np.asarray(ids), torch.stack(crops)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=int, default=1, help="random rate parameters per crop")
    ap.add_argument("--crops", type=int, default=0, help="the first N crops only (0: all)")
    ap.add_argument("--lr", type=float, nargs="+", default=[5e-5, 1e-5])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from nnc.model.weights import load_model
    files = sorted(TRAIN.glob("*.jpg")) + sorted(TRAIN.glob("*.png"))
    files = files[:args.crops or None]
    t0 = time.perf_counter()
    z, q, ids, x_all = coded_latents(files, args.rates)
    gen_s = time.perf_counter() - t0
    held = np.arange(len(z)) % 16 == 0
    train, val = np.nonzero(~held)[0], np.nonzero(held)[0]

    def batch(rows):
        return (torch.from_numpy(z[rows].astype(np.float32)), torch.from_numpy(q[rows]),
                x_all[ids[rows]])

    def val_psnr(net) -> float:
        out = []
        with torch.no_grad():
            for a in range(0, len(val), 16):
                zz, qq, xx = batch(val[a:a + 16])
                xh = (net.decode(zz, qq).clamp(0, 1) * 255).round() / 255
                out.append(-10 * torch.log10((xh - xx).square().flatten(1).mean(1)))
        return float(torch.cat(out).mean())

    res = {"machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
           "crops": len(files), "latents": len(z), "held_out": len(val),
           "coded_latents_s": round(gen_s, 1), "batch": args.batch, "runs": {}}
    for lr in args.lr:
        net = copy.deepcopy(load_model(None, "cpu").net)     # the cached one stays as it is
        net.requires_grad_(False)
        net.g_s.requires_grad_(True)
        opt = torch.optim.Adam(net.g_s.parameters(), lr=lr)
        rng = np.random.default_rng(0)
        base = val_psnr(net)
        curve, t = [], time.perf_counter()
        for step in range(1, args.steps + 1):
            zz, qq, xx = batch(rng.choice(train, args.batch, replace=False))
            loss = torch.log((net.decode(zz, qq) - xx).square().flatten(1).mean(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % args.every == 0:
                gain = val_psnr(net) - base
                curve.append({"step": step, "s": round(time.perf_counter() - t, 1),
                              "held_out_gain_db": round(gain, 4)})
                print(f"lr {lr:g} step {step}: {gain:+.4f} dB", flush=True)
        res["runs"][f"{lr:g}"] = {"held_out_psnr_shipped": round(base, 3), "curve": curve}
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}))


if __name__ == "__main__":
    main()
