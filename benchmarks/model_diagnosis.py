"""Why a model stops gaining at high rates: measurements of a model without coding (issue 26).

    python -m benchmarks.model_diagnosis                          # the default model, Kodak
    python -m benchmarks.model_diagnosis --model pln-gpu-1 --limit 8
    python -m benchmarks.model_diagnosis --checkpoint RUN/ckpt.pt --limit 8 --out x.json

For each quality it measures, per Kodak image and then averaged:

- ``kl_bpp``: ΣKL of the posterior (bits per pixel; what an ideal coder would spend);
- ``mean_psnr``: the posterior-mean decode (thesis Fig. 4.1's "theoretical" curve);
- ``sample_psnr``: an exact posterior sample (the best a sample coder can do at ΣKL);
- ``ceiling_psnr`` (with ``--ceiling N``): the synthesis' own ceiling at that quality, whatever
  the rate: z1 optimised by N Adam steps on the MSE through g_s, from the posterior mean. If
  it is far above ``mean_psnr``, the synthesis could show more than the encoder gives it;
- ``loss`` and ``weighted_loss``: the training objective's per-image loss at that quality
  (bpp + lambda 255^2 MSE of the sample) and the same times the recipe's (lambda_ref /
  lambda)^p weight: which part of the quality range the training gradient comes from;
- ``gain_steps``: per transform layer, the mean |change of log-gain| from one rate-gain anchor
  to the next: where the network still changes its transforms with the rate, and where it
  only rescales its latents;
- ``bd_vs_bpg`` of the mean and sample curves against published BPG 4:4:4, over all
  qualities and over the upper half.

Writes a JSON (default benchmarks/results/model-diagnosis-<model>.json).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import KODAK, RESULTS, SHARED, load_images, posterior_decodes
from nnc.metrics import bd_rate, psnr

QUALITIES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def load(model: str | None, checkpoint: Path | None):
    """(network, label, lambda_power of its recipe)."""
    import torch
    from nnc.model.pln import PLN, PLNConfig
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net = PLN(PLNConfig(**state["config"]))
        net.load_state_dict(state["model"])
        return net.eval(), f"{checkpoint} (step {state.get('step')})"
    from nnc.model.weights import load_model
    loaded = load_model(model, "cpu")
    return loaded.net.eval(), loaded.name


def measure(net, rgb: np.ndarray, q: float, ceiling: int = 0) -> dict:
    from nnc.model.pln import quality_to_lambda
    h, w, _ = rgb.shape
    kl_bits, mean, sample = posterior_decodes(net, rgb, q)
    lam = float(quality_to_lambda(q, net.cfg))
    bpp = kl_bits / (h * w)
    mse = float(np.mean((sample.astype(np.float64) - rgb) ** 2))
    out = {"kl_bpp": bpp, "mean_psnr": psnr(rgb, mean), "sample_psnr": psnr(rgb, sample),
           "lambda": lam, "loss": bpp + lam * mse}
    if ceiling:
        out["ceiling_psnr"] = psnr(rgb, synthesis_ceiling(net, rgb, q, ceiling))
    return out


def synthesis_ceiling(net, rgb: np.ndarray, q: float, steps: int) -> np.ndarray:
    """g_s of a z1 fitted to ``rgb`` by ``steps`` Adam steps on the MSE (weights fixed),
    from the posterior mean."""
    import torch
    from nnc.image_io import RasterImage
    from nnc.model import tiling
    h, w, _ = rgb.shape
    qt = torch.tensor([q])
    with torch.no_grad():
        x = tiling.to_tensor(RasterImage(rgb, False, None), net.stride, "cpu")
        z1 = net.posteriors(x, qt, encode=tiling.encode).z1[0]
    target = x.float() / 255.0 if x.dtype == torch.uint8 else x
    z = z1.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.02)
    for p in net.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        loss = (net.decode(z, qt)[..., :h, :w] - target[..., :h, :w]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in net.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        return tiling.decode_uint8(net, z, qt, h, w)


def gain_steps(net) -> dict:
    out = {}
    for part in ("g_a", "h_a", "h_s", "g_s"):
        for i, g in enumerate(getattr(net, part).gains):
            lg = g.log_gain.detach()
            out[f"{part}.{i}"] = [round(v, 4) for v in (lg[1:] - lg[:-1]).abs().mean(1).tolist()]
    return out


def bpg_published() -> tuple[list, list] | None:
    path = SHARED / "anchors" / "published_kodak.json"
    if not path.exists():
        return None
    c = json.loads(path.read_text())["curves"]["bpg444_x265"]
    return c["bpp"], c["psnr"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--images", type=Path, default=KODAK)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--qualities", type=float, nargs="+", default=QUALITIES)
    ap.add_argument("--lambda-power", type=float, default=0.5,
                    help="the recipe's loss weighting, for weighted_loss")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ceiling", type=int, default=0, metavar="N",
                    help="also fit z1 by N steps (ceiling_psnr; about 1 s a step per image)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    net, label = load(a.model, a.checkpoint)
    images = load_images(a.images, a.limit)
    cfg = net.cfg
    lam_ref = math.sqrt(cfg.lambda_min * cfg.lambda_max)
    t0 = time.perf_counter()
    per_image = {}
    for name, rgb in images:
        per_image[name] = [measure(net, rgb, q, a.ceiling) for q in a.qualities]
        print(name, " ".join(f"{r['kl_bpp']:.3f}/{r['mean_psnr']:.2f}/{r['sample_psnr']:.2f}"
                             + (f"/{r['ceiling_psnr']:.2f}" if a.ceiling else "")
                             for r in per_image[name]), flush=True)
    points = []
    for i, q in enumerate(a.qualities):
        rows = [per_image[n][i] for n in per_image]
        p = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        p["quality"] = q
        p["weighted_loss"] = p["loss"] * (lam_ref / p["lambda"]) ** a.lambda_power
        points.append(p)
    total = sum(p["weighted_loss"] for p in points)
    for p in points:
        p["weighted_loss_share"] = p["weighted_loss"] / total
    res = {"model": label, "config": cfg.to_dict(), "images": len(images),
           "machine": f"{platform.machine()} CPU", "seconds": round(time.perf_counter() - t0, 1),
           "points": points, "gain_steps": gain_steps(net)}
    bpg = bpg_published()
    if bpg is not None:
        half = [p for p in points if p["quality"] >= 0.6]
        res["bd_vs_bpg"] = {
            f"{curve}_{part}": bd_rate(bpg[0], bpg[1], [p["kl_bpp"] for p in pts],
                                       [p[f"{curve}_psnr"] for p in pts])
            for curve in ("mean", "sample") for part, pts in (("all", points), ("upper", half))
            if len(pts) >= 2}
    for p in points:
        print(f"q {p['quality']:.2f}: ΣKL {p['kl_bpp']:.3f} bpp, mean {p['mean_psnr']:.2f} dB, "
              f"sample {p['sample_psnr']:.2f} dB, "
              + (f"synthesis ceiling {p['ceiling_psnr']:.2f} dB, " if a.ceiling else "") +
              f"weighted loss share {100 * p['weighted_loss_share']:.1f}%")
    print(json.dumps(res.get("bd_vs_bpg", {})))
    out = a.out or RESULTS / f"model-diagnosis-{a.model or 'default'}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
