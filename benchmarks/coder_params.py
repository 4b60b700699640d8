"""Coder settings on real files: bpp and PSNR of nnc on some Kodak images for variants of
the encoder's settings (the format fields among them are header fields, so any variant
decodes with any nnc).

    python -m benchmarks.coder_params --out benchmarks/results/coder-params.json
    python -m benchmarks.coder_params --variants refine --qualities 0.2 0.4 0.6 0.8 1 \
        --out benchmarks/results/refine-params.json
    python -m benchmarks.coder_params --variants shards \
        --out benchmarks/results/coder-params-shards.json
    python -m benchmarks.coder_params --variants likelihood \
        --out benchmarks/results/coder-params-likelihood.json
    python -m benchmarks.coder_params --variants equal-shards rd-kappa1 --out /tmp/x.json

(from the repository root). Every variant is a complete configuration: all the settings of
nnc.settings.Settings by their flat names, spelled out below and not taken from today's
defaults, so a variant measures the same thing however the defaults change (a new setting
must be added to THESIS, with the value that reproduces the code before it, or the script
refuses to run). Each result records the settings it ran with (``settings``:
Settings.flat()). What settings cannot pin is the code itself: "beam16+adaptive-side" has
the settings of "lookahead+beam16" and was measured after the side information became
adaptive (sections Z1SA/Z2SA), which every variant now gets.

For each variant: mean bpp and RGB PSNR per rate parameter, and BD-rate (PSNR) against the
thesis's equal shards (the coder's settings before they were refit for pln-gpu-1) and, where
benchmarks/results/rd.json holds WebP on the same images, against WebP. Used to refit the
settings when the model changes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnc import codec
from nnc.image_io import RasterImage
from nnc.metrics import bd_rate, psnr
from nnc.model.weights import default_model_name
from nnc.settings import Settings

from benchmarks.common import KODAK, RESULTS, mean_points

RD_JSON = RESULTS / "rd.json"


def webp_curve(images: list[str]) -> tuple[list[float], list[float]] | None:
    """WebP's mean (bpp, PSNR) per setting over ``images``, from rd.json (None without it)."""
    if not RD_JSON.exists():
        return None
    webp = json.loads(RD_JSON.read_text())["codecs"]["webp"]
    pts = mean_points({**webp, "per_image": {n: webp["per_image"][f"{n}.png"]
                                             for n in images}})
    return [p["bpp"] for p in pts], [p["psnr"] for p in pts]


# Every setting as the thesis's coder had them: equal shards, the greedy rule (one beam, no
# lookahead), round(KL / 8) shards (first shard from 4 bits), level-2 candidates chosen by
# q/p, no refinement. The reference ("equal-shards") of coder-params.json.
THESIS = {
    "l1_block_w": 4, "l1_block_h": 2, "l1_shard_bits": 8, "l1_max_shards": 15,
    "l1_shard_decay": 1.0, "l1_outlier_kl_bits": 16.0,
    "l1_rate_scale": 1.0, "l1_first_shard_kl": 4.0, "l1_beam": 1, "l1_lookahead": False,
    "l1_rd_kappa": 0.0, "l1_target": "posterior", "l1_rd_offsets": (-1, 0, 1),
    "l2_index_bits": 12, "l2_max_group": 1024, "l2_group_kl_bits": 11.0,
    "l2_outlier_kl_bits": 11.0,
    "l2_sharpen": 1.0,
    "refine_steps": 0, "refine_l2_steps": 0, "refine_step": 0.5, "refine_coder_aware": True,
    "refine_check": True, "refine_precision": "float32", "analysis_precision": "float32",
}
# the level-1 search of 2026-11-22 (decay 0.5, lookahead, beam 16), level 2 still by q/p
BEAM16 = {**THESIS, "l1_shard_decay": 0.5, "l1_lookahead": True, "l1_beam": 16}
# nnc's defaults from 2026-11-22 (with the level-2 sharpening and rate-distortion shard
# counts), no refinement: the base of the refinement variants (refine-params.json)
CODER_2026_11_22 = {**BEAM16, "l2_sharpen": 3.0, "l1_rd_kappa": 1.0}


def _refine(steps: int, l2_steps: int) -> dict:
    return {**CODER_2026_11_22, "refine_steps": steps, "refine_l2_steps": l2_steps,
            "refine_step": 0.5}


# the CPU default at the end of 2026-11-30's second session (9-bit shards, beam 24)
DEFAULT_2026_11_30 = {**_refine(1, 1), "l1_target": "likelihood", "l1_shard_bits": 9,
                      "l1_beam": 24}
BF16_2026_11_30 = {**DEFAULT_2026_11_30, "refine_precision": "bfloat16",
                   "analysis_precision": "bfloat16"}
# the CPU default since the night of 2026-11-30: two level-2 steps from 0.35, in bfloat16
NIGHT_2026_11_30 = {**BF16_2026_11_30, "refine_l2_steps": 2, "refine_step": 0.35}
# the CPU default since late that night: level 1 in 4x4 blocks of 10-bit shards, beam 16
BLOCKS_2026_11_30 = {**NIGHT_2026_11_30, "l1_block_h": 4, "l1_shard_bits": 10, "l1_beam": 16,
                     "l1_shard_decay": 0.6}

VARIANTS = {
    "equal-shards": THESIS,   # the reference
    "decay0.9": {**THESIS, "l1_shard_decay": 0.9},
    "decay0.8": {**THESIS, "l1_shard_decay": 0.8},
    "decay0.7": {**THESIS, "l1_shard_decay": 0.7},
    "decay0.6": {**THESIS, "l1_shard_decay": 0.6},
    "decay0.5": {**THESIS, "l1_shard_decay": 0.5},
    "decay0.4": {**THESIS, "l1_shard_decay": 0.4},
    "decay0.7+rate1.25": {**THESIS, "l1_shard_decay": 0.7, "l1_rate_scale": 1.25},
    "decay0.5+rate1.15": {**THESIS, "l1_shard_decay": 0.5, "l1_rate_scale": 1.15},
    "decay0.5+rate1.3": {**THESIS, "l1_shard_decay": 0.5, "l1_rate_scale": 1.3},
    "block2x2+decay0.7": {**THESIS, "l1_block_w": 2, "l1_block_h": 2, "l1_shard_decay": 0.7},
    "block2x2+decay0.8": {**THESIS, "l1_block_w": 2, "l1_block_h": 2, "l1_shard_decay": 0.8},
    "rate1.25": {**THESIS, "l1_rate_scale": 1.25},
    "outlier12": {**THESIS, "l1_outlier_kl_bits": 12.0},
    "outlier24": {**THESIS, "l1_outlier_kl_bits": 24.0},
    "block2x2": {**THESIS, "l1_block_w": 2, "l1_block_h": 2},
    "block4x4": {**THESIS, "l1_block_w": 4, "l1_block_h": 4},
    # the level-1 search (encoder only): the thesis's greedy score, the lookahead score, beams
    "greedy-nolookahead": {**THESIS, "l1_shard_decay": 0.5},   # = decay0.5
    "lookahead": {**THESIS, "l1_shard_decay": 0.5, "l1_lookahead": True},
    "lookahead+beam4": {**THESIS, "l1_shard_decay": 0.5, "l1_lookahead": True, "l1_beam": 4},
    "lookahead+beam16": BEAM16,
    "beam16+first2": {**BEAM16, "l1_first_shard_kl": 2.0},
    "beam16+first3": {**BEAM16, "l1_first_shard_kl": 3.0},
    "beam16+first5": {**BEAM16, "l1_first_shard_kl": 5.0},
    "beam16+rate1.1": {**BEAM16, "l1_rate_scale": 1.1},
    # with the adaptive side information (sections Z1SA, Z2SA): a format change, no setting
    "beam16+adaptive-side": BEAM16,
    "l2budget11.5": {**BEAM16, "l2_group_kl_bits": 11.5},
    "l2budget12": {**BEAM16, "l2_group_kl_bits": 12.0},
    "l2sharpen3": {**BEAM16, "l2_sharpen": 3.0},
    "l2sharpen100": {**BEAM16, "l2_sharpen": 100.0},
    "rd-kappa0.5": {**CODER_2026_11_22, "l1_rd_kappa": 0.5},
    "rd-kappa0.7": {**CODER_2026_11_22, "l1_rd_kappa": 0.7},
    "rd-kappa1": CODER_2026_11_22,
    "rd-kappa1.5": {**CODER_2026_11_22, "l1_rd_kappa": 1.5},
    "rd-kappa2": {**CODER_2026_11_22, "l1_rd_kappa": 2.0},
    # per-image refinement (model/refine.py; encoder only): steps per level and step size
    "refine-none": CODER_2026_11_22,
    "refine2-step0.5": _refine(2, 2),
    "refine3-step0.5": _refine(3, 3),
    "refine5-step0.5": _refine(5, 5),
    "refine10-step0.5": _refine(10, 10),
    "refine5-level1-only": _refine(5, 0),
    "refine5-level2-only": _refine(0, 5),
    # cheaper refinement for the CPU default (2026-11-30)
    "refine1-step0.5": _refine(1, 1),
    "refine2-beam8": {**_refine(2, 2), "l1_beam": 8},
    "refine-l2x1-l1x2": _refine(2, 1),
    # coding level 1 against the likelihood the posterior implies, not the posterior
    # (2026-11-30, issue 13; encoder only)
    "lik": {**CODER_2026_11_22, "l1_target": "likelihood"},
    "lik-kappa1.5": {**CODER_2026_11_22, "l1_target": "likelihood", "l1_rd_kappa": 1.5},
    "lik-kappa0.7": {**CODER_2026_11_22, "l1_target": "likelihood", "l1_rd_kappa": 0.7},
    "lik-off2": {**CODER_2026_11_22, "l1_target": "likelihood", "l1_rd_offsets": (-1, 0, 1, 2)},
    "lik+refine1": {**_refine(1, 1), "l1_target": "likelihood"},
    "lik-decay0.6": {**CODER_2026_11_22, "l1_target": "likelihood", "l1_shard_decay": 0.6},
    "lik+refine1-unmasked": {**_refine(1, 1), "l1_target": "likelihood",
                             "refine_coder_aware": False},
    "lik+refine1-kappa1.5": {**_refine(1, 1), "l1_target": "likelihood", "l1_rd_kappa": 1.5},
    "lik-beam32": {**CODER_2026_11_22, "l1_target": "likelihood", "l1_beam": 32},
    # shard size and block shape with the likelihood target and refinement (a header
    # setting each, no format change; 2026-11-30)
    "lik+refine1-bits6": {**_refine(1, 1), "l1_target": "likelihood", "l1_shard_bits": 6},
    "lik+refine1-bits7": {**_refine(1, 1), "l1_target": "likelihood", "l1_shard_bits": 7},
    "lik+refine1-block2x2": {**_refine(1, 1), "l1_target": "likelihood",
                             "l1_block_w": 2, "l1_block_h": 2},
    "lik+refine1-block2x2-bits6": {**_refine(1, 1), "l1_target": "likelihood",
                                   "l1_block_w": 2, "l1_block_h": 2, "l1_shard_bits": 6},
    "lik+refine1-block4x4": {**_refine(1, 1), "l1_target": "likelihood",
                             "l1_block_w": 4, "l1_block_h": 4},
    "lik+refine1-bits9": {**_refine(1, 1), "l1_target": "likelihood", "l1_shard_bits": 9},
    "lik+refine1-bits10": {**_refine(1, 1), "l1_target": "likelihood", "l1_shard_bits": 10},
    "lik+refine1-bits9-beam24": {**_refine(1, 1), "l1_target": "likelihood",
                                 "l1_shard_bits": 9, "l1_beam": 24},
    "lik+refine1-bits9-beam32": {**_refine(1, 1), "l1_target": "likelihood",
                                 "l1_shard_bits": 9, "l1_beam": 32},
    "lik+refine1-bits10-beam24": {**_refine(1, 1), "l1_target": "likelihood",
                                  "l1_shard_bits": 10, "l1_beam": 24},
    # level 2's group budget and index size with the level-1 default of 2026-11-30 (evening)
    "lik+refine1-bits9-beam24-l2idx13": {**_refine(1, 1), "l1_target": "likelihood",
                                         "l1_shard_bits": 9, "l1_beam": 24,
                                         "l2_index_bits": 13, "l2_group_kl_bits": 12.0},
    "lik+refine1-bits9-beam24-l2budget10": {**_refine(1, 1), "l1_target": "likelihood",
                                            "l1_shard_bits": 9, "l1_beam": 24,
                                            "l2_group_kl_bits": 10.0},
    "lik+refine1-beam32": {**_refine(1, 1), "l1_target": "likelihood", "l1_beam": 32},
    "lik+refine1-bits10-beam4": {**_refine(1, 1), "l1_target": "likelihood",
                                 "l1_shard_bits": 10, "l1_beam": 4},
    # refinement's g_s folded and in bfloat16 on the CPU (model/fused.py; 2026-11-30, issue 17)
    "prec-fp32": DEFAULT_2026_11_30,
    "prec-bf16": {**DEFAULT_2026_11_30, "refine_precision": "bfloat16"},
    "prec-bf16-beam16": {**DEFAULT_2026_11_30, "refine_precision": "bfloat16", "l1_beam": 16},
    "prec-bf16-analysis": BF16_2026_11_30,
    # what the time bfloat16 saves could buy, or what more could be saved (issue 17)
    "prec-bf16-refine2": {**BF16_2026_11_30, "refine_steps": 2, "refine_l2_steps": 2},
    "prec-bf16-refine3": {**BF16_2026_11_30, "refine_steps": 3, "refine_l2_steps": 3},
    "prec-bf16-step0.35": {**BF16_2026_11_30, "refine_step": 0.35},
    "prec-bf16-step0.7": {**BF16_2026_11_30, "refine_step": 0.7},
    "prec-bf16-step0.25": {**BF16_2026_11_30, "refine_step": 0.25},
    "prec-bf16-step0.3": {**BF16_2026_11_30, "refine_step": 0.3},
    "prec-bf16-step0.4": {**BF16_2026_11_30, "refine_step": 0.4},
    "prec-bf16-l2x2": {**BF16_2026_11_30, "refine_l2_steps": 2},
    "prec-bf16-l2x2-step0.35": {**BF16_2026_11_30, "refine_l2_steps": 2, "refine_step": 0.35},
    "prec-bf16-refine5": {**BF16_2026_11_30, "refine_steps": 5, "refine_l2_steps": 5},
    "prec-bf16-refine5-step0.35": {**BF16_2026_11_30, "refine_steps": 5, "refine_l2_steps": 5,
                                   "refine_step": 0.35},
    "prec-bf16-offsets01": {**BF16_2026_11_30, "l1_rd_offsets": (0, 1)},
    "prec-bf16-beam16-offsets01": {**BF16_2026_11_30, "l1_beam": 16, "l1_rd_offsets": (0, 1)},
    # block shape and shard size again, with the night's default (blk: issue 13, late on 2026-11-30)
    "blk-default": NIGHT_2026_11_30,
    "blk-4x2-bits10": {**NIGHT_2026_11_30, "l1_shard_bits": 10},
    "blk-8x2-bits10": {**NIGHT_2026_11_30, "l1_block_w": 8, "l1_shard_bits": 10},
    "blk-4x4-bits9": {**NIGHT_2026_11_30, "l1_block_h": 4},
    "blk-4x4-bits9-beam32": {**NIGHT_2026_11_30, "l1_block_h": 4, "l1_beam": 32},
    "blk-4x4-bits10": {**BLOCKS_2026_11_30, "l1_beam": 24, "l1_shard_decay": 0.5},
    "blk-4x4-bits10-beam12": {**BLOCKS_2026_11_30, "l1_beam": 12, "l1_shard_decay": 0.5},
    "blk-4x4-bits10-beam16": {**BLOCKS_2026_11_30, "l1_shard_decay": 0.5},
    "blk-4x4-bits10-offsets01": {**BLOCKS_2026_11_30, "l1_beam": 24, "l1_shard_decay": 0.5,
                                 "l1_rd_offsets": (0, 1)},
    "blk-4x4-bits10-beam16-offsets01": {**BLOCKS_2026_11_30, "l1_shard_decay": 0.5,
                                        "l1_rd_offsets": (0, 1)},
    "blk-4x4-bits10-beam16-decay0.4": {**BLOCKS_2026_11_30, "l1_shard_decay": 0.4},
    "blk-4x4-bits10-beam16-decay0.6": BLOCKS_2026_11_30,     # the default since
    "blk-4x4-bits10-beam16-decay0.7": {**BLOCKS_2026_11_30, "l1_shard_decay": 0.7},
    "blk-4x4-bits10-beam16-decay0.8": {**BLOCKS_2026_11_30, "l1_shard_decay": 0.8},
    "blk-4x4-bits10-beam24-decay0.6": {**BLOCKS_2026_11_30, "l1_beam": 24},
    "blk-4x4-bits11": {**BLOCKS_2026_11_30, "l1_shard_bits": 11, "l1_shard_decay": 0.5},
    "blk-8x4-bits10": {**BLOCKS_2026_11_30, "l1_block_w": 8, "l1_beam": 24,
                       "l1_shard_decay": 0.5},
    "blk-8x4-bits11": {**BLOCKS_2026_11_30, "l1_block_w": 8, "l1_shard_bits": 11,
                       "l1_shard_decay": 0.5},
    "blk-8x4-bits10-beam16-decay0.6": {**BLOCKS_2026_11_30, "l1_block_w": 8},
    "blk-default-kappa0.8": {**BLOCKS_2026_11_30, "l1_rd_kappa": 0.8},
    "blk-default-kappa1.25": {**BLOCKS_2026_11_30, "l1_rd_kappa": 1.25},
    # level 2 again, with the new level 1
    "blk-default-l2-13-12": {**BLOCKS_2026_11_30, "l2_index_bits": 13,
                             "l2_group_kl_bits": 12.0},
    "blk-default-l2-12-10.5": {**BLOCKS_2026_11_30, "l2_group_kl_bits": 10.5},
    "blk-default-l2-sharpen6": {**BLOCKS_2026_11_30, "l2_sharpen": 6.0},
    # the float32 path (CPUs without native bfloat16; NNC_PRECISION=float32) at the default,
    # and cheaper refinements for it (issue 29; coder-params-float32.json)
    "f32-default": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                    "analysis_precision": "float32"},
    # its default since 2026-12-07: the last refinement steps taken unchecked
    "f32-unchecked": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                      "analysis_precision": "float32", "refine_check": False},
    # the same settings, measured after the coders' inner loops moved to C (2026-12-07,
    # nnc/coding/_kernels.c: candidates' Gaussians within a few ulps of torch's)
    "f32-unchecked-c": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                        "analysis_precision": "float32", "refine_check": False},
    # = `nnc compress --refine 1` and `--refine 0` on such a CPU
    "f32-refine1": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                    "analysis_precision": "float32", "refine_l2_steps": 1, "refine_step": 0.5},
    "f32-refine0": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                    "analysis_precision": "float32", "refine_steps": 0, "refine_l2_steps": 0},
    # `nnc compress --fast` (codec.FAST): no refinement, a narrow level-1 search (beam 4,
    # each block's shard count as planned, not chosen among three); and a wider one
    "f32-fast": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                 "analysis_precision": "float32", "refine_steps": 0, "refine_l2_steps": 0,
                 "l1_beam": 4, "l1_rd_offsets": (0,)},
    "f32-fast-b4-o01": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                        "analysis_precision": "float32", "refine_steps": 0,
                        "refine_l2_steps": 0, "l1_beam": 4, "l1_rd_offsets": (0, 1)},
    "f32-fast-b8-o01": {**BLOCKS_2026_11_30, "refine_precision": "float32",
                        "analysis_precision": "float32", "refine_steps": 0,
                        "refine_l2_steps": 0, "l1_beam": 8, "l1_rd_offsets": (0, 1)},
}


# --variants also takes these names for every variant of a results file
LIKELIHOOD = ["rd-kappa1", "refine1-step0.5",   # the posterior target, without and with refinement
              *(n for n in VARIANTS if n.startswith("lik"))]
GROUPS = {"coder": [n for n in VARIANTS if not n.startswith(("refine", "lik", "prec"))],  # coder-params.json
          "refine": [n for n in VARIANTS if n.startswith("refine")],      # refine-params.json
          "likelihood": LIKELIHOOD,        # coder-params-likelihood.json
          # shard size, block shape and beam width (coder-params-shards.json)
          "shards": ["lik+refine1", *(n for n in VARIANTS if n.startswith("lik+refine1-b"))],
          # refinement's precision (coder-params-precision.json)
          "precision": [n for n in VARIANTS if n.startswith("prec")],
          # block shape and shard size with the night's default (coder-params-blocks.json)
          "blocks": [n for n in VARIANTS if n.startswith("blk")],
          # the float32 path's default and cheaper refinements (coder-params-float32.json)
          "float32": [n for n in VARIANTS if n.startswith("f32")]}


def settings_of(name: str) -> Settings:
    """The variant's complete settings; SystemExit when it does not name every setting."""
    flat, names = VARIANTS[name], set(Settings().flat())
    if set(flat) != names:
        raise SystemExit(
            f"coder_params: variant {name!r} must spell out every setting; missing "
            f"{sorted(names - set(flat))}, unknown {sorted(set(flat) - names)} (add new "
            "settings to THESIS with the value that reproduces the earlier code)")
    return Settings().replace(**flat)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim04", "kodim08", "kodim13",
                                                      "kodim19", "kodim23"])
    ap.add_argument("--qualities", type=float, nargs="+", default=[0, 0.33, 0.67, 1])
    ap.add_argument("--variants", nargs="+", default=["coder"],
                    choices=[*GROUPS, *VARIANTS], metavar="VARIANT",
                    help="variants by name, or 'coder' / 'refine' / 'likelihood' for each "
                         "of a group (default: coder)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--merge", type=Path, default=None,
                    help="an earlier output with the same images and rates: keep its variants")
    args = ap.parse_args()
    names = list(dict.fromkeys(n for v in args.variants for n in GROUPS.get(v, [v])))
    settings = {name: settings_of(name) for name in names}   # all checked before measuring
    torch.set_num_threads(2)
    imgs = [np.asarray(Image.open(KODAK / f"{n}.png").convert("RGB")) for n in args.images]
    res = {"images": args.images, "qualities": args.qualities,
           "model": default_model_name(), "variants": {}}
    webp = webp_curve(args.images)
    if args.merge:
        res["variants"] = json.loads(args.merge.read_text())["variants"]
    for name, s in settings.items():
        t0 = time.perf_counter()
        pts = []
        for q in args.qualities:
            b, ps = [], []
            for rgb in imgs:
                data = codec.compress(RasterImage(rgb, False, None), q, settings=s)
                out = codec.decompress(data).rgb
                b.append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
                ps.append(psnr(rgb, out))
            pts.append({"quality": q, "bpp": float(np.mean(b)), "psnr": float(np.mean(ps))})
        res["variants"][name] = {"settings": s.flat(), "points": pts,
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
