"""Rate–distortion of nnc against the classical codecs, on any folder of images.

    pip install -e '.[bench]'
    python -m benchmarks.rd                       # Kodak, every codec (about 95 min, 2 cores)
    python -m benchmarks.rd --codecs nnc          # re-measure nnc only, keep the others
    python -m benchmarks.rd --codecs nnc --refine 5   # nnc compress --refine 5 (~40 min)
    python -m benchmarks.rd --images DIR --out benchmarks/results/rd-mine.json
    python -m benchmarks.rd --plots-only
    python -m benchmarks.rd --plots-only --merge other.json   # combine separate runs

(from the repository root). Every codec encodes every image at each setting of its sweep
into real files in memory; bpp = 8 * file bytes / pixels, RGB PSNR and MS-SSIM
(nnc.metrics) against the original. nnc also records the ΣKL rate (of the posterior the file
codes, and of the amortized one), the posterior-mean decode (the "theoretical" curve of
thesis Fig. 4.1), an exact posterior sample, where the bits of each file went, and the coder
settings it ran with.

Writes the JSON (per image and mean per setting, BD-rates of every curve against every
other), a Markdown BD-rate table, and PNG plots (PSNR, MS-SSIM, nnc's bits) next to it.
Published curves (shared/anchors/published_kodak.json) are drawn dashed and named
"published"; they are other people's measurements, never ours. Nothing else is written:
the weights manifest belongs to ``nnc train --export`` (nnc/model/weights.py).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nnc.metrics import bd_rate, ms_ssim, ms_ssim_db, psnr

from benchmarks.common import (CLASSICAL, KODAK, RESULTS, SHARED, codec_version,
                               load_images, load_plugin, mean_points, posterior_decodes)

PUBLISHED = SHARED / "anchors" / "published_kodak.json"
MEASURED_ANCHORS = SHARED / "anchors" / "measured_kodak"
NNC_QUALITIES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def score(a: np.ndarray, b: np.ndarray) -> dict:
    return {"psnr": psnr(a, b), "ms_ssim": ms_ssim(a, b) if min(a.shape[:2]) >= 176 else None}


def run_classical(name: str, images) -> dict:
    spec = CLASSICAL[name]
    err = load_plugin(spec.needs)
    if err:
        print(f"rd.py: skipping {name}: {err}", file=sys.stderr)
        return {}
    per_image = {}
    for fname, rgb in images:
        rows = []
        im = Image.fromarray(rgb)
        for s in spec.settings:
            buf = io.BytesIO()
            t0 = time.perf_counter()
            im.save(buf, spec.fmt, **spec.options(s))
            t1 = time.perf_counter()
            dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            t2 = time.perf_counter()
            rows.append({"setting": s, "bpp": 8 * buf.tell() / (rgb.shape[0] * rgb.shape[1]),
                         **score(rgb, dec), "encode_s": t1 - t0, "decode_s": t2 - t1})
        per_image[fname] = rows
        print(f"  {name} {fname}", flush=True)
    return {"label": spec.label, "kind": "measured", "version": codec_version(name),
            "settings": spec.settings, "per_image": per_image}


def run_nnc(images, qualities, refine: int | None = None, model: str | None = None) -> dict:
    """nnc as ``nnc compress`` runs on the CPU by default (``refine`` None: the CLI's CPU
    refinement, codec.default_settings("cpu")), or with ``refine`` steps of
    per-image refinement (``nnc compress --refine``; recorded under "nnc_refine", without the
    posterior decodes, which do not depend on the coder)."""
    from nnc import codec
    from nnc.image_io import RasterImage
    from nnc.info import describe
    from nnc.model.weights import load_model

    loaded = load_model(model, "cpu")
    settings = codec.encoder_settings("cpu", refine)

    per_image = {}
    for fname, rgb in images:
        img = RasterImage(rgb=rgb, gray=False, alpha=None)
        pixels = rgb.shape[0] * rgb.shape[1]
        rows = []
        for q in qualities:
            st = codec.CompressStats()
            t0 = time.perf_counter()
            data = codec.compress(img, quality=q, stats=st, device="cpu", settings=settings,
                                  model_name=loaded.name)
            t1 = time.perf_counter()
            dec = codec.decompress(data, device="cpu")
            t2 = time.perf_counter()
            if dec.rgb.shape != rgb.shape:
                raise SystemExit(f"rd.py: {fname}: nnc changed the image size")
            rep = describe(data)
            sections = {s["section"]: s["bytes"] for s in rep["sections"]}
            if sum(sections.values()) != len(data):
                raise SystemExit(f"rd.py: {fname}: sections do not add up to the file size")
            kl = st.kl1_bits + st.kl2_bits
            extra = {}
            if refine is None:
                kl0, mean_img, sample_img = posterior_decodes(loaded.net, rgb, q)
                extra = {"mean": score(rgb, mean_img), "sample_psnr": psnr(rgb, sample_img),
                         "amortized_kl_bpp": kl0 / pixels}   # ΣKL of the unrefined posterior
            rows.append({
                "setting": q, "bpp": 8 * len(data) / pixels, **score(rgb, dec.rgb),
                "kl_bpp": kl / pixels, "kl1_bits": st.kl1_bits, "kl2_bits": st.kl2_bits,
                "file_over_kl": 8 * len(data) / kl, **extra, "sections": sections,
                "l1_outlier_bytes": st.l1_outlier_bits / 8,
                "encode_s": t1 - t0, "decode_s": t2 - t1})
            r = rows[-1]
            print(f"  nnc {fname} q={q:.2f} bpp={r['bpp']:.3f} ΣKL={r['kl_bpp']:.3f} "
                  f"psnr={r['psnr']:.2f}", flush=True)
        per_image[fname] = rows
    entry = {"label": f"nnc ({loaded.name})", "kind": "nnc",
             "version": f"{loaded.name} sha256 {loaded.digest.hex()[:16]}",
             "settings": list(qualities), "coder_settings": settings.flat(),
             "per_image": per_image}
    if refine is not None:
        entry.update(label=f"nnc ({loaded.name}, --refine {refine})",
                     kind="nnc_refine", refine_steps=refine)
    return entry


def curves(res: dict) -> dict:
    """name -> {label, kind, bpp, psnr, ms_ssim} for every curve (measured, nnc, published)."""
    out = {}
    for name, e in res["codecs"].items():
        pts = e["points"]
        out[name] = {"label": e["label"], "kind": e["kind"], "bpp": [p["bpp"] for p in pts],
                     "psnr": [p["psnr"] for p in pts],
                     "ms_ssim": [p.get("ms_ssim") for p in pts]}
        if e["kind"] == "nnc":
            out["nnc_theory"] = {
                "label": "nnc theoretical (ΣKL rate, posterior mean)", "kind": "theory",
                # the amortized posterior's ΣKL with its own mean decode (older results
                # have only the coded posterior's ΣKL)
                "bpp": [p.get("amortized_kl_bpp", p["kl_bpp"]) for p in pts],
                "psnr": [p["mean_psnr"] for p in pts],
                "ms_ssim": [p.get("mean_ms_ssim") for p in pts]}
    if res.get("published"):
        for name, c in res["published"].items():
            out[name] = {"label": f"{c['label']} (published)", "kind": "published",
                         "bpp": c["bpp"], "psnr": c["psnr"],
                         "ms_ssim": c.get("ms_ssim") or [None] * len(c["bpp"])}
    return out


def bd_tables(cs: dict) -> dict:
    """BD-rate (%) of every curve (column) against every other (row), PSNR and MS-SSIM dB."""
    tables = {}
    for metric in ("psnr", "ms_ssim"):
        def qual(c):
            v = c[metric]
            if any(x is None for x in v):
                return None
            return v if metric == "psnr" else [ms_ssim_db(x) for x in v]
        t = {}
        for ref, cr in cs.items():
            qr = qual(cr)
            if qr is None:
                continue
            t[ref] = {}
            for test, ct in cs.items():
                qt = qual(ct)
                if qt is None or test == ref:
                    continue
                v = bd_rate(cr["bpp"], qr, ct["bpp"], qt)
                t[ref][test] = None if math.isnan(v) else round(v, 2)
        tables[metric] = t
    return tables


def published_curves() -> dict:
    if not PUBLISHED.exists():
        return {}
    labels = {"bpg444_x265": "BPG 4:4:4", "vtm": "VTM 4:4:4", "balle2018_hyperprior":
              "Ballé 2018 hyperprior", "balle2017_factorized": "Ballé 2017 factorized",
              "minnen2018_joint": "Minnen 2018", "irec_flamich2020": "iREC (Flamich 2020)"}
    data = json.loads(PUBLISHED.read_text())["curves"]
    return {k: {"label": labels.get(k, k), "source": v.get("source", ""), "bpp": v["bpp"],
                "psnr": v["psnr"], "ms_ssim": v.get("ms_ssim")} for k, v in data.items()}


def anchor_check(res: dict) -> dict:
    """Our means against the shared measured anchors at the same settings (Kodak only)."""
    out = {}
    for name, e in res["codecs"].items():
        f = MEASURED_ANCHORS / f"{name}.json"
        if e["kind"] != "measured" or not f.exists() or res["images"]["count"] != 24:
            continue
        anchor = {d["setting"]: d for d in json.loads(f.read_text())}
        diffs = [(p["bpp"] / anchor[p["setting"]]["bpp"] - 1, p["psnr"] - anchor[p["setting"]]["psnr"])
                 for p in e["points"] if p["setting"] in anchor]
        if diffs:
            out[name] = {"settings_compared": len(diffs),
                         "max_rel_bpp_diff": max(abs(d[0]) for d in diffs),
                         "max_psnr_diff_db": max(abs(d[1]) for d in diffs)}
    return out


def fmt_pct(v) -> str:
    return "—" if v is None else f"{v:+.1f}%"


def nnc_bd_table(res: dict) -> list[str]:
    """Markdown rows: nnc's BD-rate (and its theoretical curve's) against every other curve."""
    t = res["bd_rate"]
    lab = {n: c["label"] for n, c in curves(res).items()}
    ref = "nnc_refine" in res["codecs"]
    lines = ["| reference | BD-rate of nnc, PSNR | BD-rate of nnc, MS-SSIM | "
             + ("nnc --refine, PSNR | nnc --refine, MS-SSIM | " if ref else "")
             + "nnc theoretical (ΣKL, posterior mean), PSNR |",
             "|---|---|---|" + ("---|---|" if ref else "") + "---|"]
    for n in t["psnr"]:
        if n in ("nnc", "nnc_theory", "nnc_refine"):
            continue
        cells = [fmt_pct(t['psnr'][n].get('nnc')), fmt_pct(t['ms_ssim'].get(n, {}).get('nnc'))]
        if ref:
            cells += [fmt_pct(t['psnr'][n].get('nnc_refine')),
                      fmt_pct(t['ms_ssim'].get(n, {}).get('nnc_refine'))]
        cells.append(fmt_pct(t['psnr'][n].get('nnc_theory')))
        lines.append(f"| {lab[n]} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(res: dict, path: Path) -> None:
    t = res["bd_rate"]
    lines = [f"# BD-rate on {res['images']['folder']} ({res['images']['count']} images)", "",
             f"Machine: {res['machine']}. Positive: the codec needs more bits than the "
             "reference for the same quality (Bjøntegaard 2001, piecewise cubic, over the "
             "overlapping quality range; '—' where the ranges do not overlap).", "",
             *nnc_bd_table(res)]
    lines += ["", "All pairs (PSNR): BD-rate of the column against the row.", ""]
    cols = list(t["psnr"])
    lines.append("| reference \\ test | " + " | ".join(cols) + " |")
    lines.append("|---" * (len(cols) + 1) + "|")
    for r in cols:
        lines.append(f"| {r} | " + " | ".join("" if c == r else fmt_pct(t["psnr"][r].get(c))
                                             for c in cols) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(res: dict, stem: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cs = curves(res)
    made = []
    for metric, ylabel in (("psnr", "RGB PSNR (dB)"), ("ms_ssim", "MS-SSIM (dB, -10 log10(1 - MS-SSIM))")):
        fig, ax = plt.subplots(figsize=(9, 6.5))
        for name, c in cs.items():
            if any(v is None for v in c[metric]):
                continue
            y = c[metric] if metric == "psnr" else [ms_ssim_db(v) for v in c[metric]]
            style = {"measured": dict(lw=1.3, marker=".", ms=5),
                     "nnc": dict(lw=2.6, marker="o", ms=6, color="black", zorder=5),
                     "nnc_refine": dict(lw=2.2, marker="s", ms=5, color="crimson", zorder=5),
                     "theory": dict(lw=1.8, ls="--", marker="o", ms=4, color="gray", zorder=4),
                     "published": dict(lw=1.1, ls=":", marker="x", ms=4)}[c["kind"]]
            ax.plot(c["bpp"], y, label=c["label"], **style)
        ax.set_xlim(0, 2.0)
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{res['images']['folder']} ({res['images']['count']} images), "
                     f"means per setting — dotted: published numbers, not measured here")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right")
        out = stem.with_name(f"{stem.name}-{metric.replace('_', '')}.png")
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        plt.close(fig)
        made.append(out)
    e = res["codecs"].get("nnc")
    if e:
        made.append(plot_nnc_bits(e, stem.with_name(f"{stem.name}-nnc-bits.png"), plt))
    return made


def nnc_bit_shares(e: dict) -> list[dict]:
    """Per setting, the mean share of the file in each part (header, level 2, level 1)."""
    out = []
    for i, s in enumerate(e["settings"]):
        tot = {}
        for rows in e["per_image"].values():
            r = rows[i]
            sec = r["sections"]
            parts = {
                "header + framing": sec.get("signature", 0) + sec.get("HEAD", 0) + sec.get("END", 0),
                "level 2 side info": sec.get("Z2SA", sec.get("Z2SI", 0)),
                "level 2 indices": sec.get("Z2IX", 0),
                "level 1 outliers": r["l1_outlier_bytes"],
                "level 1 shard counts": sec.get("Z1SA", sec.get("Z1SI", 0))
                - r["l1_outlier_bytes"],
                "level 1 indices": sec.get("Z1IX", 0)}
            for k, v in parts.items():
                tot[k] = tot.get(k, 0) + v
        total = sum(tot.values())
        out.append({"setting": s, **{k: v / total for k, v in tot.items()}})
    return out


def plot_nnc_bits(e: dict, out: Path, plt) -> Path:
    shares = nnc_bit_shares(e)
    pts = e["points"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    bottom = np.zeros(len(shares))
    keys = [k for k in shares[0] if k != "setting"]
    x = np.arange(len(shares))
    for k in keys:
        v = np.array([s[k] for s in shares]) * np.array([p["bpp"] for p in pts])
        a1.bar(x, v, bottom=bottom, label=k)
        bottom += v
    a1.plot(x, [p["kl_bpp"] for p in pts], "k_", ms=30, mew=2, label="ΣKL (the ideal)")
    a1.set_xticks(x, [f"q={s['setting']:g}\n{p['bpp']:.2f} bpp" for s, p in zip(shares, pts)])
    a1.set_ylabel("bits per pixel (mean over images)")
    a1.set_title("where the bits go")
    a1.legend(fontsize=8)
    for i, s in enumerate(e["settings"]):
        kl = [rows[i]["kl_bpp"] for rows in e["per_image"].values()]
        act = [rows[i]["bpp"] for rows in e["per_image"].values()]
        a2.scatter(kl, act, s=10, label=f"q={s:g}")
    m = max(max(r["bpp"] for r in rows) for rows in e["per_image"].values())
    a2.plot([0, m], [0, m], "k--", lw=1, label="file = ΣKL")
    a2.set_xlabel("ΣKL (bits per pixel)")
    a2.set_ylabel("actual file (bits per pixel)")
    a2.set_title("actual against theoretical rate, per image")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=KODAK)
    ap.add_argument("--codecs", nargs="+", default=["nnc", *CLASSICAL],
                    choices=["nnc", *CLASSICAL])
    ap.add_argument("--nnc-qualities", type=float, nargs="+", default=NNC_QUALITIES)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--refine", type=int, default=None,
                    help="with --codecs nnc: measure nnc compress --refine N (as nnc_refine); "
                         "without it, nnc's CPU default")
    ap.add_argument("--out", type=Path, default=RESULTS / "rd.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None,
                    help="with --codecs nnc: measure this installed model (default: the default "
                         "model); use with --out")
    ap.add_argument("--plots-only", action="store_true")
    ap.add_argument("--merge", type=Path, nargs="+", default=[],
                    help="take these codecs' results from other rd.py outputs (same images)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    res = json.loads(args.out.read_text()) if args.out.exists() else {}
    if not args.plots_only:
        images = load_images(args.images, args.limit)
        info = {"folder": args.images.name, "count": len(images),
                "names": [n for n, _ in images]}
        if res.get("images") != info:
            res = {}                 # another image set: start over
        res.update({"machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
                    "images": info, "published": published_curves()})
        res.setdefault("codecs", {})
        args.nnc_qualities = sorted(args.nnc_qualities)
        for name in args.codecs:
            print(f"rd.py: {name}", flush=True)
            t = time.perf_counter()
            if name == "nnc":
                e = run_nnc(images, args.nnc_qualities, args.refine, args.model)
                name = "nnc_refine" if args.refine is not None else name
            else:
                e = run_classical(name, images)
            if e:
                e["points"] = mean_points(e)
                e["wall_s"] = round(time.perf_counter() - t, 1)
                res["codecs"][name] = e
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(res, indent=1) + "\n")   # a checkpoint
    for other in args.merge:
        o = json.loads(other.read_text())
        if res and o.get("images") != res.get("images"):
            sys.exit(f"rd.py: {other} was measured on other images")
        res = {**o, **res, "codecs": {**res.get("codecs", {}), **o["codecs"]}}
    if not res.get("codecs"):
        sys.exit(f"rd.py: nothing measured yet in {args.out}")
    res["bd_rate"] = bd_tables(curves(res))
    res["anchor_check"] = anchor_check(res)
    if "nnc" in res["codecs"]:
        res["nnc_bit_shares"] = nnc_bit_shares(res["codecs"]["nnc"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    write_markdown(res, args.out.with_suffix(".md"))
    made = plot(res, args.out.with_suffix(""))
    print(args.out.with_suffix(".md").read_text())
    print("anchor check:", json.dumps(res["anchor_check"]))
    print("wrote", args.out, *made)


if __name__ == "__main__":
    main()
