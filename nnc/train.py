"""Training the PLN: the beta-weighted ELBO of thesis §3.3 with KL warm-up and rate conditioning.

loss = KL(q||p) / (ln 2 * pixels) * w(t)  +  D(x, x_hat; lambda(quality))

with quality ~ U[0, 1] drawn per image, lambda(quality) log-spaced between the config's
lambda_min and lambda_max, and w(t) = min(1, t / warmup) the warm-up of Sønderby et al.

Each image's loss is scaled by (lambda_ref / lambda)^p (``lambda_power``; lambda_ref the
geometric middle of the range). Scaling one image's loss leaves its own optimum where it was,
but without it the high-lambda images, whose loss is ~100x larger, set the shared weights
alone (measured: a long CPU run gave up the low rates for the top one).

The distortion is a negative log-likelihood with a fixed scale set by lambda:

- ``gaussian``: D = lambda * 255^2 * MSE  (a Gaussian of variance 1 / (2 lambda 255^2));
- ``laplace``:  D = 2 * 255 * sqrt(lambda) * mean|x - x_hat|, the Laplace of the *same
  variance* (b = sigma / sqrt 2), so that a lambda means about the same trade-off for both
  and a checkpoint can switch between them (the gradients match at ~30 dB, lambda = 0.01).
"""
from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .model.pln import PLN, PLNConfig, quality_to_lambda, LN2

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff"}


def load_folder(folder: Path, min_size: int) -> list[np.ndarray]:
    images = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB"))
        if min(arr.shape[:2]) >= min_size:
            images.append(arr)
    if not images:
        raise ValueError(f"no images of at least {min_size}x{min_size} pixels in {folder}")
    return images


def random_batch(images, batch: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.empty((batch, crop, crop, 3), dtype=np.uint8)
    for i in range(batch):
        im = images[rng.integers(len(images))]
        y = rng.integers(im.shape[0] - crop + 1)
        x = rng.integers(im.shape[1] - crop + 1)
        c = im[y:y + crop, x:x + crop]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        if rng.random() < 0.5:
            c = c[::-1]
        out[i] = c
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


class TensorCrops:
    """Random crops with the 8 flips/transposes, drawn from images stacked in one uint8
    tensor on ``device`` (all images the same size), so that a GPU never waits on the host."""

    def __init__(self, images: list[np.ndarray], crop: int, device: str, seed: int):
        self.data = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2)
        self.crop, self.device = crop, device
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.ar = torch.arange(crop, device=device)

    def __call__(self, batch: int) -> torch.Tensor:
        n, _, h, w = self.data.shape
        c, g, dev = self.crop, self.gen, self.device
        idx = torch.randint(n, (batch,), generator=g, device=dev)
        oy = torch.randint(h - c + 1, (batch, 1), generator=g, device=dev)
        ox = torch.randint(w - c + 1, (batch, 1), generator=g, device=dev)
        flip = torch.rand(batch, 3, generator=g, device=dev) < 0.5
        rows = oy + torch.where(flip[:, :1], c - 1 - self.ar, self.ar)
        cols = ox + torch.where(flip[:, 1:2], c - 1 - self.ar, self.ar)
        x = self.data[idx[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]
        x = torch.where(flip[:, 2, None, None, None], x.transpose(2, 3), x)
        return x.float().div_(255.0)


def batch_sampler(images: list[np.ndarray], crop: int, device: str, seed: int):
    """``batch -> float tensor in [0, 1]`` on ``device``."""
    if len({im.shape for im in images}) == 1:
        return TensorCrops(images, crop, device, seed)
    rng = np.random.default_rng(seed)
    return lambda batch: random_batch(images, batch, crop, rng).to(device)


def lambda_weights(lam: torch.Tensor, cfg: PLNConfig, power: float) -> torch.Tensor:
    """(lambda_ref / lambda)^power, lambda_ref the geometric middle of the config's range."""
    ref = math.sqrt(cfg.lambda_min * cfg.lambda_max)
    return (ref / lam) ** power


def lr_at(frac: float, lr: float) -> float:
    """Constant, then a cosine decay over the last 20% of the run (``frac`` in [0, 1])."""
    if frac < 0.8:
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.8) / 0.2)))


LIKELIHOODS = ("gaussian", "laplace")


def distortion(x_hat: torch.Tensor, x: torch.Tensor, lam: torch.Tensor,
               likelihood: str) -> torch.Tensor:
    """Per-image distortion term of the loss (see the module docstring)."""
    if likelihood == "gaussian":
        return lam * 255.0 ** 2 * (x_hat - x).pow(2).flatten(1).mean(1)
    if likelihood == "laplace":
        return 2 * 255.0 * lam.sqrt() * (x_hat - x).abs().flatten(1).mean(1)
    raise ValueError(f"unknown likelihood {likelihood!r} (choose from {', '.join(LIKELIHOODS)})")


def train(data: Path, out: Path, steps: int, batch: int = 8, crop: int = 128,
          lr: float = 1e-4, warmup: int = 2000, resume: bool = False,
          cfg: PLNConfig = PLNConfig(), device: str = "cpu", log_every: int = 50,
          ckpt_every: int = 500, seed: int = 0, progress: bool = True,
          time_limit_s: float | None = None, likelihood: str = "gaussian",
          init: Path | None = None, lambda_power: float = 0.5,
          compile: bool = False, ckpt_every_s: float | None = None) -> Path:
    """Train (or resume) and write a checkpoint ``out/ckpt.pt`` plus ``out/log.csv``.

    ``init``: start a new run from another run's checkpoint (weights and optimizer state;
    its step count carries over, so the KL warm-up is not repeated), with this run's
    ``cfg`` lambda range. With ``time_limit_s`` the learning-rate schedule runs on time
    rather than steps. ``compile``: ``torch.compile`` the training step (CUDA)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "ckpt.pt"
    cuda = device.startswith("cuda")
    if cuda:   # TF32 matmuls/convolutions and channels-last: faster on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    images = load_folder(data, crop)
    # where to start: this run's checkpoint (resume), another run's (init), or scratch
    source = ckpt_path if resume and ckpt_path.exists() else init
    state = torch.load(source, map_location=device, weights_only=True) if source else None
    if state is not None:
        saved = PLNConfig(**state["config"])
        # a resumed run keeps its own config; a fine-tune takes this run's lambda range
        cfg = saved if source == ckpt_path else PLNConfig(**{
            **saved.to_dict(), "lambda_min": cfg.lambda_min, "lambda_max": cfg.lambda_max})
    model = PLN(cfg).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step, wall = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        if "opt" in state:   # exported checkpoints (training/device_export.py) have none
            opt.load_state_dict(state["opt"])
        step, wall = int(state["step"]), float(state["wall_s"])
    sample = batch_sampler(images, crop, device, seed + step)
    forward = torch.compile(model) if compile else model
    log_new = not (out / "log.csv").exists()
    logf = open(out / "log.csv", "a", newline="")
    log = csv.writer(logf)
    if log_new:
        log.writerow(["step", "wall_s", "loss", "bpp", "psnr", "lambda_mean", "img_per_s", "lr"])

    def save():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "wall_s": wall, "config": cfg.to_dict(), "device": device,
                    "likelihood": likelihood}, tmp)
        os.replace(tmp, ckpt_path)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=step, unit="step")
    # running sums stay on the device: no host sync between log lines
    acc = torch.zeros(4, device=device)   # loss, bpp, mse, lambda
    n_acc = 0
    t_last = time.perf_counter()
    t_start = t_last
    t_saved = t_last
    model.train()
    while step < steps:
        x = sample(batch)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        quality = torch.rand(batch, device=device)
        frac = (step / steps if time_limit_s is None
                else max(step / steps, (time.perf_counter() - t_start) / time_limit_s))
        cur_lr = lr_at(frac, lr)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        x_hat, kl1, kl2 = forward(x, quality)
        pixels = x.shape[2] * x.shape[3]
        bpp = (kl1 + kl2) / (LN2 * pixels)
        lam = quality_to_lambda(quality, cfg)
        w = min(1.0, (step + 1) / warmup)
        per_image = w * bpp + distortion(x_hat, x, lam, likelihood)
        loss = (per_image * lambda_weights(lam, cfg, lambda_power)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        with torch.no_grad():
            mse = (x_hat - x).pow(2).mean()
            acc += torch.stack([per_image.mean(), bpp.mean(), mse, lam.mean()])
        n_acc += 1
        if bar is not None:
            bar.update(1)
        if step % log_every == 0 or step == steps:
            now = time.perf_counter()
            wall += now - t_last
            loss_m, bpp_m, mse_m, lam_m = (acc / n_acc).tolist()
            psnr = 10 * math.log10(1.0 / max(mse_m, 1e-12))
            log.writerow([step, round(wall, 1), loss_m, bpp_m, psnr, lam_m,
                          n_acc * batch / (now - t_last), cur_lr])
            logf.flush()
            if bar is not None:
                bar.set_postfix(bpp=f"{bpp_m:.3f}", psnr=f"{psnr:.2f}")
            acc.zero_()
            n_acc = 0
            t_last = now
        timed_out = time_limit_s is not None and time.perf_counter() - t_start > time_limit_s
        if (step % ckpt_every == 0 or step == steps or timed_out
                or (ckpt_every_s is not None and time.perf_counter() - t_saved > ckpt_every_s)):
            save()
            t_saved = time.perf_counter()
        if timed_out:
            break
    if bar is not None:
        bar.close()
    logf.close()
    return ckpt_path
