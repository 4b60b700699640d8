"""Compare training checkpoints on Kodak by their theoretical rate–distortion curve.

    python -m benchmarks.checkpoints runs/a/ckpt.pt runs/b/ckpt.pt --out results/x.json

For each checkpoint and rate parameter: the ΣKL rate (bits per pixel) and the PSNR and
MS-SSIM of the posterior-mean reconstruction, means over the images; then the BD-rate of
every checkpoint against the first. No coding: this ranks models quickly (about a minute
per checkpoint on 2 cores), the coded files are measured by rd.py once a model ships.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nnc.metrics import bd_rate, ms_ssim, ms_ssim_db, psnr
from nnc.model.pln import DEFAULT_ARCH, build

from benchmarks.common import KODAK, load_images, posterior_decodes


def evaluate(ckpt: Path, images, qualities) -> dict:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = build(state.get("arch", DEFAULT_ARCH), state["config"])
    model.load_state_dict(state["model"])
    model.eval()
    pts = []
    for q in qualities:
        bpp, ps, ms = [], [], []
        for rgb in images:
            kl_bits, y, _ = posterior_decodes(model, rgb, q, sample=False)
            bpp.append(kl_bits / (rgb.shape[0] * rgb.shape[1]))
            ps.append(psnr(rgb, y))
            ms.append(ms_ssim(rgb, y))
        pts.append({"quality": q, "kl_bpp": float(np.mean(bpp)), "psnr": float(np.mean(ps)),
                    "ms_ssim": float(np.mean(ms))})
        print(f"  {ckpt} q={q:.2f} ΣKL={pts[-1]['kl_bpp']:.3f} bpp  "
              f"PSNR={pts[-1]['psnr']:.2f}  MS-SSIM={pts[-1]['ms_ssim']:.4f}", flush=True)
    return {"checkpoint": str(ckpt), "step": int(state["step"]),
            "wall_s": float(state["wall_s"]), "likelihood": state.get("likelihood", "gaussian"),
            "config": state["config"], "points": pts}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", type=Path, nargs="+")
    ap.add_argument("--qualities", type=float, nargs="+", default=[0, 0.2, 0.4, 0.6, 0.8, 1])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N Kodak images")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # Kodak images are 768x512 / 512x768: multiples of the model's stride, no padding
    images = [rgb for _, rgb in load_images(KODAK, args.limit)]
    res = [evaluate(c, images, args.qualities) for c in args.checkpoints]
    ref = res[0]["points"]
    for r in res[1:]:
        p = r["points"]
        r["bd_rate_vs_first"] = {
            "psnr": bd_rate([x["kl_bpp"] for x in ref], [x["psnr"] for x in ref],
                            [x["kl_bpp"] for x in p], [x["psnr"] for x in p]),
            "ms_ssim": bd_rate([x["kl_bpp"] for x in ref], [ms_ssim_db(x["ms_ssim"]) for x in ref],
                               [x["kl_bpp"] for x in p], [ms_ssim_db(x["ms_ssim"]) for x in p])}
        print(r["checkpoint"], "BD-rate vs", res[0]["checkpoint"], r["bd_rate_vs_first"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
