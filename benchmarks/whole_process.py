"""Whole-process times of `nnc compress` and `nnc decompress` at the default settings (the
issues' speed budgets): N runs each, median, peak memory, and one in-process encode with its
stages timed (codec.compress(timings=)), for Kodak images at a rate parameter.

    python -m benchmarks.whole_process --images kodim23 kodim05 --runs 5 \
        --out benchmarks/results/whole-process.json

Run it on a quiet machine: the times are wall clock.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import KODAK, machine_facts, whole_process

# one compress in a fresh process, its stages timed (the CLI's default settings on the CPU)
PROBE = r"""
import sys, time, json
t0 = time.perf_counter()
import numpy as np
from PIL import Image
from nnc import codec
from nnc.image_io import RasterImage
t_import = time.perf_counter()
rgb = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
timings = {}
settings = codec.default_settings("cpu")
data = codec.compress(RasterImage(rgb, False, None), float(sys.argv[2]), device="cpu",
                      settings=settings, timings=timings)
print(json.dumps({"imports_s": t_import - t0, "compress_s": time.perf_counter() - t_import,
                  "stages": timings, "bytes": len(data)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", nargs="+", default=["kodim23", "kodim05"])
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    nnc_bin = [sys.executable, "-m", "nnc.cli"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        f, png = Path(tmp) / "x.nnc", Path(tmp) / "x.png"
        for name in a.images:
            src = KODAK / f"{name}.png"
            row = {}
            for what, cmd in (("compress", ["compress", "-f", "-q", str(a.quality), str(src),
                                            str(f)]),
                              ("decompress", ["decompress", "-f", str(f), str(png)])):
                walls, peaks = [], []
                for _ in range(a.runs):
                    w, m = whole_process(nnc_bin + cmd)
                    walls.append(w)
                    peaks.append(m)
                row[what] = {"whole_process_s": walls, "median_s": statistics.median(walls),
                             "peak_rss_mib": round(max(peaks) / 1024, 1)}
            row["bytes"] = f.stat().st_size
            out = subprocess.run([sys.executable, "-c", PROBE, str(src), str(a.quality)],
                                 capture_output=True, text=True, check=True)
            row["compress_probe"] = json.loads(out.stdout)
            rows[name] = row
            print(name, json.dumps({k: v["median_s"] for k, v in row.items()
                                    if isinstance(v, dict) and "median_s" in v}),
                  json.dumps(row["compress_probe"]["stages"]), flush=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"load {os.getloadavg()[0]:.2f}",
              "machine_facts": machine_facts(),
              "nnc_precision": os.environ.get("NNC_PRECISION", "auto"),
              "quality": a.quality, "runs": a.runs, "images": rows}
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
