"""A batch as a user runs it (issue 16): 19 Kodak photos and one broken file, compressed and
then decompressed with -j 1 and -j 2 (whole processes, wall time), checking that each run
writes 19 outputs, reports one error line and a summary, and exits non-zero.

    python -m benchmarks.batch_jobs --out benchmarks/results/batch-jobs.json
    python -m benchmarks.batch_jobs --images 2 --jobs 1      # a quick check, prints only
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import KODAK


def run(cmd: list[str]) -> dict:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    return {"wall_s": round(time.perf_counter() - t, 2), "rc": r.returncode,
            "stderr": r.stderr.strip().splitlines()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=19)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    nnc = [sys.executable, "-m", "nnc.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for p in sorted(KODAK.glob("*.png"))[:a.images]:
            shutil.copy(p, src / p.name)
        good = sorted(src.iterdir())[0].read_bytes()
        (src / "broken.png").write_bytes(good[:len(good) // 3])     # a cut-off download
        inputs = sorted(str(p) for p in src.iterdir())
        for jobs in a.jobs:
            out = Path(tmp) / f"nnc-j{jobs}"
            c = run(nnc + ["compress", "-j", str(jobs), "-o", str(out), *inputs])
            c["outputs"] = len(list(out.iterdir()))
            dec = Path(tmp) / f"png-j{jobs}"
            d = run(nnc + ["decompress", "-j", str(jobs), "-o", str(dec),
                           *sorted(str(p) for p in out.iterdir())])
            d["outputs"] = len(list(dec.iterdir()))
            rows.append({"jobs": jobs, "inputs": len(inputs), "compress": c, "decompress": d})
            print(json.dumps(rows[-1]), flush=True)
        same = all((Path(tmp) / f"nnc-j{a.jobs[0]}" / n.name).read_bytes() == n.read_bytes()
                   for j in a.jobs[1:] for n in (Path(tmp) / f"nnc-j{j}").iterdir())
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
              "inputs": f"{a.images} Kodak PNGs + 1 truncated PNG", "runs": rows,
              "files_identical_across_jobs": same}
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
