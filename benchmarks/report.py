"""Markdown tables for the README from the benchmark results (rd.json, speed-*.json,
bpp-target.json). Prints to stdout; nothing is measured here.

    python benchmarks/report.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rd as rd_bench  # noqa: E402  (the BD-rate table)

RESULTS = Path(__file__).resolve().parent / "results"


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
    out += ["", *refine_table(rd), "", *rd_bench.nnc_bd_table(rd)]
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


def main():
    lines = []
    if (RESULTS / "rd.json").exists():
        lines += rd_tables(json.loads((RESULTS / "rd.json").read_text())) + [""]
    for f in sorted(RESULTS.glob("speed-*.json")):
        lines += speed_table(json.loads(f.read_text())) + [""]
    if (RESULTS / "bpp-target.json").exists():
        b = json.loads((RESULTS / "bpp-target.json").read_text())
        lines += ["| --bpp target | images | within ±5% | mean abs error | max abs error | "
                  "mean s |", "|---|---|---|---|---|---|"]
        for t, s in b["summary"].items():
            lines.append(f"| {t} | {s['images']} | {s['within_5pct']} | "
                         f"{100 * s['mean_abs_rel_error']:.2f}% | "
                         f"{100 * s['max_abs_rel_error']:.2f}% | {s['mean_seconds']:.1f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
