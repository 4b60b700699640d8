"""How close `nnc compress --bpp X` lands to X, on every Kodak image.

    python -m benchmarks.bpp_target [--targets 0.25 0.5 1.0] [--limit N] [--out FILE]

Writes benchmarks/results/bpp-target.json (or ``--out``): per image and target the file's
bpp, the rate parameter found, and the time the search took (the search makes up to 6
files), with the coder settings used.
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
from nnc.model.weights import load_model
from nnc.ratecontrol import compress_to_bpp

from benchmarks.common import KODAK, RESULTS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N Kodak images")
    ap.add_argument("--out", type=Path, default=RESULTS / "bpp-target.json")
    ap.add_argument("--model", default=None, help="an installed model (default: the default)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, "cpu")
    # as `nnc compress --bpp` runs on the CPU: with the CLI's default refinement steps
    settings = codec.default_settings("cpu")
    rows = []
    for f in sorted(KODAK.glob("*.png"))[:args.limit]:
        img = read_image(f.read_bytes())
        pixels = img.rgb.shape[0] * img.rgb.shape[1]
        for t in args.targets:
            t0 = time.perf_counter()
            data, q = compress_to_bpp(img, t, device="cpu", settings=settings,
                                      model_name=loaded.name)
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
    res = {"model": loaded.name, "weights_sha256": loaded.digest.hex(),
           "refine_steps": settings.refine.steps, "settings": settings.flat(),
           "summary": summary, "rows": rows}
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
