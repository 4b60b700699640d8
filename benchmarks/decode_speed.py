"""Whole-process decode time (issue 17): `nnc decompress` of one file, N runs, median, with
the engine's split between start-up (imports, sessions) and work, and peak memory.

    python -m benchmarks.decode_speed --image kodim23 --runs 5 --out benchmarks/results/decode-speed.json
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

from benchmarks.common import KODAK, whole_process

# a decode in one process with its stages timed: imports, container + entropy decoding,
# the engine's sessions (or model), the networks, PNG writing
PROBE = r"""
import sys, time, json
t0 = time.perf_counter()
import nnc.cli, nnc.codes, nnc.decoder, nnc.image_io
t_import = time.perf_counter()
data = open(sys.argv[1], "rb").read()
codes = nnc.codes.read_codes(data, 10 ** 9)
t_read = time.perf_counter()
timings = {}
img = nnc.decoder.decompress(codes, engine=sys.argv[2], timings=timings)
t_dec = time.perf_counter()
png = nnc.image_io.write_png(img)
t_png = time.perf_counter()
print(json.dumps({"imports_s": t_import - t0, "read_codes_s": t_read - t_import,
                  "decode_s": t_dec - t_read, "stages": timings, "png_s": t_png - t_dec,
                  "torch_imported": "torch" in sys.modules}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="kodim23")
    ap.add_argument("--file", type=Path, help="an image file instead of a Kodak name")
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--engines", nargs="+", default=["onnx", "torch"])
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    src = a.file or KODAK / f"{a.image}.png"
    nnc_bin = [sys.executable, "-m", "nnc.cli"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "x.nnc"
        subprocess.run(nnc_bin + ["compress", "-f", str(src), str(f), "-q", str(a.quality)],
                       check=True)
        for engine in a.engines:
            walls, peaks, probes = [], [], []
            for _ in range(a.runs):
                w, m = whole_process(nnc_bin + ["decompress", "-f", "--engine", engine, str(f),
                                        str(Path(tmp) / "x.png")])
                walls.append(w)
                peaks.append(m)
                out = subprocess.run([sys.executable, "-c", PROBE, str(f), engine],
                                     capture_output=True, text=True, check=True)
                probes.append(json.loads(out.stdout))
            med = sorted(probes, key=lambda p: p["decode_s"])[len(probes) // 2]
            rows[engine] = {"whole_process_s": walls, "median_s": statistics.median(walls),
                            "peak_rss_mib": round(max(peaks) / 1024, 1),
                            "median_probe": med}
            print(engine, json.dumps(rows[engine]), flush=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"load {os.getloadavg()[0]:.2f}",
              "image": str(src.name), "quality": a.quality, "engines": rows}
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
