"""Training the PLN: the beta-weighted ELBO of thesis §3.3 with KL warm-up and rate conditioning.

loss = KL(q||p) / (ln 2 * pixels) * w(t)  +  D(x, x_hat; lambda(quality))

with quality ~ U[0, 1] drawn per image, lambda(quality) log-spaced between the config's
lambda_min and lambda_max, and w(t) = min(1, t / warmup) the warm-up of Sønderby et al.

``top_share`` of each batch draws its quality from U[0.5, 1] rather than U[0, 1]: the upper
half of the range then gets (1 + top_share) / 2 of the images instead of half.

Each image's loss is scaled by (lambda_ref / lambda)^p (``lambda_power``; lambda_ref the
geometric middle of the range). Scaling one image's loss leaves its own optimum where it was,
but without it the high-lambda images, whose loss is ~100x larger, set the shared weights
alone (measured: a long CPU run gave up the low rates for the top one).

The distortion is a negative log-likelihood with a fixed scale set by lambda:

- ``gaussian``: D = lambda * 255^2 * MSE  (a Gaussian of variance 1 / (2 lambda 255^2));
- ``laplace``:  D = 2 * 255 * sqrt(lambda) * mean|x - x_hat|, the Laplace of the *same
  variance* (b = sigma / sqrt 2), so that a lambda means about the same trade-off for both
  and a checkpoint can switch between them (the gradients match at ~30 dB, lambda = 0.01).

The defaults are ``RECIPE``, pln-gpu-1's. Under torchrun the same loop runs on several
processes (DistributedDataParallel) and takes the steps one process would (``train``).
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

# torch is imported inside the functions: the command line reads RECIPE for its defaults
# and must start without torch (tests/test_hostile.py)
if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff"}


@dataclass(frozen=True)
class Recipe:
    """How the shipped model ``pln-gpu-1`` was trained (weights/manifest.json): the defaults
    of ``nnc train``, of :func:`train` and of ``training/device_train.py``, set here only.
    pln-gpu-1 ran 120,136 steps of this recipe in a 1,478 s budget on one H100."""
    arch: str = "128,192,128,64"     # N,M,F,G: main transforms, level-1 latents, level 2
    lambda_min: float = 0.001        # rate-distortion weight at quality 0
    lambda_max: float = 0.15         # ... at quality 1
    lambda_power: float = 0.5        # the lambda-balanced loss (module docstring)
    top_share: float = 0.0           # of each batch, the images whose quality is drawn from
                                     # U[0.5, 1] instead of U[0, 1] (the top weighted up)
    batch: int = 32                  # images per optimizer step (over all processes)
    crop: int = 192
    lr: float = 2e-4
    warmup: int = 2000               # KL warm-up steps
    likelihood: str = "gaussian"
    steps: int = 120_000

    def config(self):
        """The PLNConfig of a new model."""
        from .model.pln import PLNConfig
        return PLNConfig(lambda_min=self.lambda_min,
                         lambda_max=self.lambda_max).with_arch(self.arch)


RECIPE = Recipe()


def load_folder(folder: Path, min_size: int) -> list:
    import numpy as np
    from PIL import Image
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


def random_batch(images, batch: int, crop: int, rng) -> "torch.Tensor":
    import numpy as np
    import torch
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

    def __init__(self, images: list, crop: int, device: str, seed: int):
        import numpy as np
        import torch
        self.data = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2)
        self.crop, self.device = crop, device
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.ar = torch.arange(crop, device=device)

    def __call__(self, batch: int) -> "torch.Tensor":
        import torch
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


def batch_sampler(images: list, crop: int, device: str, seed: int):
    """``batch -> float tensor in [0, 1]`` on ``device``."""
    import numpy as np
    if len({im.shape for im in images}) == 1:
        return TensorCrops(images, crop, device, seed)
    rng = np.random.default_rng(seed)
    return lambda batch: random_batch(images, batch, crop, rng).to(device)


def lambda_weights(lam: "torch.Tensor", cfg, power: float) -> "torch.Tensor":
    """(lambda_ref / lambda)^power, lambda_ref the geometric middle of the config's range."""
    ref = math.sqrt(cfg.lambda_min * cfg.lambda_max)
    return (ref / lam) ** power


def lr_at(frac: float, lr: float) -> float:
    """Constant, then a cosine decay over the last 20% of the run (``frac`` in [0, 1])."""
    if frac < 0.8:
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.8) / 0.2)))


LIKELIHOODS = ("gaussian", "laplace")


def distortion(x_hat: "torch.Tensor", x: "torch.Tensor", lam: "torch.Tensor",
               likelihood: str) -> "torch.Tensor":
    """Per-image distortion term of the loss (see the module docstring)."""
    if likelihood == "gaussian":
        return lam * 255.0 ** 2 * (x_hat - x).pow(2).flatten(1).mean(1)
    if likelihood == "laplace":
        return 2 * 255.0 * lam.sqrt() * (x_hat - x).abs().flatten(1).mean(1)
    raise ValueError(f"unknown likelihood {likelihood!r} (choose from {', '.join(LIKELIHOODS)})")


# --- one process or several (torchrun) ------------------------------------------------

def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process."""
    env = os.environ
    return (int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
            int(env.get("LOCAL_RANK", 0)))


class _Group:
    """This process's place among torchrun's: one process is rank 0 of 1 and needs nothing;
    several join a process group (NCCL on CUDA, each on cuda:LOCAL_RANK; gloo on the CPU)."""

    def __init__(self, device: str):
        import torch
        self.rank, self.world, local = dist_env()
        self.device, self.owned = device, False
        if self.world == 1:
            return
        import torch.distributed as dist
        if not dist.is_available():
            raise RuntimeError("this torch has no torch.distributed: run one process")
        if device.startswith("cuda"):
            self.device = f"cuda:{local}"
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
            self.owned = True

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (decisions taken on rank 0's clock)."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return t.tolist()

    def broadcast_object(self, obj):
        if self.world == 1:
            return obj
        import torch.distributed as dist
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def mean_(self, t):
        """``t`` averaged over the ranks, in place."""
        if self.world > 1:
            import torch.distributed as dist
            dist.all_reduce(t)
            t /= self.world
        return t

    def close(self, clean: bool = True) -> None:
        if self.owned:
            import torch.distributed as dist
            if clean:
                dist.barrier()          # rank 0's last checkpoint is on disk for everyone
            dist.destroy_process_group()


def run_config(out: Path, resume: bool, init: Path | None, cfg=None):
    """Where a run starts: (checkpoint path or None, its state or None, the model config).
    A resumed run keeps its own config; a fine-tune (``init``) takes the checkpoint's
    architecture and ``cfg``'s lambda range; a new run takes ``cfg`` (RECIPE's by default)."""
    import torch
    from .model.pln import PLNConfig
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


def elbo_pass(model, x, quality, e2, e1):
    """``PLN.forward`` with its two standard-normal draws passed in (``e2`` for z2, ``e1``
    for z1): the processes of a distributed run each draw the whole batch's noise and take
    their own images' share, the numbers one process would use. Returns x_hat and the KLs
    (nats, per image)."""
    return model(x, quality, e2, e1)


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
    from .model.pln import PLN, quality_to_lambda, LN2
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

TABLE_IMAGES = 60     # training images the level-1 shard table is estimated from, at most
TABLE_CROP = 256      # ... each cut to its central 256x256 (as the shipped tables' crops)
TABLE_RATES = 5       # qualities per image (coding/greedy.py shard_table_from_images)
EXPORT_SHARE = 0.1    # of a --time-limit, the most the table may take (8 images at least)


def table_images(data: Path, limit: int = TABLE_IMAGES) -> list:
    """Up to ``limit`` images spread over the folder, each cut to its central TABLE_CROP
    square: the table's cost is then bounded whatever the photos' size (full 12 MP photos
    cost minutes)."""
    from .errors import InputError
    from .image_io import RasterImage, read_image
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) > limit:
        files = [files[round(i * (len(files) - 1) / (limit - 1))] for i in range(limit)]
    out = []
    for p in files:
        try:
            img = read_image(p.read_bytes())
        except (InputError, OSError):
            continue
        h, w, _ = img.rgb.shape
        y, x = max(0, (h - TABLE_CROP) // 2), max(0, (w - TABLE_CROP) // 2)
        out.append(RasterImage(img.rgb[y:y + TABLE_CROP, x:x + TABLE_CROP].copy(), img.gray,
                               None))
    return out


def _spread(items: list, n: int) -> list:
    if n >= len(items):
        return items
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)]


def plan_export(cfg, images: list, time_limit_s: float | None) -> tuple[list, float]:
    """The table images to use and the seconds the export will take (timed on one image
    with a model of ``cfg``): at most EXPORT_SHARE of ``time_limit_s`` (8 images at least)."""
    if not images:
        return images, 1.0
    from .coding.greedy import level1_shards
    from .model.pln import PLN
    model = PLN(cfg).eval()
    probe = images[0]
    level1_shards(model, probe, 0.5)        # warm-up
    took = []
    for _ in range(2):
        t = time.perf_counter()
        level1_shards(model, probe, 0.5)
        took.append(time.perf_counter() - t)
    per_pixel = min(took) * TABLE_RATES / probe.rgb[..., 0].size
    if time_limit_s is not None:
        mean = per_pixel * sum(img.rgb[..., 0].size for img in images) / len(images)
        images = _spread(images, max(8, int(EXPORT_SHARE * time_limit_s / mean)))
    # + loading and saving the weights, hashing, the manifest: well under a second; the two
    # ONNX graphs for the torch-free decoder (model/onnx_export.py): about 3 s on 2 cores
    # for the shipped model's 5.8 M parameters, less for smaller ones
    onnx_s = 0.3 + 3.0 * sum(p.numel() for p in model.parameters()) / 5.8e6
    return images, 1.2 * per_pixel * sum(img.rgb[..., 0].size for img in images) + 1.0 + onnx_s


def export_run(ckpt: Path, name: str, images: list, info: dict, make_default: bool,
               say: Callable[[str], None], bar: bool, deadline: float | None = None,
               replace: bool = False) -> dict:
    """Install ``ckpt`` as model ``name`` (nnc.model.weights.install), saying what it does:
    a tqdm bar over the table images, or a line every 10 s."""
    from .model.weights import install
    t0 = time.monotonic()
    say(f"exporting: the level-1 shard table from {len(images)} training images x "
        f"{TABLE_RATES} rates, then the weights")
    pbar = None
    if bar:
        from tqdm import tqdm
        pbar = tqdm(total=len(images), unit="image", desc="shard table", dynamic_ncols=True)
    said = [t0]

    def progress(done: int, total: int) -> None:
        if pbar is not None:
            pbar.update(done - pbar.n)
        elif time.monotonic() - said[0] >= 10:
            said[0] = time.monotonic()
            say(f"exporting: {done}/{total} images")

    try:
        entry = install(ckpt, name, images, info, make_default=make_default,
                        progress=progress, deadline=deadline, replace=replace)
    finally:
        if pbar is not None:
            pbar.close()
    say(f"exported in {time.monotonic() - t0:.1f} s ({entry['shard_table_from']})")
    return entry
