"""Before and after a change, on the same machine in the same minutes: whole-process
`nnc compress` and `nnc decompress` of one Kodak image by an earlier commit's code and by
this tree's, runs interleaved (before, after, before, ...), per encoder path
(NNC_PRECISION), with wall and CPU seconds and peak memory, and whether the two wrote the
same bytes. The VM's speed drifts by the hour, so only runs taken side by side compare.

    python -m benchmarks.before_after --before 865a0d7 --runs 5 \
        --out benchmarks/results/before-after-issue29.json

Each side runs from a copy of its nnc/ package and weights/ folder in a temporary folder
(the editable install's finder left out), as `python -c "from nnc.cli import main; main()"`.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks.common import KODAK, bytecode, machine_facts
from benchmarks.cpu_paths import env_with, run_arguments, summary, timed

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
          "if 'editable' not in repr(f).lower()]; sys.path.insert(0, sys.argv.pop(1)); "
          "sys.argv[0] = 'nnc'; from nnc.cli import main; main()")


def checkout(commit: str, into: Path) -> None:
    """nnc/ and weights/ of ``commit`` into ``into``, weights as the package nnc.weights."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "nnc", "weights"],
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    shutil.move(str(into / "weights"), str(into / "nnc" / "weights"))


def working_tree(into: Path) -> None:
    shutil.copytree(ROOT / "nnc", into / "nnc", ignore=shutil.ignore_patterns("__pycache__"),
                    symlinks=True)
    target = into / "nnc" / "weights"
    if target.exists() or target.is_symlink():
        target.unlink() if target.is_symlink() else shutil.rmtree(target)
    shutil.copytree(ROOT / "weights", target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the earlier commit")
    run_arguments(ap)
    a = ap.parse_args()
    after = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "nnc"],
                                capture_output=True, text=True).stdout.strip())
    result = {"machine": machine_facts(), "image": a.image, "quality": a.quality,
              "runs": a.runs, "before": a.before,
              "after": after + (" + uncommitted changes" if dirty else ""), "paths": {}}
    src = KODAK / f"{a.image}.png"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkout(a.before, tmp / "before")
        working_tree(tmp / "after")
        result["nnc_bytecode"] = [bytecode(tmp / side / "nnc", not a.source)
                                  for side in ("before", "after")][0]
        for path in a.paths:
            env = env_with(NNC_PRECISION=path, OMP_NUM_THREADS=None, OMP_WAIT_POLICY=None,
                           GOMP_SPINCOUNT=None, KMP_BLOCKTIME=None)
            rows: dict = {side: {"compress": [], "decompress": []} for side in ("before", "after")}
            for _ in range(a.runs):
                for side in ("before", "after"):
                    nnc = [sys.executable, "-c", RUNNER, str(tmp / side)]
                    f, png = tmp / f"{side}.nnc", tmp / f"{side}.png"
                    rows[side]["compress"].append(timed(
                        nnc + ["compress", "-f", "-q", str(a.quality), str(src), str(f)], env))
                    rows[side]["decompress"].append(timed(
                        nnc + ["decompress", "-f", str(f), str(png)], env))
            same = {"file": (tmp / "before.nnc").read_bytes() == (tmp / "after.nnc").read_bytes(),
                    "png": (tmp / "before.png").read_bytes() == (tmp / "after.png").read_bytes()}
            result["paths"][path] = {
                side: {what: summary(runs) for what, runs in r.items()}
                for side, r in rows.items()} | {"same_bytes": same}
            print(path, json.dumps({side: {what: result["paths"][path][side][what]["median_wall_s"]
                                           for what in ("compress", "decompress")}
                                    for side in ("before", "after")}), same, flush=True)
    result["loadavg_after"] = list(os.getloadavg())
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
