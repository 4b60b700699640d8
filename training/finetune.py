"""Fine-tune an installed model (weights/) on the CPU or a GPU: the recipe of issue 26's
high-rate model, resumable, checkpointed every minute.

    python training/finetune.py DATA [DATA ...] --out RUN --seconds 3600 \
        [--from pln-gpu-1] [--lambda-range 0.001 0.5] [--top-share 0.5] [--resume]

DATA folders are pooled (their images must be at least --crop pixels on each side). The
first call starts from the installed model ``--from`` (its fp16 weights as float32, its step
count carried over so that the KL warm-up is not repeated); ``--resume`` continues RUN/ckpt.pt.
The learning rate is constant, then decays (cosine) over the last 20% of ``--seconds``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The high-rate fine-tune of issue 26 (the defaults below, and training/gpu_session.py's):
# pln-gpu-1 over a lambda range that reaches 0.5, with half of each batch from the upper
# half of the quality range. On the CPU, batches of 8 crops of 128; on a GPU, pln-gpu-1's 32
# of 192.
RECIPE_HQ = {"lambda_range": (0.001, 0.5), "lambda_power": 0.5, "top_share": 0.5,
             "lr": 1e-4, "cpu_batch": 8, "cpu_crop": 128, "gpu_batch": 32, "gpu_crop": 192}


def init_checkpoint(name: str, dest: Path) -> Path:
    """An installed model as a training checkpoint (``nnc.train`` ``init``)."""
    import torch
    from nnc.codes import manifest
    from nnc.model.weights import load_model
    entry = manifest()["models"][name]
    model = load_model(name).net
    torch.save({"model": model.state_dict(), "step": int(entry.get("steps", 0)),
                "wall_s": float(entry.get("train_wall_s", 0.0)),
                "config": model.cfg.to_dict()}, dest)
    return dest


def pooled(folders: list[Path], into: Path) -> Path:
    """One folder of symbolic links to the images of ``folders`` (nnc.train reads one)."""
    from nnc.train import IMAGE_SUFFIXES
    into.mkdir(parents=True, exist_ok=True)
    for i, folder in enumerate(folders):
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                link = into / f"{i}-{p.name}"
                if not link.exists():
                    link.symlink_to(p.resolve())
    return into


def main() -> None:
    r = RECIPE_HQ
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--from", dest="source", default="pln-gpu-1")
    ap.add_argument("--lambda-range", nargs=2, type=float, default=r["lambda_range"])
    ap.add_argument("--lambda-power", type=float, default=r["lambda_power"])
    ap.add_argument("--top-share", type=float, default=r["top_share"])
    ap.add_argument("--batch", type=int, default=r["cpu_batch"])
    ap.add_argument("--crop", type=int, default=r["cpu_crop"])
    ap.add_argument("--lr", type=float, default=r["lr"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    import torch
    from nnc.model.pln import PLNConfig
    from nnc.train import train
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    init = None
    if not (a.resume and (a.out / "ckpt.pt").exists()):
        init = init_checkpoint(a.source, a.out / "init.pt")
    data = a.data[0] if len(a.data) == 1 else pooled(a.data, a.out / "data")
    cfg = PLNConfig(lambda_min=a.lambda_range[0], lambda_max=a.lambda_range[1])
    t0 = time.perf_counter()
    train(data, a.out, steps=10 ** 9, batch=a.batch, crop=a.crop, lr=a.lr, resume=a.resume,
          cfg=cfg, device=a.device, init=init, lambda_power=a.lambda_power,
          top_share=a.top_share, seed=a.seed, progress=False, time_limit_s=a.seconds,
          ckpt_every=10 ** 9, ckpt_every_s=60.0, log_every=100, log_every_s=60.0,
          report=lambda line: print(line, flush=True))
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
