"""The CPU paths side by side (issue 29): whole-process `nnc compress` and `nnc decompress`
of one Kodak image with the encoder's float32 path forced (NNC_PRECISION=float32, what a
CPU without AVX512-BF16 or AMX runs) and the bfloat16 path (where the CPU has it), each
with its stages timed in a fresh process; and, with --competitor, compress beside one
competing CPU-bound process against the same run on one thread alone. Every record has
wall and CPU (user + sys) seconds, peak memory, the machine's CPU model and ISA features,
and the load average before and after.

    python -m benchmarks.cpu_paths --runs 5 --out benchmarks/results/cpu-paths.json
    python -m benchmarks.cpu_paths --runs 3 --competitor --paths float32 \
        --out benchmarks/results/cpu-paths-load.json

About a minute on a quiet 2-core machine (5 runs of each, both paths); --competitor adds
about half a minute. Times are wall clock: on a loaded machine compare CPU seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import KODAK, bytecode, machine_facts

# the start of every probe: a clock of wall and CPU seconds per step, and the threads the CLI
# sets up before torch starts (nnc/threads.py)
PROBE_HEAD = r"""
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
marks = {}
def mark(name):
    global w0, c0
    w, c = time.perf_counter(), time.process_time()
    marks[name] = {"wall_s": w - w0, "cpu_s": c - c0}
    w0, c0 = w, c
from nnc import threads
threads.configure()
"""

# one compress in a fresh process, as the CLI runs it (nnc/convert.py compress_file), every
# step timed in wall and CPU seconds: imports without torch, PNG reading, the first pass
# started on ONNX Runtime where the float32 path takes it, torch's import (the pass runs
# beside it), compress; and codec.compress's own stages in CPU seconds
COMPRESS_PROBE = PROBE_HEAD + r"""
from nnc import convert
from nnc.image_io import read_image
mark("imports")
img = read_image(open(sys.argv[1], "rb").read())
mark("png read")
o = dict(bpp=None, device="cpu", model_name=None, quality=float(sys.argv[2]))
with convert.importing():
    early = convert._start_analysis(img, o)
    mark("first pass started")
    from nnc import codec
mark("import torch")
# codec's stage marks read this clock: CPU seconds of all threads, not wall (a loaded
# machine inflates wall time, not CPU time)
import types
codec.time = types.SimpleNamespace(perf_counter=time.process_time)
stages = {}
data = codec.compress(img, float(sys.argv[2]), settings=codec.default_settings("cpu"),
                      device="cpu", timings=stages, analysed=early)
mark("compress")
print(json.dumps({"steps": marks, "compress_stages_cpu_s": stages, "bytes": len(data)}))
"""

# one decompress in a fresh process, as the CLI runs it (nnc/convert.py decompress_file)
DECOMPRESS_PROBE = PROBE_HEAD + r"""
from nnc.codes import read_codes
from nnc.image_io import encode_for
mark("imports")
codes = read_codes(open(sys.argv[1], "rb").read(), 100_000_000)
mark("read codes")
from nnc import decoder
decoder.import_engine(codes)
mark("import engine")
decoder.sessions(codes.header.model_name)
mark("sessions")
stages = {}
img = decoder.decompress(codes, timings=stages)
mark("decode")
out = encode_for(img, "x.png")
mark("png write")
print(json.dumps({"steps": marks, "decode_stages_wall_s": stages, "png_bytes": len(out)}))
"""


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Wall and CPU (user + sys) seconds and peak resident memory of one command."""
    r = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *cmd], capture_output=True,
                       text=True, env=env)
    if r.returncode:
        raise SystemExit(r.stderr)
    wall, user, sys_, peak = r.stderr.strip().splitlines()[-1].split()
    return {"wall_s": float(wall), "cpu_s": round(float(user) + float(sys_), 2),
            "peak_rss_mib": round(int(peak) / 1024, 1)}


def summary(runs: list[dict]) -> dict:
    return {"runs": runs,
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def cli_command() -> list[str]:
    """The ``nnc`` command as users run it: the console script pip installed beside this
    Python (``python -m nnc.cli`` where there is none; here it took 0.15 s more per
    compress, the same work)."""
    script = Path(sys.executable).with_name("nnc")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nnc.cli"]


def env_with(**kw) -> dict:
    env = dict(os.environ)
    for k, v in kw.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of a whole-process timing (this script's and before_after's)."""
    ap.add_argument("--image", default="kodim23")
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--paths", nargs="+", default=["float32", "bfloat16"],
                    choices=["float32", "bfloat16"])
    ap.add_argument("--source", action="store_true",
                    help="nnc's modules compiled from source in every process (no bytecode)"
                         " instead of compiled first, as an installed nnc has them")
    ap.add_argument("--out", type=Path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run_arguments(ap)
    ap.add_argument("--competitor", action="store_true",
                    help="also compress beside one competing CPU-bound process")
    ap.add_argument("--note", default="", help="a note stored with the results")
    a = ap.parse_args()
    src = KODAK / f"{a.image}.png"
    nnc = cli_command()
    import nnc as package
    result: dict = {"machine": machine_facts(), "image": a.image, "quality": a.quality,
                    "runs": a.runs, "note": a.note,
                    "nnc_bytecode": bytecode(Path(package.__file__).parent, not a.source),
                    "paths": {}}
    from nnc.model.fused import fast_bf16
    with tempfile.TemporaryDirectory() as tmp:
        f, png = Path(tmp) / "x.nnc", Path(tmp) / "x.png"
        for path in a.paths:
            if path == "bfloat16" and not fast_bf16():
                result["paths"][path] = "not measured: this CPU has no native bfloat16"
                continue
            env = env_with(NNC_PRECISION=path, OMP_NUM_THREADS=None, OMP_WAIT_POLICY=None,
                           GOMP_SPINCOUNT=None, KMP_BLOCKTIME=None)
            row: dict = {}
            for what, cmd in (("compress", ["compress", "-f", "-q", str(a.quality), str(src),
                                            str(f)]),
                              ("decompress", ["decompress", "-f", str(f), str(png)])):
                row[what] = summary([timed(nnc + cmd, env) for _ in range(a.runs)])
            data = f.read_bytes()
            row["bytes"] = len(data)
            row["sha256"] = hashlib.sha256(data).hexdigest()
            row["decoded_sha256"] = hashlib.sha256(png.read_bytes()).hexdigest()
            for what, probe, arg in (("compress_stages", COMPRESS_PROBE, [str(src),
                                                                          str(a.quality)]),
                                     ("decompress_stages", DECOMPRESS_PROBE, [str(f)])):
                out = subprocess.run([sys.executable, "-c", probe, *arg], capture_output=True,
                                     text=True, env=env)
                if out.returncode:
                    raise SystemExit(out.stderr)
                row[what] = json.loads(out.stdout)
            if a.competitor:
                row["under_load"] = under_load(nnc + ["compress", "-f", "-q", str(a.quality),
                                                      str(src), str(f)], env, a.runs)
            result["paths"][path] = row
            print(path, json.dumps({k: (v["median_wall_s"], v["median_cpu_s"])
                                    for k, v in row.items() if isinstance(v, dict)
                                    and "median_wall_s" in v}), flush=True)
            if a.competitor:
                print(" under load", json.dumps({k: v["median_wall_s"]
                                                 for k, v in row["under_load"].items()}))
    result["loadavg_after"] = list(os.getloadavg())
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


def under_load(cmd: list[str], env: dict, runs: int) -> dict:
    """The same compress on one thread alone; with the default threads (nnc/threads.py: a
    spin of GOMP_SPINCOUNT rounds, then sleep) alone, with idle threads sleeping at once
    (OMP_WAIT_POLICY=PASSIVE, nnc's policy before) and spinning (ACTIVE, libgomp's
    behaviour before nnc/threads.py for the first 300,000 spins); then beside one competing
    CPU-bound process (a Python busy loop): the default threads (the competitor is there at
    start-up: the process takes the free cores), and all cores forced (OMP_NUM_THREADS, a
    competitor that comes later) with the default wait policy and with PASSIVE. The rows
    without a competitor are "alone" only on an otherwise quiet machine: machine.loadavg
    says how quiet it was."""
    cores = str(os.cpu_count() or 1)
    alone = {"one_thread_alone": {"OMP_NUM_THREADS": "1"},
             "default_threads_alone": {},
             "default_threads_alone_passive_wait": {"OMP_WAIT_POLICY": "PASSIVE"},
             "default_threads_alone_active_wait": {"OMP_WAIT_POLICY": "ACTIVE"}}
    loaded = {"default_threads_with_competitor": {},
              "all_cores_with_competitor": {"OMP_NUM_THREADS": cores},
              "all_cores_passive_wait_with_competitor": {"OMP_NUM_THREADS": cores,
                                                         "OMP_WAIT_POLICY": "PASSIVE"}}
    out = {}
    for name, extra in alone.items():
        out[name] = summary([timed(cmd, {**env, **extra}) for _ in range(runs)])
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for name, extra in loaded.items():
            out[name] = summary([timed(cmd, {**env, **extra}) for _ in range(runs)])
    finally:
        hog.kill()
        hog.wait()
    return out


if __name__ == "__main__":
    main()
