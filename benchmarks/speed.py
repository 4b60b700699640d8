"""Whole-process speed of `nnc compress` / `nnc decompress` (median of N runs).

    python benchmarks/speed.py [--image PATH] [--runs 5] [--device cpu|cuda]

Each run is a fresh process, as a user sees it (Python start, imports, model load, coding,
writing). Writes benchmarks/results/speed-<device>.json.
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
import time
from pathlib import Path

KODIM23 = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim23.png"
RESULTS = Path(__file__).resolve().parent / "results"


def timed(cmd: list[str], env) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", type=Path, default=KODIM23)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quality", type=float, default=0.5)
    args = ap.parse_args()
    env = dict(os.environ)
    nnc = [sys.executable, "-m", "nnc.cli"]
    with tempfile.TemporaryDirectory() as d:
        f, rec = Path(d) / "x.nnc", Path(d) / "x.png"
        enc, dec = [], []
        for _ in range(args.runs):
            enc.append(timed(nnc + ["compress", "-f", "--device", args.device, "-q",
                                    str(args.quality), str(args.image), str(f)], env))
            dec.append(timed(nnc + ["decompress", "-f", "--device", args.device, str(f),
                                    str(rec)], env))
        size = f.stat().st_size
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, nnc.codec"], check=True, env=env)
        startup = time.perf_counter() - t
    res = {"image": args.image.name, "device": args.device, "quality": args.quality,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "runs": args.runs, "bytes": size,
           "compress_s": enc, "decompress_s": dec,
           "compress_median_s": statistics.median(enc),
           "decompress_median_s": statistics.median(dec),
           "python_import_s": startup}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"speed-{args.device}.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, list)}, indent=1))


if __name__ == "__main__":
    main()
