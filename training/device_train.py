"""Train a PLN on the lent GPU machine (the device tool), for as long as a time budget allows.

Run in the background (setsid) so that it outlives one device call; each call then copies the
latest weights back with ``training/device_export.py``. Checkpoints go to OUT/ckpt.pt every
minute. The learning-rate schedule runs on time (cosine decay over the last 20%). The
defaults are ``nnc.train.RECIPE``, the recipe of the shipped pln-gpu-1 (and of ``nnc train``).

    python training/device_train.py DATA OUT --seconds 1500
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnc.model.pln import PLNConfig  # noqa: E402
from nnc.train import RECIPE, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--arch", default=RECIPE.arch, help="n,m,f,g")
    ap.add_argument("--lambda-range", nargs=2, type=float,
                    default=(RECIPE.lambda_min, RECIPE.lambda_max))
    ap.add_argument("--lambda-power", type=float, default=RECIPE.lambda_power)
    ap.add_argument("--batch", type=int, default=RECIPE.batch)
    ap.add_argument("--crop", type=int, default=RECIPE.crop)
    ap.add_argument("--lr", type=float, default=RECIPE.lr)
    ap.add_argument("--warmup", type=int, default=RECIPE.warmup)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    cfg = PLNConfig(lambda_min=a.lambda_range[0], lambda_max=a.lambda_range[1]).with_arch(a.arch)
    print(torch.__version__, a.device, cfg, flush=True)
    t0 = time.perf_counter()
    kw = dict(steps=10 ** 9, batch=a.batch, crop=a.crop, lr=a.lr, warmup=a.warmup, cfg=cfg,
              device=a.device, log_every=200, ckpt_every=10 ** 9, ckpt_every_s=60.0,
              progress=False, lambda_power=a.lambda_power, log_every_s=60.0,
              report=lambda line: print(line, flush=True))
    try:
        train(a.data, a.out, time_limit_s=a.seconds, compile=not a.no_compile, **kw)
    except Exception as e:   # a compiler failure must not cost the GPU lease: go on eagerly
        print(f"compiled training failed ({type(e).__name__}: {e}); eager from here", flush=True)
        left = a.seconds - (time.perf_counter() - t0)
        train(a.data, a.out, time_limit_s=left, resume=True, compile=False, **kw)
    (a.out / "done").write_text("ok\n")
    print("done", flush=True)


if __name__ == "__main__":
    main()
