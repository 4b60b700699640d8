"""Whole-process time and peak memory of nnc compress / decompress on large photographs
(issue 15: memory bounded by a tile), on mosaics of Kodak images (real photo content).

    python -m benchmarks.large_images --megapixels 12 24 100 \
        --out benchmarks/results/large-images.json
    python -m benchmarks.large_images --megapixels 1 12 --out benchmarks/results/photo-sizes.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import KODAK, machine_facts, whole_process
from benchmarks.cpu_paths import cli_command

SIZES = {1: (1152, 864), 12: (4000, 3000), 24: (6000, 4000), 100: (10000, 10000)}


def mosaic(width: int, height: int) -> np.ndarray:
    """Kodak images (768x512, turned to landscape) tiled in order over width x height."""
    tiles = []
    for p in sorted(KODAK.glob("*.png")):
        a = np.asarray(Image.open(p).convert("RGB"))
        tiles.append(a if a.shape[1] > a.shape[0] else a.transpose(1, 0, 2))
    out = np.empty((height, width, 3), np.uint8)
    i = 0
    for y in range(0, height, 512):
        for x in range(0, width, 768):
            t = tiles[i % len(tiles)]
            i += 1
            out[y:y + 512, x:x + 768] = t[:min(512, height - y), :min(768, width - x)]
    return out


def measured(cmd: list[str]) -> dict:
    """Wall time and peak RSS of ``cmd`` as a whole process (common.whole_process)."""
    wall, rss_kib = whole_process(cmd)
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(rss_kib / 1024, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=int, nargs="+", default=[12, 24], choices=SIZES)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    nnc = cli_command()
    res = json.loads(args.out.read_text()) if args.out.exists() else {}
    res.update({"machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
                "machine_facts": machine_facts(),
                "nnc_precision": os.environ.get("NNC_PRECISION", "auto"),
                "note": "whole processes (Python start-up and torch import included); "
                        "default settings (refinement is skipped above 1 megapixel)"})
    res.setdefault("rows", {})
    with tempfile.TemporaryDirectory() as d:
        for mp in args.megapixels:
            w, h = SIZES[mp]
            png, nf, rec = Path(d) / "in.png", Path(d) / "x.nnc", Path(d) / "rec.png"
            Image.fromarray(mosaic(w, h)).save(png)
            c = measured([*nnc, "compress", "-f", str(png), str(nf)])
            dd = measured([*nnc, "decompress", "-f", str(nf), str(rec)])
            row = {"width": w, "height": h, "bpp": 8 * nf.stat().st_size / (w * h),
                   "compress": c, "decompress": dd}
            res["rows"][str(mp)] = row
            print(mp, "MP:", json.dumps(row), flush=True)
            args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
