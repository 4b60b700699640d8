"""Speed and memory: nnc against the classical codecs, nnc per stage, and growth with size.

    pip install -e '.[bench]'
    python -m benchmarks.speed                        # CPU (about 15 min on 2 cores)
    python -m benchmarks.speed --device cuda          # on a GPU machine
    python -m benchmarks.speed --skip-max-size --sizes 256 512 --out /tmp/speed.json

Measures, on one image (kodim23 by default):

1. every codec's encode and decode wall time, median of ``--runs`` (classical codecs through
   Pillow and its plugins at the setting nearest 0.75 bpp; nnc in-process with the model
   loaded, and as a user sees it: a fresh ``nnc`` process per file);
2. nnc's time per stage (network passes, level-2 coding, level-1 coding, entropy coding and
   container; and the same for decoding);
3. nnc's time and peak memory (max RSS of a fresh process, which includes about 0.6 GiB of
   Python, torch, the model and a warm-up call) for square images from 256^2 to 2048^2, made
   by resizing the image;
4. the largest square image that compresses within ``--max-mem-gib`` (8 GiB): a linear fit
   of peak memory against pixels predicts it, and a real run at that size checks it.

Writes benchmarks/results/speed-<device>.json (or ``--out``) and the PNG beside it.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import CLASSICAL, KODAK, RESULTS, load_plugin

KODIM23 = KODAK / "kodim23.png"

# runs in a fresh process: compress or decompress one square image, report time and memory
CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from PIL import Image
from nnc import codec
from nnc.image_io import RasterImage
from nnc.model.weights import load_model
src, side, device, what, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
dev = codec.pick_device(device)
load_model(None, dev)
warm = codec.compress(RasterImage(np.zeros((64, 64, 3), np.uint8), False, None), device=dev)
codec.decompress(warm, device=dev)          # first-call costs are not the image's
if what == "compress":
    im = Image.open(src).convert("RGB").resize((side, side), Image.LANCZOS)
    img = RasterImage(np.asarray(im), False, None)
    del im
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stages = {}
t = time.perf_counter()
if what == "compress":
    data = codec.compress(img, quality=0.5, device=dev, timings=stages)
    open(path, "wb").write(data)
else:
    out = codec.decompress(open(path, "rb").read(), device=dev, timings=stages)
wall = time.perf_counter() - t
gpu = torch.cuda.max_memory_allocated() if dev.startswith("cuda") else None
print(json.dumps({"side": side, "what": what, "wall_s": wall, "stages": stages,
                  "rss_before_mib": base / 1024,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "gpu_peak_mib": None if gpu is None else gpu / 2**20}))
"""


def child(side: int, what: str, device: str, path: Path, image: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(image), str(side), device, what,
                        str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"side": side, "what": what, "failed": r.stderr.strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def median_time(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def classical_times(rgb: np.ndarray, runs: int) -> dict:
    """Each Pillow codec at the sweep setting whose file is nearest 0.75 bpp on this image."""
    out = {}
    im = Image.fromarray(rgb)
    for name, spec in CLASSICAL.items():
        if load_plugin(spec.needs):
            continue
        best = None
        for s in spec.settings:
            buf = io.BytesIO()
            im.save(buf, spec.fmt, **spec.options(s))
            bpp = 8 * buf.tell() / (rgb.shape[0] * rgb.shape[1])
            if best is None or abs(bpp - 0.75) < abs(best[1] - 0.75):
                best = (s, bpp, buf.getvalue())
        s, bpp, data = best
        enc = median_time(lambda: im.save(io.BytesIO(), spec.fmt, **spec.options(s)), runs)
        dec = median_time(lambda: Image.open(io.BytesIO(data)).convert("RGB"), runs)
        out[name] = {"label": spec.label, "setting": s, "bpp": bpp, "encode_s": enc,
                     "decode_s": dec}
    return out


def nnc_times(rgb: np.ndarray, runs: int, device: str, image: Path) -> dict:
    from nnc import codec
    from nnc.image_io import RasterImage
    from nnc.model.weights import load_model
    from nnc.ratecontrol import compress_to_bpp
    dev = codec.pick_device(device)
    load_model(None, dev)
    img = RasterImage(rgb, False, None)
    # quality whose file is nearest 0.75 bpp, as for the classical codecs
    data, q = compress_to_bpp(img, 0.75, device=dev)
    enc_stages, dec_stages, enc, dec = [], [], [], []
    for _ in range(runs):
        st = {}
        t = time.perf_counter()
        data = codec.compress(img, quality=q, device=dev, timings=st)
        enc.append(time.perf_counter() - t)
        enc_stages.append(st)
        st = {}
        t = time.perf_counter()
        codec.decompress(data, device=dev, timings=st)
        dec.append(time.perf_counter() - t)
        dec_stages.append(st)
    res = {"label": "nnc (model loaded)", "setting": q,
           "bpp": 8 * len(data) / (rgb.shape[0] * rgb.shape[1]),
           "encode_s": statistics.median(enc), "decode_s": statistics.median(dec),
           "encode_stages_s": {k: statistics.median(s[k] for s in enc_stages)
                               for k in enc_stages[0]},
           "decode_stages_s": {k: statistics.median(s[k] for s in dec_stages)
                               for k in dec_stages[0]}}
    # as a user runs it: a fresh process per command
    nnc = [sys.executable, "-m", "nnc.cli"]
    with tempfile.TemporaryDirectory() as d:
        f, rec = Path(d) / "x.nnc", Path(d) / "x.png"
        def run(cmd):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        cli_enc = median_time(lambda: run(nnc + ["compress", "-f", "--device", device, "-q",
                                                 str(q), str(image), str(f)]), runs)
        cli_dec = median_time(lambda: run(nnc + ["decompress", "-f", "--device", device,
                                                 str(f), str(rec)]), runs)
        startup = median_time(lambda: run([sys.executable, "-c", "import torch, nnc.codec"]), 3)
    res["cli"] = {"compress_s": cli_enc, "decompress_s": cli_dec, "python_import_s": startup}
    return res


def scaling(sizes: list[int], device: str, image: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for side in sizes:
            path = Path(d) / f"{side}.nnc"
            enc = child(side, "compress", device, path, image)
            dec = child(side, "decompress", device, path, image) if path.exists() else {}
            rows.append({"side": side, "pixels": side * side, "compress": enc,
                         "decompress": dec,
                         "bytes": path.stat().st_size if path.exists() else None})
            print(f"  {side}^2: compress {enc.get('wall_s', float('nan')):.2f} s "
                  f"{enc.get('peak_rss_mib', float('nan')):.0f} MiB, decompress "
                  f"{dec.get('wall_s', float('nan')):.2f} s "
                  f"{dec.get('peak_rss_mib', float('nan')):.0f} MiB", flush=True)
    return rows


def max_size(rows: list[dict], limit_gib: float, device: str, image: Path) -> dict:
    """Fit peak RSS = a + b * pixels on the measured sizes; check the predicted maximum."""
    ok = [r for r in rows if "peak_rss_mib" in r["compress"]]
    px = np.array([r["pixels"] for r in ok], float)
    mem = np.array([max(r["compress"]["peak_rss_mib"],
                        r["decompress"].get("peak_rss_mib", 0)) for r in ok])
    b, a = np.polyfit(px[-3:], mem[-3:], 1)
    limit = limit_gib * 1024
    side = int(np.sqrt((limit - a) / b)) // 64 * 64
    checks = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(4):
            path = Path(d) / "big.nnc"
            enc = child(side, "compress", device, path, image)
            dec = child(side, "decompress", device, path, image) if path.exists() else {}
            peak = max(enc.get("peak_rss_mib", 1e12), dec.get("peak_rss_mib", 0))
            checks.append({"side": side, "compress": enc, "decompress": dec})
            print(f"  check {side}^2: peak {peak:.0f} MiB", flush=True)
            if peak <= limit:
                break
            side = int(side * 0.93) // 64 * 64
    return {"limit_gib": limit_gib, "fit_mib": {"intercept": a, "per_megapixel": b * 1e6},
            "predicted_side": int(np.sqrt((limit - a) / b)), "largest_checked_side":
            side if peak <= limit else None, "checks": checks}


def plot(res: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in res["scaling"] if "wall_s" in r["compress"]]
    # the largest-size checks are points on the same curves
    for c in (res.get("max_size") or {}).get("checks", []):
        if "wall_s" in c["compress"]:
            rows.append({"side": c["side"], "pixels": c["side"] ** 2, **c})
    rows.sort(key=lambda r: r["pixels"])
    mp = [r["pixels"] / 1e6 for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.3))
    a1.plot(mp, [r["compress"]["wall_s"] for r in rows], "o-", label="compress")
    a1.plot(mp, [r["decompress"].get("wall_s") for r in rows], "s-", label="decompress")
    stages = rows[-1]["compress"]["stages"]
    for k in stages:
        a1.plot(mp, [r["compress"]["stages"].get(k, 0) for r in rows], ":", lw=1,
                label=f"compress: {k}")
    a1.set_xlabel("megapixels"); a1.set_ylabel("seconds (model already loaded)")
    a1.set_title(f"nnc time against size ({res['device']})"); a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.plot(mp, [r["compress"]["peak_rss_mib"] / 1024 for r in rows], "o-", label="compress")
    a2.plot(mp, [r["decompress"].get("peak_rss_mib", np.nan) / 1024 for r in rows], "s-",
            label="decompress")
    if res.get("max_size") and res["max_size"].get("largest_checked_side"):
        s = res["max_size"]["largest_checked_side"]
        a2.axhline(res["max_size"]["limit_gib"], color="r", lw=1, ls="--",
                   label=f"{res['max_size']['limit_gib']:g} GiB: up to {s}x{s}")
    a2.set_xlabel("megapixels"); a2.set_ylabel("peak RSS (GiB)")
    a2.set_title("nnc peak memory against size"); a2.legend(fontsize=8); a2.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(out, dpi=110); plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, default=KODIM23)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 1536, 2048])
    ap.add_argument("--max-mem-gib", type=float, default=8.0)
    ap.add_argument("--skip-max-size", action="store_true")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    ap.add_argument("--out", type=Path, default=None,
                    help="the JSON (default benchmarks/results/speed-<device>.json)")
    args = ap.parse_args()
    import torch
    out = args.out or RESULTS / f"speed-{args.device.split(':')[0]}.json"
    if args.plot_only:
        plot(json.loads(out.read_text()), out.with_suffix(".png"))
        return
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    res = {"image": args.image.name, "device": args.device,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores"
                      + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda")
                         else ""),
           "torch_threads": torch.get_num_threads(), "runs": args.runs}
    print("codecs", flush=True)
    res["codecs"] = {"nnc": nnc_times(rgb, args.runs, args.device, args.image),
                     **(classical_times(rgb, args.runs) if args.device == "cpu" else {})}
    print("scaling", flush=True)
    res["scaling"] = scaling(args.sizes, args.device, args.image)
    if not args.skip_max_size:
        print("largest size", flush=True)
        res["max_size"] = max_size(res["scaling"], args.max_mem_gib, args.device, args.image)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    plot(res, out.with_suffix(".png"))
    for name, c in res["codecs"].items():
        print(f"{c['label']:<30} setting {c['setting']!s:<8} {c['bpp']:.3f} bpp  "
              f"encode {1000 * c['encode_s']:8.1f} ms  decode {1000 * c['decode_s']:8.1f} ms")
    print("wrote", out)


if __name__ == "__main__":
    main()
