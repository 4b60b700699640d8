"""The standing GPU order of DEVELOPERS.md in one device call (issue 26), in this order:

1. the cross-device check: each image encoded on the CPU and decoded on the GPU, and the
   reverse, PSNR against the same-device decode; every golden file decoded on the GPU
   against its golden PNG;
2. GPU speed: compress and decompress of each image (median of 3, after a warm-up);
3. training: the best recipe found on the CPU (training/finetune.py's defaults), resumed
   from the committed weights, for the minutes left, then the weights in parts of 15 MiB;
4. the new weights against the old on the carried Kodak images, without coding (ΣKL,
   posterior-mean and exact-sample PSNR at 4 qualities; BD-rates), to decide whether the
   files' curve is worth measuring and shipping (benchmarks/model_diagnosis.py).

Everything lands in OUT: ``gpu-session.json`` (the results, written after each stage),
``train-log.csv``, and ``model.pt.part0``, ``.part1`` ... (join with ``cat``; a training
checkpoint for ``nnc train --export`` or ``training/finetune.py --resume``).

Preparing a call (here, in the repository root; both folders are git-ignored):

    bash training/gpu_prepare.sh          # .gpu-data/ (crops + Kodak), .whl/ (constriction)

then one device call, carry [".gpu-data", ".whl"], timeout_s 560 (nnc runs from the source
tree there: ``nnc/weights`` is what ``pip install`` maps to ``weights/``):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && ln -sfn ../weights nnc/weights && \
    python3 training/gpu_session.py $OUT --data .gpu-data --budget 500

``--budget`` counts from the start of this script: checks and speed take what they take
(about a minute), training the rest less ``--margin`` for the export. The test suite runs the
same script on the CPU with ``--tiny`` (tests/test_gpu_session.py), so that it cannot fail for
a trivial reason when a GPU is lent.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))               # finetune.py
sys.path.insert(1, str(HERE.parent))        # benchmarks/

T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {msg}", flush=True)


def images_in(folder: Path, limit: int):
    import numpy as np
    from PIL import Image
    from nnc.image_io import RasterImage
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")[:limit]
    return [(p.name, RasterImage(np.asarray(Image.open(p).convert("RGB")), False, None))
            for p in files]


def cross_device(images, device: str, quality: float, golden: Path) -> dict:
    """PSNRs of CPU->device and device->CPU decodes against same-device ones, and the golden
    files decoded on ``device``."""
    import numpy as np
    from nnc import codec
    from nnc.metrics import psnr
    rows = []
    for name, img in images:
        row = {"image": name}
        for enc in ("cpu", device):
            data = codec.compress(img, quality, device=enc,
                                  settings=codec.default_settings(enc))
            same = codec.decompress(data, device=enc).rgb
            other_dev = device if enc == "cpu" else "cpu"
            other = codec.decompress(data, device=other_dev).rgb
            key = f"encoded_{'cpu' if enc == 'cpu' else 'device'}"
            row[key] = {"bytes": len(data), "psnr_same_device": psnr(img.rgb, same),
                        "psnr_other_device": psnr(img.rgb, other),
                        "max_level_diff": int(np.abs(same.astype(int) - other).max())}
        rows.append(row)
    gold = []
    meta = json.loads((golden / "golden.json").read_text())["files"]
    for f in meta:
        from PIL import Image
        want = np.asarray(Image.open(golden / f["decoded"]))
        got = codec.decompress((golden / f["nnc"]).read_bytes(), device=device)
        arr = got.rgb[..., 0] if got.gray else got.rgb
        if got.alpha is not None:
            arr = np.dstack([arr, got.alpha])
        if want.shape != arr.shape:
            raise SystemExit(f"{f['nnc']}: decoded shape {arr.shape}, golden {want.shape}")
        gold.append({"file": f["nnc"],
                     "max_level_diff": int(np.abs(arr.astype(int) - want).max())})
    return {"images": rows, "golden": gold,
            "golden_max_level_diff": max(g["max_level_diff"] for g in gold)}


def speed(images, device: str, quality: float, repeats: int) -> dict:
    import torch
    from nnc import codec

    def timed(fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    settings = codec.default_settings(device)
    codec.decompress(codec.compress(images[0][1], quality, device=device, settings=settings),
                     device=device)                                        # warm-up
    rows = []
    for name, img in images:
        enc, dec = [], []
        for _ in range(repeats):
            t, data = timed(lambda: codec.compress(img, quality, device=device,
                                                   settings=settings))
            enc.append(t)
            dec.append(timed(lambda: codec.decompress(data, device=device))[0])
        rows.append({"image": name, "compress_s": statistics.median(enc),
                     "decompress_s": statistics.median(dec), "bytes": len(data)})
    return {"quality": quality, "repeats": repeats, "images": rows,
            "compress_s_median": statistics.median(r["compress_s"] for r in rows),
            "decompress_s_median": statistics.median(r["decompress_s"] for r in rows)}


def train_rest(out: Path, data: list[Path], device: str, seconds: float, tiny: bool,
               source: str) -> dict:
    import torch
    import device_export
    import finetune
    from nnc.train import train
    from nnc.model.pln import PLNConfig
    run = out / "run"
    run.mkdir(parents=True, exist_ok=True)
    init = finetune.init_checkpoint(source, run / "init.pt")
    folder = data[0] if len(data) == 1 else finetune.pooled(data, run / "data")
    r = finetune.RECIPE_HQ
    cfg = PLNConfig(lambda_min=r["lambda_range"][0], lambda_max=r["lambda_range"][1])
    batch, crop = (2, 64) if tiny else (r["gpu_batch"], r["gpu_crop"])
    first = int(torch.load(init, map_location="cpu", weights_only=True)["step"])
    t = time.perf_counter()
    ckpt = train(folder, run, steps=first + 2 if tiny else 10 ** 9, batch=batch, crop=crop,
                 lr=r["lr"], cfg=cfg, device=device, init=init,
                 lambda_power=r["lambda_power"], top_share=r["top_share"], progress=False,
                 time_limit_s=None if tiny else seconds, ckpt_every=10 ** 9,
                 ckpt_every_s=60.0, log_every=200, log_every_s=30.0,
                 report=lambda line: say(line))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    _, parts = device_export.write_parts(state, out)
    (out / "train-log.csv").write_text((run / "log.csv").read_text())
    return {"source": source, "recipe": r, "batch": batch, "crop": crop,
            "steps_from": first,
            "steps_to": int(state["step"]), "seconds": round(time.perf_counter() - t, 1),
            "images": len(list(folder.iterdir())), "parts": parts}


def compare(images, source: str, blob: bytes, qualities=(0.0, 0.4, 0.8, 1.0)) -> dict:
    """The trained weights against ``source`` without coding, on ``images``."""
    import torch
    from benchmarks.model_diagnosis import measure
    from nnc.metrics import bd_rate
    from nnc.model.pln import PLN, PLNConfig
    from nnc.model.weights import load_model
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    new = PLN(PLNConfig(**state["config"]))
    new.load_state_dict(state["model"])
    nets = {"old": load_model(source, "cpu").net.eval(), "new": new.eval()}
    res = {}
    for key, net in nets.items():
        rows = [[measure(net, img.rgb, q) for q in qualities] for _, img in images]
        res[key] = [{k: statistics.mean(r[i][k] for r in rows) for k in rows[0][i]}
                    for i in range(len(qualities))]
    for curve in ("mean", "sample"):
        o, n = res["old"], res["new"]
        res[f"bd_new_vs_old_{curve}"] = bd_rate(
            [p["kl_bpp"] for p in o], [p[f"{curve}_psnr"] for p in o],
            [p["kl_bpp"] for p in n], [p[f"{curve}_psnr"] for p in n])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, required=True,
                    help="a folder with kodak/ (PNG) and crops/ (training images)")
    ap.add_argument("--budget", type=float, default=500.0, help="seconds for all of it")
    ap.add_argument("--margin", type=float, default=45.0,
                    help="seconds kept for the export and the comparison")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--images", type=int, default=4, help="Kodak images checked and timed")
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--source", default="pln-gpu-1", help="the installed model to resume")
    ap.add_argument("--tiny", action="store_true",
                    help="a few tiny steps (the test suite's run on the CPU)")
    a = ap.parse_args()
    import torch
    from pathlib import Path as P
    a.out.mkdir(parents=True, exist_ok=True)
    res = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(),
           "torch": torch.__version__, "device": a.device,
           "gpu": torch.cuda.get_device_name(0) if a.device.startswith("cuda") else None}

    def save():
        (a.out / "gpu-session.json").write_text(json.dumps(res, indent=1) + "\n")

    images = images_in(a.data / "kodak", a.images)
    golden = P(__file__).resolve().parents[1] / "formats" / "golden"
    say(f"{res['gpu'] or a.device}: cross-device check on {len(images)} images")
    res["cross_device"] = cross_device(images, a.device, a.quality, golden)
    save()
    say(f"golden files: max {res['cross_device']['golden_max_level_diff']} levels; speed")
    res["speed"] = speed(images, a.device, a.quality, 1 if a.tiny else 3)
    save()
    left = a.budget - (time.monotonic() - T0) - a.margin
    say(f"compress {res['speed']['compress_s_median']:.3f} s, decompress "
        f"{res['speed']['decompress_s_median']:.3f} s; training for {left:.0f} s")
    crops = sorted(p for p in (a.data / "crops").iterdir() if p.is_dir()) or [a.data / "crops"]
    res["training"] = train_rest(a.out, crops, a.device, max(left, 1.0), a.tiny, a.source)
    save()
    say(f"trained: steps {res['training']['steps_from']} -> {res['training']['steps_to']}")
    blob = b"".join((a.out / f"model.pt.part{i}").read_bytes()
                    for i in range(res["training"]["parts"]))
    res["new_vs_old"] = compare(images, a.source, blob)
    res["wall_s"] = round(time.monotonic() - T0, 1)
    save()
    say(f"done: BD-rate of the new weights against {a.source} (ΣKL, posterior mean) "
        f"{res['new_vs_old']['bd_new_vs_old_mean']:+.1f}%, exact sample "
        f"{res['new_vs_old']['bd_new_vs_old_sample']:+.1f}%")


if __name__ == "__main__":
    main()
