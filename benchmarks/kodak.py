"""Kodak with the shipped model: actual files against the ΣKL rate, and decoded quality
against decoding the posterior mean and an exact posterior sample.

    python benchmarks/kodak.py [--qualities 0.1 0.3 0.5 0.7 0.9] [--limit N]

Writes benchmarks/results/kodak.json: per image and rate the file size, ΣKL (level 1 and 2),
bytes per section, PSNR of the decoded file, of the posterior-mean decode and of an exact
posterior-sample decode; and checks that every file round-trips to the right size and that
the sections listed by `nnc info` sum to the file size.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from nnc import codec
from nnc.image_io import read_image
from nnc.info import describe
from nnc.model.pln import combine_posterior
from nnc.model.weights import load_model, default_model_name

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
OUT = Path(__file__).resolve().parent / "results" / "kodak.json"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-10)))


def to_uint8(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    return (x[0, :, :h, :w].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@torch.no_grad()
def reference_decodes(model, img, quality: float, seed: int = 0):
    """Decodes of the posterior mean and of an exact posterior sample (no coding)."""
    h, w, _ = img.rgb.shape
    x = codec._to_tensor(img, model.stride, "cpu")
    q = torch.tensor([quality])
    (mu_x, s_x), (mu2, s2) = model.encode(x, q)
    g = torch.Generator().manual_seed(seed)
    mu_p, s_p = model.prior1(mu2, q)
    mu1, _ = combine_posterior(mu_x, s_x, mu_p, s_p)
    mean_img = to_uint8(model.decode(mu1, q), h, w)
    z2 = mu2 + s2 * torch.randn(mu2.shape, generator=g)
    mu_p, s_p = model.prior1(z2, q)
    mu1, s1 = combine_posterior(mu_x, s_x, mu_p, s_p)
    z1 = mu1 + s1 * torch.randn(mu1.shape, generator=g)
    return mean_img, to_uint8(model.decode(z1, q), h, w)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qualities", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--update-manifest", action="store_true",
                    help="record the summary in weights/manifest.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, digest = load_model()
    files = sorted(KODAK.glob("kodim*.png"))[:args.limit]
    rows = []
    for f in files:
        img = read_image(f.read_bytes())
        h, w, _ = img.rgb.shape
        for q in args.qualities:
            st = codec.CompressStats()
            t0 = time.perf_counter()
            data = codec.compress(img, quality=q, stats=st, device="cpu")
            t1 = time.perf_counter()
            dec = codec.decompress(data, device="cpu")
            t2 = time.perf_counter()
            rep = describe(data)
            assert dec.rgb.shape == img.rgb.shape, f"{f.name}: size changed"
            assert sum(s["bytes"] for s in rep["sections"]) == len(data)
            mean_img, sample_img = reference_decodes(model, img, q)
            kl = st.kl1_bits + st.kl2_bits
            header_bytes = sum(s["bytes"] for s in rep["sections"]
                               if s["section"] in ("signature", "HEAD", "END"))
            row = {"image": f.name, "quality": q, "pixels": h * w, "bytes": len(data),
                   "bpp": 8 * len(data) / (h * w), "kl_bpp": kl / (h * w),
                   "kl1_bits": st.kl1_bits, "kl2_bits": st.kl2_bits,
                   "file_over_kl": 8 * len(data) / kl,
                   "payload_over_kl": 8 * (len(data) - header_bytes) / kl,
                   "sections": {s["section"]: s["bytes"] for s in rep["sections"]},
                   "psnr": psnr(dec.rgb, img.rgb), "psnr_posterior_mean": psnr(mean_img, img.rgb),
                   "psnr_posterior_sample": psnr(sample_img, img.rgb),
                   "encode_s": t1 - t0, "decode_s": t2 - t1}
            rows.append(row)
            print(f"{f.name} q={q:.2f} bpp={row['bpp']:.3f} kl_bpp={row['kl_bpp']:.3f} "
                  f"file/KL={row['file_over_kl']:.3f} psnr={row['psnr']:.2f} "
                  f"mean={row['psnr_posterior_mean']:.2f} sample={row['psnr_posterior_sample']:.2f}",
                  flush=True)
    summary = []
    for q in args.qualities:
        rs = [r for r in rows if r["quality"] == q]
        s = {"quality": q}
        for k in ("bpp", "kl_bpp", "psnr", "psnr_posterior_mean", "psnr_posterior_sample",
                  "encode_s", "decode_s"):
            s[k] = float(np.mean([r[k] for r in rs]))
        s["file_over_kl"] = float(sum(r["bytes"] * 8 for r in rs) /
                                  sum(r["kl1_bits"] + r["kl2_bits"] for r in rs))
        s["payload_over_kl"] = float(np.mean([r["payload_over_kl"] for r in rs]))
        secs = {}
        for r in rs:
            for k, v in r["sections"].items():
                secs[k] = secs.get(k, 0) + v
        total = sum(secs.values())
        s["section_share"] = {k: v / total for k, v in secs.items()}
        summary.append(s)
    res = {"model": default_model_name(), "weights_sha256": digest.hex(),
           "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
           "images": len(files), "summary": summary, "rows": rows}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    if args.update_manifest:
        from nnc.model.weights import weights_dir
        path = weights_dir() / "manifest.json"
        m = json.loads(path.read_text())
        m["models"][res["model"]]["kodak"] = [
            {k: round(v, 4) for k, v in s.items()
             if k in ("quality", "bpp", "kl_bpp", "psnr", "psnr_posterior_mean",
                      "psnr_posterior_sample", "file_over_kl")} for s in summary]
        path.write_text(json.dumps(m, indent=2) + "\n")
    for s in summary:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in s.items() if k != "section_share"}))
        print("   shares:", {k: round(v, 3) for k, v in s["section_share"].items()})


if __name__ == "__main__":
    main()
