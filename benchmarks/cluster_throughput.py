"""Batch throughput on a Dask cluster (issue 32): Kodak compressed by a LocalCluster of 1 and
2 worker processes (one thread each) on this machine, through nnc.batch.run, the code path
of `nnc compress --scheduler`; the scheduler's overhead per task, from tasks that do
nothing through the same path; and what N machines would give.

Model: a task costs a worker t_image seconds (one image per shard) and the scheduler
o seconds; with N machines of c worker processes, images per second are about
min(N * c / t_image, 1 / o) (the scheduler hands out tasks one at a time), so the cluster
scales linearly until N * c reaches t_image / o; shards of k images lift the ceiling to
k / o.

    python -m benchmarks.cluster_throughput --out benchmarks/results/cluster-throughput.json
    python -m benchmarks.cluster_throughput --images 2 --noop 50    # a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import KODAK, machine_facts


def noop(src: str, dst: str, opts: dict) -> None:
    """A task that does nothing: its cost is the path's (scheduler, transfer, bookkeeping)."""
    return None


def warm(tmp: str) -> None:
    """On a worker: import torch and load the model (a tiny compress), not timed."""
    from nnc.convert import compress_file
    import numpy as np
    from PIL import Image
    src = os.path.join(tmp, f"warm-{os.getpid()}.png")
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(src)
    compress_file(src, src + ".nnc", dict(OPTS, force=True))


OPTS = dict(quality=0.5, bpp=None, seed=0, refine_steps=None, model_name=None,
            max_pixels=10 ** 8, device="cpu", force=False, strip=False, skip_existing=False)


def measure(workers: int, images: list[Path], n_noop: int, tmp: Path) -> dict:
    from distributed import Client, LocalCluster
    from nnc import batch
    from nnc.convert import compress_file
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=50) as cluster, \
            Client(cluster) as client:
        client.run(warm, str(tmp))
        out = tmp / f"out-{workers}"
        pairs = batch.plan([str(p) for p in images], str(out), ".nnc")
        t = time.perf_counter()
        rows = batch.run(pairs, compress_file, OPTS, scheduler=client)
        wall = time.perf_counter() - t
        assert all(r["status"] == "done" for r in rows), rows
        noop_pairs = [(f"noop{i}", f"{tmp}/noop{i}") for i in range(n_noop)]
        t = time.perf_counter()
        batch.run(noop_pairs, noop, {}, scheduler=client)
        noop_wall = time.perf_counter() - t
    per_image = [r["seconds"] for r in rows]
    return {"workers": workers, "images": len(rows), "wall_s": round(wall, 2),
            "images_per_s": round(len(rows) / wall, 4),
            "per_image_s_mean": round(statistics.mean(per_image), 3),
            "per_image_s_min": round(min(per_image), 3),
            "per_image_s_max": round(max(per_image), 3),
            "bpp_mean": round(statistics.mean(r["bpp"] for r in rows), 4),
            "noop_tasks": n_noop, "noop_wall_s": round(noop_wall, 3),
            "overhead_per_task_ms": round(1000 * noop_wall / n_noop, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--noop", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    with open("/proc/loadavg") as f:
        load_before = f.read().split()
    from nnc.threads import runnable_others
    others_before = runnable_others()
    images = sorted(KODAK.glob("kodim*.png"))[:a.images]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in a.workers:
            runs.append(measure(w, images, a.noop, Path(tmp)))
            print(json.dumps(runs[-1]))
    with open("/proc/loadavg") as f:
        load_after = f.read().split()
    t_image = runs[0]["per_image_s_mean"]             # one worker: one core's cost
    o = min(r["overhead_per_task_ms"] for r in runs) / 1000
    cores = len(os.sched_getaffinity(0))
    model = {"t_image_s": t_image, "scheduler_overhead_per_task_s": round(o, 6),
             "machines_where_the_scheduler_caps_1_image_shards": round(t_image / o / cores),
             "images_per_s": {str(n): round(min(n * cores / t_image, 1 / o), 2)
                              for n in (1, 10, 100, 1000, 10000)},
             "assumes": f"machines like this one ({cores} cores, a worker process per core, "
                        "one thread each), one image per task, Kodak-sized photos "
                        "(768x512), outputs on storage that keeps up"}
    result = {"machine": platform.processor() or platform.machine(), "cores": cores,
              "loadavg_before": load_before, "loadavg_after": load_after,
              # quiet: no other process's work runnable when it started
              # (nnc/threads.py; this process's own threads, numpy's among them, left
              # out); the 1-minute load may still hold work that ended just before
              "quiet": others_before == 0, "machine_facts": machine_facts(),
              "images": [p.name for p in images], "settings": "CLI defaults on the CPU "
              "(quality 0.5, refine 2/1 steps)", "runs": runs, "model_for_n_machines": model}
    print(json.dumps(model, indent=2))
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
