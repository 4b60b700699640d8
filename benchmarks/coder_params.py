"""Coder settings on real files: bpp and PSNR of nnc on some Kodak images for variants of
the coder parameters (all of them header fields, so any variant decodes with any nnc).

    python benchmarks/coder_params.py --out benchmarks/results/coder-params.json
    python benchmarks/coder_params.py --qualities 0.2 0.4 0.6 0.8 1 \
        --variants refine-none refine2-step0.5 refine3-step0.5 refine5-step0.5 \
        refine10-step0.5 refine5-level1-only refine5-level2-only \
        --out benchmarks/results/refine-params.json

For each variant: mean bpp and RGB PSNR per rate parameter, and BD-rate (PSNR) against the
thesis's equal shards (the coder's settings before they were refit for pln-gpu-1) and, where
benchmarks/results/rd.json holds WebP on the same images, against WebP. Used to refit the
parameters when the model changes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnc import codec
from nnc.image_io import RasterImage
from nnc.metrics import bd_rate, psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rd  # noqa: E402  (mean curves over images)

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
RD_JSON = Path(__file__).resolve().parent / "results" / "rd.json"


def webp_curve(images: list[str]) -> tuple[list[float], list[float]] | None:
    """WebP's mean (bpp, PSNR) per setting over ``images``, from rd.json (None without it)."""
    if not RD_JSON.exists():
        return None
    webp = json.loads(RD_JSON.read_text())["codecs"]["webp"]
    pts = rd.mean_points({**webp, "per_image": {n: webp["per_image"][f"{n}.png"]
                                                for n in images}})
    return [p["bpp"] for p in pts], [p["psnr"] for p in pts]


VARIANTS = {
    "equal-shards": {"l1_shard_decay": 1.0},   # the reference
    "decay0.9": {"l1_shard_decay": 0.9},
    "decay0.8": {"l1_shard_decay": 0.8},
    "decay0.7": {"l1_shard_decay": 0.7},
    "decay0.6": {"l1_shard_decay": 0.6},
    "decay0.5": {"l1_shard_decay": 0.5},
    "decay0.4": {"l1_shard_decay": 0.4},
    "decay0.7+rate1.25": {"l1_shard_decay": 0.7, "l1_rate_scale": 1.25},
    "decay0.5+rate1.15": {"l1_shard_decay": 0.5, "l1_rate_scale": 1.15},
    "decay0.5+rate1.3": {"l1_shard_decay": 0.5, "l1_rate_scale": 1.3},
    "block2x2+decay0.7": {"l1_block_w": 2, "l1_block_h": 2, "l1_shard_decay": 0.7},
    "block2x2+decay0.8": {"l1_block_w": 2, "l1_block_h": 2, "l1_shard_decay": 0.8},
    "rate1.25": {"l1_rate_scale": 1.25},
    "outlier12": {"l1_outlier_kl_bits": 12.0},
    "outlier24": {"l1_outlier_kl_bits": 24.0},
    "block2x2": {"l1_block_w": 2, "l1_block_h": 2},
    "block4x4": {"l1_block_w": 4, "l1_block_h": 4},
    # the level-1 search (encoder only): the thesis's greedy score, the lookahead score, beams
    "greedy-nolookahead": {"l1_lookahead": False},
    "lookahead": {"l1_lookahead": True},
    "lookahead+beam4": {"l1_beam": 4},
    "lookahead+beam16": {"l1_beam": 16},
    "beam16+first2": {"l1_beam": 16, "l1_first_shard_kl": 2.0},
    "beam16+first3": {"l1_beam": 16, "l1_first_shard_kl": 3.0},
    "beam16+first5": {"l1_beam": 16, "l1_first_shard_kl": 5.0},
    "beam16+rate1.1": {"l1_beam": 16, "l1_rate_scale": 1.1},
    # with the adaptive side information (sections Z1SA, Z2SA)
    "beam16+adaptive-side": {},
    "l2budget11.5": {"l2_group_kl_bits": 11.5},
    "l2budget12": {"l2_group_kl_bits": 12.0},
    "l2sharpen3": {"l2_sharpen": 3.0},
    "l2sharpen100": {"l2_sharpen": 100.0},
    "rd-kappa0.5": {"l1_rd_kappa": 0.5},
    "rd-kappa0.7": {"l1_rd_kappa": 0.7},
    "rd-kappa1": {"l1_rd_kappa": 1.0},
    "rd-kappa1.5": {"l1_rd_kappa": 1.5},
    "rd-kappa2": {"l1_rd_kappa": 2.0},
    # per-image refinement (model/refine.py; encoder only): steps per level and step size
    "refine-none": {},
    "refine2-step0.5": {"refine_steps": 2, "refine_l2_steps": 2, "refine_step": 0.5},
    "refine3-step0.5": {"refine_steps": 3, "refine_l2_steps": 3, "refine_step": 0.5},
    "refine5-step0.5": {"refine_steps": 5, "refine_l2_steps": 5, "refine_step": 0.5},
    "refine10-step0.5": {"refine_steps": 10, "refine_l2_steps": 10, "refine_step": 0.5},
    "refine5-level1-only": {"refine_steps": 5, "refine_step": 0.5},
    "refine5-level2-only": {"refine_l2_steps": 5, "refine_step": 0.5},
    # cheaper refinement for the CPU default (2026-11-30)
    "refine1-step0.5": {"refine_steps": 1, "refine_l2_steps": 1, "refine_step": 0.5},
    "refine2-beam8": {"refine_steps": 2, "refine_l2_steps": 2, "refine_step": 0.5, "l1_beam": 8},
    "refine-l2x1-l1x2": {"refine_steps": 2, "refine_l2_steps": 1, "refine_step": 0.5},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim04", "kodim08", "kodim13",
                                                      "kodim19", "kodim23"])
    ap.add_argument("--qualities", type=float, nargs="+", default=[0, 0.33, 0.67, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--merge", type=Path, default=None,
                    help="an earlier output with the same images and rates: keep its variants")
    args = ap.parse_args()
    torch.set_num_threads(2)
    imgs = [np.asarray(Image.open(KODAK / f"{n}.png").convert("RGB")) for n in args.images]
    res = {"images": args.images, "qualities": args.qualities,
           "model": codec._default_name(), "variants": {}}
    webp = webp_curve(args.images)
    if args.merge:
        res["variants"] = json.loads(args.merge.read_text())["variants"]
    for name in args.variants:
        p = replace(codec.CoderParams(), **VARIANTS[name])
        t0 = time.perf_counter()
        pts = []
        for q in args.qualities:
            b, s = [], []
            for rgb in imgs:
                data = codec.compress(RasterImage(rgb, False, None), q, params=p)
                out = codec.decompress(data).rgb
                b.append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
                s.append(psnr(rgb, out))
            pts.append({"quality": q, "bpp": float(np.mean(b)), "psnr": float(np.mean(s))})
        res["variants"][name] = {"params": asdict(p), "points": pts,
                                 "wall_s": round(time.perf_counter() - t0, 1)}
        rates, quals = [x["bpp"] for x in pts], [x["psnr"] for x in pts]
        base = res["variants"].get("equal-shards")
        if base:
            bd = bd_rate([x["bpp"] for x in base["points"]], [x["psnr"] for x in base["points"]],
                         rates, quals)
            res["variants"][name]["bd_rate_vs_equal_shards"] = bd
        if webp:
            res["variants"][name]["bd_rate_vs_webp"] = bd_rate(*webp, rates, quals)
        v = res["variants"][name]
        print(name, " ".join(f"{x['bpp']:.3f}/{x['psnr']:.2f}" for x in pts),
              f"BD {v.get('bd_rate_vs_equal_shards', float('nan')):+.1f}%",
              f"vs WebP {v.get('bd_rate_vs_webp', float('nan')):+.1f}%", flush=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
