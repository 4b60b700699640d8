"""How close `nnc compress --bpp X` lands to X, on every Kodak image.

    python benchmarks/bpp_target.py [--targets 0.25 0.5 1.0]

Writes benchmarks/results/bpp-target.json: per image and target the file's bpp, the rate
parameter found, and the time the search took (the search makes up to 6 files).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nnc import codec
from nnc.image_io import read_image
from nnc.model.weights import default_model_name, load_model

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
OUT = Path(__file__).resolve().parent / "results" / "bpp-target.json"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _, digest = load_model()
    # as `nnc compress --bpp` runs on the CPU: with the CLI's default refinement steps
    params = codec.refined(codec.default_refine_steps("cpu"))
    rows = []
    for f in sorted(KODAK.glob("*.png")):
        img = read_image(f.read_bytes())
        pixels = img.rgb.shape[0] * img.rgb.shape[1]
        for t in args.targets:
            t0 = time.perf_counter()
            data, q = codec.compress_to_bpp(img, t, params=params)
            rows.append({"image": f.name, "target": t, "bpp": 8 * len(data) / pixels,
                         "quality": q, "seconds": time.perf_counter() - t0})
            r = rows[-1]
            print(f"{f.name} target {t}: {r['bpp']:.4f} bpp (q={q:.4f}, {r['seconds']:.1f} s)",
                  flush=True)
    summary = {}
    for t in args.targets:
        err = np.array([r["bpp"] / t - 1 for r in rows if r["target"] == t])
        summary[str(t)] = {"images": len(err), "mean_abs_rel_error": float(np.abs(err).mean()),
                           "max_abs_rel_error": float(np.abs(err).max()),
                           "within_5pct": int((np.abs(err) <= 0.05).sum()),
                           "mean_seconds": float(np.mean([r["seconds"] for r in rows
                                                          if r["target"] == t]))}
    res = {"model": default_model_name(), "weights_sha256": digest.hex(),
           "refine_steps": params.refine_steps, "summary": summary,
           "rows": rows}
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
