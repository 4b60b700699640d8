"""Markdown tables for docs/benchmarks.md from the benchmark results (rd.json, coder-params.json,
refine-params.json, coders.json, bpp-target.json, speed-*.json, large-images.json), each
where its file exists. Prints to stdout; nothing is measured here.

    python -m benchmarks.report
"""
from __future__ import annotations

import json

import numpy as np

from nnc.metrics import bd_rate

from benchmarks.common import RESULTS
from benchmarks.rd import nnc_bd_table


def rd_tables(rd: dict) -> list[str]:
    out = []
    e = rd["codecs"]["nnc"]
    out += [f"nnc on {rd['images']['folder']} ({rd['images']['count']} images), model "
            f"{e['version']}:", "",
            "| quality | bpp (file) | PSNR | MS-SSIM | bpp (ΣKL) | PSNR posterior mean | "
            "MS-SSIM posterior mean | PSNR exact sample | file / ΣKL | encode s | decode s |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in e["points"]:
        out.append(f"| {p['setting']:.2f} | {p['bpp']:.3f} | {p['psnr']:.2f} | "
                   f"{p['ms_ssim']:.4f} | {p['kl_bpp']:.3f} | {p['mean_psnr']:.2f} | "
                   f"{p['mean_ms_ssim']:.4f} | {p['sample_psnr']:.2f} | "
                   f"{p['file_over_kl']:.3f} | {p['encode_s']:.2f} | {p['decode_s']:.2f} |")
    shares = rd.get("nnc_bit_shares", [])
    if shares:
        keys = [k for k in shares[0] if k != "setting"]
        out += ["", "| quality | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for s in shares:
            out.append(f"| {s['setting']:.2f} | " + " | ".join(f"{100 * s[k]:.1f}%" for k in keys)
                       + " |")
    out += ["", *refine_table(rd), "", *nnc_bd_table(rd)]
    return out


def refine_table(rd: dict) -> list[str]:
    """nnc --refine N per quality, beside the default at the same quality."""
    e = rd["codecs"].get("nnc_refine")
    if not e:
        return []
    plain = {p["setting"]: p for p in rd["codecs"]["nnc"]["points"]}
    out = [f"With `--refine {e['refine_steps']}` ({rd['images']['count']} images, `nnc_refine` "
           "in rd.json):", "",
           "| quality | bpp (file) | PSNR | MS-SSIM | bpp (ΣKL, refined posterior) | "
           "file / ΣKL | encode s | decode s | against the default: bpp, PSNR |",
           "|---|---|---|---|---|---|---|---|---|"]
    for p in e["points"]:
        d = plain.get(p["setting"])
        vs = (f"{100 * (p['bpp'] / d['bpp'] - 1):+.1f}%, {p['psnr'] - d['psnr']:+.2f} dB"
              if d else "")
        out.append(f"| {p['setting']:.2f} | {p['bpp']:.3f} | {p['psnr']:.2f} | "
                   f"{p['ms_ssim']:.4f} | {p['kl_bpp']:.3f} | {p['file_over_kl']:.3f} | "
                   f"{p['encode_s']:.1f} | {p['decode_s']:.2f} | {vs} |")
    return out


def model_to_file_steps(points: list[dict]) -> list[tuple[str, str, str, str, str]]:
    """The curves from the model to the file, as (curve, rate, reconstruction, rate key,
    quality key) of rd.json's nnc points: the first two are the amortized posterior's (its
    ΣKL, amortized_kl_bpp, with its mean and exact-sample decodes), the rest use the ΣKL of
    the posterior the file codes (refined where nnc refines)."""
    amortized = "amortized_kl_bpp" if "amortized_kl_bpp" in points[0] else "kl_bpp"
    return [("theoretical", "ΣKL", "posterior mean", amortized, "mean_psnr"),
            ("an ideal relative-entropy coder", "ΣKL", "exact posterior sample", amortized,
             "sample_psnr"),
            ("nnc's decoded image at ideal rate", "ΣKL (of the posterior coded)",
             "nnc's decoded image", "kl_bpp", "psnr"),
            ("nnc's files", "file size", "nnc's decoded image", "bpp", "psnr")]


def coder_cost_table(rd: dict) -> list[str]:
    """BD-rate (PSNR) against WebP, step by step from the model to the file ("What the coders
    cost", :func:`model_to_file_steps`)."""
    c = rd["codecs"]
    if "webp" not in c or "nnc" not in c:
        return []
    w = c["webp"]["points"]
    n = c["nnc"]["points"]

    def vs_webp(pts, rate, quality):
        v = bd_rate([p["bpp"] for p in w], [p["psnr"] for p in w],
                    [p[rate] for p in pts], [p[quality] for p in pts])
        return f"{v:+.1f}%"
    out = ["| curve | rate | reconstruction | BD-rate vs WebP |", "|---|---|---|---|"]
    out += [f"| {curve} | {rate} | {recon} | {vs_webp(n, rk, qk)} |"
            for curve, rate, recon, rk, qk in model_to_file_steps(n)]
    if "nnc_refine" in c:
        r = c["nnc_refine"]["points"]
        out.append(f"| nnc's files, `--refine {c['nnc_refine']['refine_steps']}` | file size | "
                   f"nnc's decoded image | {vs_webp(r, 'bpp', 'psnr')} (at ΣKL: "
                   f"{vs_webp(r, 'kl_bpp', 'psnr')}) |")
    if "amortized_kl_bpp" not in n[0]:
        out += ["", "(rd.json predates amortized_kl_bpp: the first two rows pair the refined "
                "posterior's ΣKL with the amortized posterior's decodes.)"]
    return out


def bpg_table(rd: dict) -> list[str]:
    """BD-rate (PSNR) against the published BPG 4:4:4 curve, step by step from the model to
    the file (:func:`model_to_file_steps`), over all rate parameters and over the lower and
    upper halves of them; and the file-over-ΣKL ratio at which today's decoded images would
    meet the coder issue's +20% (rates of the decoded-at-ΣKL curve scaled until they do)."""
    c = rd["codecs"]
    bpg = rd.get("published", {}).get("bpg444_x265")
    if not bpg or "nnc" not in c:
        return []
    n = c["nnc"]["points"]
    half = len(n) // 2

    def vs(pts, rate, quality, scale=1.0):
        return bd_rate(bpg["bpp"], bpg["psnr"], [scale * p[rate] for p in pts],
                       [p[quality] for p in pts])

    rows = [(f"{curve}: {rate}, {recon}", n, rk, qk)
            for curve, rate, recon, rk, qk in model_to_file_steps(n)]
    if "nnc_refine" in c:
        rows.append((f"nnc's files, `--refine {c['nnc_refine']['refine_steps']}`",
                     c["nnc_refine"]["points"], "bpp", "psnr"))
    qs = [p["setting"] for p in n]
    out = ["| curve | all rates | " + f"qualities {qs[0]:g}–{qs[half - 1]:g} | "
           + f"qualities {qs[half]:g}–{qs[-1]:g} |", "|---|---|---|---|"]
    for label, pts, rate, quality in rows:
        out.append(f"| {label} | {vs(pts, rate, quality):+.1f}% | "
                   f"{vs(pts[:half], rate, quality):+.1f}% | "
                   f"{vs(pts[half:], rate, quality):+.1f}% |")
    lo, hi = 1.0, 2.0                         # bisection: vs(scale) grows with the scale
    if vs(n, "kl_bpp", "psnr", lo) < 20 < vs(n, "kl_bpp", "psnr", hi):
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if vs(n, "kl_bpp", "psnr", mid) < 20 else (lo, mid)
        files = np.mean([p["file_over_kl"] for p in n])
        out += ["", f"Today's decoded images reach +20% against BPG with files of {lo:.3f}x "
                f"their ΣKL at every rate; the files are {files:.3f}x on average."]
    return out


def sample_gap_table(rd: dict) -> list[str]:
    """Per rate parameter: nnc's decoded PSNR against an exact posterior sample's at the same
    ΣKL (the amortized posterior's exact-sample curve, interpolated in log rate at the ΣKL
    of the posterior the file codes), and the file's size over that ΣKL."""
    c = rd["codecs"]["nnc"]["points"]
    rate = "amortized_kl_bpp" if "amortized_kl_bpp" in c[0] else "kl_bpp"
    xs = np.log([p[rate] for p in c])
    ys = np.array([p["sample_psnr"] for p in c])
    out = ["| quality | ΣKL bpp (coded posterior) | PSNR decoded | PSNR exact sample at that ΣKL "
           "| difference | file / ΣKL |", "|---|---|---|---|---|---|"]
    for p in c:
        x = np.log(p["kl_bpp"])
        exact = float(np.interp(x, xs, ys)) if xs[0] <= x <= xs[-1] else None
        diff = "" if exact is None else f"{p['psnr'] - exact:+.2f} dB"
        out.append(f"| {p['setting']:.2f} | {p['kl_bpp']:.3f} | {p['psnr']:.2f} | "
                   f"{'outside the measured range' if exact is None else f'{exact:.2f}'} | "
                   f"{diff} | {p['file_over_kl']:.3f} |")
    return out


def variants_table(res: dict) -> list[str]:
    """coder_params.py's output: each variant at the lowest and highest rate parameter and its
    BD-rate (PSNR) against the reference it was measured with."""
    qs = res["qualities"]
    out = [f"{res['model']}, {len(res['images'])} Kodak images x {len(qs)} rates:", "",
           f"| variant | bpp / PSNR at quality {qs[0]:g} | at quality {qs[-1]:g} | "
           "BD-rate vs equal shards | BD-rate vs WebP |", "|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        lo, hi = v["points"][0], v["points"][-1]
        bd = [v.get(k) for k in ("bd_rate_vs_equal_shards", "bd_rate_vs_webp")]
        out.append(f"| {name} | {lo['bpp']:.3f} / {lo['psnr']:.2f} | {hi['bpp']:.3f} / "
                   f"{hi['psnr']:.2f} | " + " | ".join("" if x is None else f"{x:+.1f}%"
                                                       for x in bd) + " |")
    return out


def coders_table(res: dict) -> list[str]:
    """coders.py's per-rate rows: bits/KL, squared error to the posterior mean and the
    distortion the model predicts (both relative to an exact sample's) per coder."""
    rows = res["per_rate"]
    coders = list(dict.fromkeys(r["coder"] for r in rows))
    out = ["| KL per dim (bits) | " + " | ".join(coders) + " |",
           "|---" * (len(coders) + 1) + "|"]
    for kl in dict.fromkeys(r["kl_per_dim_bits"] for r in rows):
        at = {r["coder"]: r for r in rows if r["kl_per_dim_bits"] == kl}
        out.append(f"| {kl:g} | " + " | ".join(
            f"{at[c]['bits_over_kl']:.2f}, {at[c]['mse_ratio']:.2f}"
            + (f", {at[c]['nll_ratio']:.2f}" if "nll_ratio" in at[c] else "")
            for c in coders) + " |")
    return out


def large_table(res: dict) -> list[str]:
    out = ["| image | bpp | compress s | compress peak RSS | decompress s | "
           "decompress peak RSS |", "|---|---|---|---|---|---|"]
    for mp, r in sorted(res["rows"].items(), key=lambda kv: int(kv[0])):
        c, d = r["compress"], r["decompress"]
        out.append(f"| {r['width']}x{r['height']} ({mp} MP) | {r['bpp']:.3f} | {c['wall_s']:.1f} "
                   f"| {c['peak_rss_mib']:,.0f} MiB | {d['wall_s']:.1f} | "
                   f"{d['peak_rss_mib']:,.0f} MiB |")
    return out


def speed_table(sp: dict) -> list[str]:
    out = [f"{sp['image']} on {sp['machine']} ({sp['device']}), median of {sp['runs']} runs, "
           "each codec at its setting nearest 0.75 bpp:", "",
           "| codec | setting | bpp | encode ms | decode ms |", "|---|---|---|---|---|"]
    for c in sp["codecs"].values():
        out.append(f"| {c['label']} | {c['setting'] if isinstance(c['setting'], int) else round(c['setting'], 3)} | {c['bpp']:.3f} | "
                   f"{1000 * c['encode_s']:.1f} | {1000 * c['decode_s']:.1f} |")
    n = sp["codecs"]["nnc"]
    out += ["", f"nnc as a user runs it (fresh process, includes {n['cli']['python_import_s']:.2f}"
            f" s of Python + torch import): compress {n['cli']['compress_s']:.2f} s, "
            f"decompress {n['cli']['decompress_s']:.2f} s.", "",
            "| nnc stage | encode ms | | nnc stage | decode ms |", "|---|---|---|---|---|"]
    enc, dec = list(n["encode_stages_s"].items()), list(n["decode_stages_s"].items())
    for i in range(max(len(enc), len(dec))):
        a = enc[i] if i < len(enc) else ("", None)
        b = dec[i] if i < len(dec) else ("", None)
        out.append(f"| {a[0]} | {'' if a[1] is None else f'{1000 * a[1]:.0f}'} | | {b[0]} | "
                   f"{'' if b[1] is None else f'{1000 * b[1]:.0f}'} |")
    out += ["", "| size | megapixels | compress s | peak RSS MiB | decompress s | peak RSS MiB |",
            "|---|---|---|---|---|---|"]
    for r in sp["scaling"]:
        c, d = r["compress"], r["decompress"]
        out.append(f"| {r['side']}x{r['side']} | {r['pixels'] / 1e6:.2f} | "
                   f"{c.get('wall_s', float('nan')):.2f} | {c.get('peak_rss_mib', float('nan')):.0f} | "
                   f"{d.get('wall_s', float('nan')):.2f} | {d.get('peak_rss_mib', float('nan')):.0f} |")
    ms = sp.get("max_size")
    if ms:
        out += ["", f"Largest square image within {ms['limit_gib']:g} GiB: "
                f"{ms['largest_checked_side']}x{ms['largest_checked_side']} (checked); the fit "
                f"is {ms['fit_mib']['intercept']:.0f} MiB + {ms['fit_mib']['per_megapixel']:.0f} "
                f"MiB per megapixel."]
    return out


def load(name: str) -> dict | None:
    f = RESULTS / name
    return json.loads(f.read_text()) if f.exists() else None


def main():
    lines = []
    if rd := load("rd.json"):
        lines += rd_tables(rd) + ["", *coder_cost_table(rd), "", *sample_gap_table(rd), "",
                                  *bpg_table(rd), ""]
    for name in ("coder-params.json", "refine-params.json"):
        if res := load(name):
            lines += [f"{name}:", "", *variants_table(res), ""]
    if res := load("coders.json"):
        lines += coders_table(res) + [""]
    for f in sorted(RESULTS.glob("speed-*.json")):
        lines += speed_table(json.loads(f.read_text())) + [""]
    if b := load("bpp-target.json"):
        lines += ["| --bpp target | images | within ±5% | mean abs error | max abs error | "
                  "mean s |", "|---|---|---|---|---|---|"]
        for t, s in b["summary"].items():
            lines.append(f"| {t} | {s['images']} | {s['within_5pct']} | "
                         f"{100 * s['mean_abs_rel_error']:.2f}% | "
                         f"{100 * s['max_abs_rel_error']:.2f}% | {s['mean_seconds']:.1f} |")
        lines.append("")
    if res := load("large-images.json"):
        lines += large_table(res)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
