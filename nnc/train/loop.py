"""The training loop: run set-up, progress, checkpoints and log rows, the time limit."""
from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path
from typing import Callable

from .recipe import RECIPE
from .data import batch_sampler, load_folder
from .objective import LIKELIHOODS, distortion, lambda_weights, lr_at
from .distributed import _Group, dist_env


def run_config(out: Path, resume: bool, init: Path | None, cfg=None):
    """Where a run starts: (checkpoint path or None, its state or None, the model config).
    A resumed run keeps its own config; a fine-tune (``init``) takes the checkpoint's
    architecture and ``cfg``'s lambda range; a new run takes ``cfg`` (RECIPE's by default)."""
    import torch
    from ..model.pln import PLNConfig
    cfg = cfg or RECIPE.config()
    ckpt_path = out / "ckpt.pt"
    source = ckpt_path if resume and ckpt_path.exists() else init
    if source is None:
        return None, None, cfg
    state = torch.load(source, map_location="cpu", weights_only=True)
    saved = PLNConfig(**state["config"])
    cfg = saved if source == ckpt_path else PLNConfig(**{
        **saved.to_dict(), "lambda_min": cfg.lambda_min, "lambda_max": cfg.lambda_max})
    return source, state, cfg


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _Progress:
    """A tqdm bar (a terminal), or a plain line every ``every_s`` seconds (a pipe or a log
    file: ``report``), or nothing."""

    def __init__(self, bar: bool, report: Callable[[str], None] | None, steps: int, step: int,
                 every_s: float, deadline: float | None):
        self.bar = None
        if bar:
            from tqdm import tqdm
            self.bar = tqdm(total=steps, initial=step, unit="step", dynamic_ncols=True)
        self.report, self.steps, self.every_s, self.deadline = report, steps, every_s, deadline
        self.t0 = time.monotonic()
        self.t_said = -math.inf

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def row(self, step: int, loss: float, bpp: float, psnr: float, ips: float,
            last: bool) -> None:
        if self.bar is not None:
            self.bar.set_postfix({"loss": f"{loss:.4g}", "bpp": f"{bpp:.3f}",
                                  "PSNR": f"{psnr:.2f}", "img/s": f"{ips:.1f}"}, refresh=False)
            self.bar.refresh()
        now = time.monotonic()
        if self.report is None or not (last or now - self.t_said >= self.every_s):
            return
        self.t_said = now
        left = ("" if self.deadline is None
                else f", stops in {_clock(max(0.0, self.deadline - now))} at the latest")
        self.report(f"step {step}/{self.steps}: loss {loss:.4g}, {bpp:.3f} bpp, PSNR "
                    f"{psnr:.2f} dB, {ips:.1f} images/s, {_clock(now - self.t0)} elapsed{left}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- the training loop ------------------------------------------------------------------

def train(data: Path, out: Path, steps: int = RECIPE.steps, batch: int = RECIPE.batch,
          crop: int = RECIPE.crop, lr: float = RECIPE.lr, warmup: int = RECIPE.warmup,
          resume: bool = False, cfg=None, device: str = "cpu", log_every: int = 50,
          ckpt_every: int = 500, seed: int = 0, progress: bool = True,
          time_limit_s: float | None = None, likelihood: str = RECIPE.likelihood,
          init: Path | None = None, lambda_power: float = RECIPE.lambda_power,
          top_share: float = RECIPE.top_share,
          compile: bool = False, ckpt_every_s: float | None = None,
          report: Callable[[str], None] | None = None, log_every_s: float = 10.0) -> Path:
    """Train (or resume) and write a checkpoint ``out/ckpt.pt`` plus ``out/log.csv``.

    ``cfg``: the model of a new run (default ``RECIPE.config()``). ``init``: start a new
    run from another run's checkpoint (weights and optimizer state; its step count carries
    over, so the KL warm-up is not repeated), with this run's ``cfg`` lambda range.

    ``time_limit_s`` counts from this call (data loading included): no step starts that
    would not end within it (their time is measured as they go), and the learning-rate
    schedule runs on time rather than steps. log.csv gets a row after the first step, every
    ``log_every`` steps or ``log_every_s`` seconds, whichever comes first, and the last
    one. ``progress``: a tqdm bar; ``report``: called with a progress line at most every
    10 s instead. ``compile``: ``torch.compile`` the training step (CUDA).

    Under torchrun (WORLD_SIZE > 1) every process draws the same ``batch`` images, qualities
    and noise and trains on its own ``batch / WORLD_SIZE`` of them (DistributedDataParallel
    averages the gradients), so the processes take the steps one process would take; rank 0
    alone writes the log, the checkpoints and the progress."""
    t_entry = time.monotonic()
    deadline = None if time_limit_s is None else t_entry + time_limit_s
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}")
    world = dist_env()[1]
    if batch % world:
        raise ValueError(f"a batch of {batch} does not split over {world} processes: use a "
                         f"multiple of {world}")
    group = _Group(device)
    try:
        ckpt = _train(group, data, out, steps, batch, crop, lr, warmup, resume, cfg, log_every,
                      ckpt_every, seed, progress, deadline, likelihood, init, lambda_power,
                      top_share,
                      compile, ckpt_every_s, report, log_every_s)
    except BaseException:
        group.close(clean=False)
        raise
    group.close()
    return ckpt


def _train(group, data, out, steps, batch, crop, lr, warmup, resume, cfg, log_every,
           ckpt_every, seed, progress, deadline, likelihood, init, lambda_power, top_share,
           compile,
           ckpt_every_s, report, log_every_s) -> Path:
    import torch
    from ..model.pln import PLN, quality_to_lambda, LN2
    rank, world, device = group.rank, group.world, group.device
    main = rank == 0
    ckpt_path = out / "ckpt.pt"
    if main:
        out.mkdir(parents=True, exist_ok=True)
    cuda = device.startswith("cuda")
    if cuda:   # TF32 matmuls/convolutions and channels-last: faster on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    images = load_folder(data, crop)
    # where to start: this run's checkpoint (resume), another run's (init), or scratch;
    # rank 0 reads it and hands it to the others (no shared file system needed)
    _, state, cfg = group.broadcast_object(
        run_config(out, resume, init, cfg) if main else None)
    model = PLN(cfg).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step, wall0 = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        if "opt" in state:   # exported checkpoints (training/device_export.py) have none
            opt.load_state_dict(state["opt"])
        step, wall0 = int(state["step"]), float(state["wall_s"])
    del state
    with torch.no_grad():    # the shapes of z1 and z2 for a crop (the noise drawn per step)
        (mu_x, _), (mu2, _) = model.encode(torch.zeros(1, 3, crop, crop, device=device),
                                           torch.zeros(1, device=device))
    shape1, shape2 = tuple(mu_x.shape[1:]), tuple(mu2.shape[1:])
    torch.manual_seed(seed + step)      # a resumed run does not replay its first draws
    sample = batch_sampler(images, crop, device, seed + step)
    net = model              # its forward takes the noise (e2, e1) that every rank shares
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(net, device_ids=[torch.device(device).index]
                                      if cuda else None)
    forward = torch.compile(net) if compile else net
    logf = log = None
    if main:
        log_new = not (out / "log.csv").exists()
        logf = open(out / "log.csv", "a", newline="")
        log = csv.writer(logf)
        if log_new:
            log.writerow(["step", "wall_s", "loss", "bpp", "psnr", "lambda_mean", "img_per_s",
                          "lr"])
            logf.flush()

    def save():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "wall_s": wall0 + time.monotonic() - t_start, "config": cfg.to_dict(),
                    "device": device, "processes": world, "likelihood": likelihood}, tmp)
        os.replace(tmp, ckpt_path)

    bar = _Progress(progress and main, report if main else None, steps, step, log_every_s,
                    deadline)
    share = batch // world
    mine = slice(rank * share, (rank + 1) * share)
    # running sums stay on the device: no host sync between log rows
    acc = torch.zeros(4, device=device)   # loss, bpp, mse, lambda
    n_acc, first = 0, step
    t_start = time.monotonic()
    t_row = t_saved = t_start
    step_s = None        # the time a step takes (moving average), to stop before the limit
    frac = step / steps
    model.train()
    try:
        while step < steps:
            t_step = time.monotonic()
            x = sample(batch)               # every rank draws the whole batch ...
            quality = torch.rand(batch, device=device)
            if top_share > 0:               # (no extra draw otherwise: old runs replay)
                top = torch.rand(batch, device=device) < top_share
                quality = torch.where(top, 0.5 + 0.5 * quality, quality)
            e2 = torch.randn((batch, *shape2), device=device)
            e1 = torch.randn((batch, *shape1), device=device)
            if world > 1:                   # ... and trains on its share
                x, quality, e2, e1 = x[mine], quality[mine], e2[mine], e1[mine]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            cur_lr = lr_at(frac, lr)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            x_hat, kl1, kl2 = forward(x, quality, e2, e1)
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
            bar.tick()
            # what next: decided on rank 0's clock, the same for every rank
            now = time.monotonic()
            dt = now - t_step
            step_s = dt if step_s is None else 0.5 * step_s + 0.5 * dt
            stop = step >= steps or (deadline is not None and now + 1.2 * step_s > deadline)
            log_now = (stop or step == first + 1 or step % log_every == 0
                       or now - t_row >= log_every_s)
            if deadline is not None:
                frac = max(step / steps, (now - t_start) / max(deadline - t_start, 1e-9))
            else:
                frac = step / steps
            if world > 1:
                stop, log_now, frac = group.broadcast([float(stop), float(log_now), frac])
            if log_now:
                loss_m, bpp_m, mse_m, lam_m = group.mean_(acc / n_acc).tolist()
                psnr = 10 * math.log10(1.0 / max(mse_m, 1e-12))
                ips = n_acc * batch / max(now - t_row, 1e-9)
                if main:
                    log.writerow([step, round(wall0 + now - t_start, 1), loss_m, bpp_m, psnr,
                                  lam_m, ips, cur_lr])
                    logf.flush()
                bar.row(step, loss_m, bpp_m, psnr, ips, bool(stop))
                acc.zero_()
                n_acc = 0
                t_row = now
            if main and (step % ckpt_every == 0 or stop or (
                    ckpt_every_s is not None and now - t_saved > ckpt_every_s)):
                save()
                t_saved = time.monotonic()
            if stop:
                break
    finally:
        bar.close()
        if logf is not None:
            logf.close()
    return ckpt_path


# --- export: the run as an installed model ----------------------------------------------
