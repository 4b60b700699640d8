"""sha256 of the files nnc writes for 6 Kodak images at 3 rates, default settings (issue 14:
a refactor must leave every byte as it was). Compare two runs with --compare.

    python -m benchmarks.file_hashes --out benchmarks/results/file-hashes.json
    python -m benchmarks.file_hashes --compare benchmarks/results/file-hashes.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

import nnc

from benchmarks.common import KODAK

IMAGES = ("kodim01", "kodim05", "kodim13", "kodim19", "kodim23", "kodim24")
QUALITIES = (0.0, 0.5, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--compare", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = {}
    for name in IMAGES:
        for q in QUALITIES:
            data = nnc.compress(str(KODAK / f"{name}.png"), quality=q)
            key = f"{name}-q{q:g}"
            rows[key] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            print(key, rows[key], flush=True)
    if a.out:
        a.out.write_text(json.dumps({"settings": "nnc.compress(path, quality=q), CPU "
                                     "defaults", "files": rows}, indent=2) + "\n")
    if a.compare:
        old = json.loads(a.compare.read_text())["files"]
        diff = [k for k in rows if rows[k] != old.get(k)]
        print(f"{len(rows) - len(diff)} of {len(rows)} files byte-identical"
              + (f"; differ: {', '.join(diff)}" if diff else ""))
        sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
