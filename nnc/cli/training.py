"""The ``nnc train`` command (the training itself: nnc/train)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .exits import _run
from .commands import _device, main


from ..train import RECIPE  # torch-free: the defaults of `nnc train`


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--steps", type=click.IntRange(min=1), default=RECIPE.steps, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=RECIPE.batch, show_default=True,
              help="Images per step, over all processes (torchrun: a multiple of their "
                   "number).")
@click.option("--crop", type=click.IntRange(min=64), default=RECIPE.crop, show_default=True)
@click.option("--lr", type=float, default=RECIPE.lr, show_default=True)
@click.option("--warmup", type=click.IntRange(min=1), default=RECIPE.warmup, show_default=True,
              help="KL warm-up steps.")
@click.option("--resume", is_flag=True, help="Continue from OUT/ckpt.pt.")
@click.option("--time-limit", type=click.FloatRange(min=0), default=None,
              help="Seconds the whole command may take, --export included: training stops "
                   "early enough (with a checkpoint).")
@click.option("--likelihood", type=click.Choice(["gaussian", "laplace"]),
              default=RECIPE.likelihood, show_default=True,
              help="Distortion term: Gaussian (MSE) or Laplace (L1).")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fine-tune: start from this checkpoint (its steps count on).")
@click.option("--lambda-range", nargs=2, type=click.FloatRange(min=1e-6), default=None,
              help="Rate-distortion weights at quality 0 and 1 (default "
                   f"{RECIPE.lambda_min} {RECIPE.lambda_max}).")
@click.option("--lambda-power", type=float, default=RECIPE.lambda_power, show_default=True,
              help="Scale each image's loss by (lambda_ref/lambda)^P, so that all rates "
                   "train (0: plain sum).")
@click.option("--arch", default=None, metavar="N,M,F,G",
              help="Channels of a new model: main transforms, level-1 latents, level-2 "
                   f"transforms, level-2 latents (default {RECIPE.arch}).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the training step.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch.")
@click.option("--log-every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Steps between rows of OUT/log.csv (also a row every 10 s, the first "
                   "step's and the last).")
@click.option("--export", "export_name", default=None,
              help="When done, install the model into weights/ under this new name (use "
                   "it with --model NAME).")
@click.option("--make-default", is_flag=True,
              help="With --export: make the new model the default for compress.")
@click.option("--replace", is_flag=True,
              help="With --export: replace an installed model of that name (files made "
                   "with it will no longer decode).")
@_device
def train(data, out, steps, batch, crop, lr, warmup, resume, time_limit, likelihood, init,
          lambda_range, lambda_power, arch, compile_, threads, log_every, export_name,
          make_default, replace, device):
    """Train (or fine-tune) a PLN on a folder of images.

    The defaults are the recipe of the shipped model pln-gpu-1. Several GPUs or machines:
    start it with torchrun (docs/training.md, "Training on several GPUs or machines")."""
    def body():
        import time
        t_start = time.monotonic()
        from ..model.weights import check_new_model_name
        from ..train import dist_env
        rank, world, _ = dist_env()
        if (make_default or replace) and export_name is None:
            raise click.UsageError(f"--{'make-default' if make_default else 'replace'} needs "
                                   "--export NAME")
        if batch % world:
            raise click.UsageError(f"--batch {batch} does not split over {world} processes: "
                                   f"use a multiple of {world}")
        if export_name is not None:     # before hours of training, not after ("" too)
            check_new_model_name(export_name, replace=replace)
        import torch
        from .. import codec
        from ..model.pln import PLNConfig
        from ..train import export_run, plan_export, run_config, table_images
        from ..train import train as run_train
        if threads:
            torch.set_num_threads(threads)
        cfg = RECIPE.config()
        if arch:
            try:
                cfg = cfg.with_arch(arch)
            except ValueError:
                raise click.UsageError("--arch takes four positive integers, N,M,F,G") from None
        if lambda_range:
            lo, hi = lambda_range
            if not lo < hi:
                raise click.UsageError("--lambda-range: the first value must be below the second")
            cfg = PLNConfig(**{**cfg.to_dict(), "lambda_min": lo, "lambda_max": hi})
        dev = codec.pick_device(device)
        tty = sys.stderr.isatty()

        def say(message: str) -> None:
            if rank == 0:
                click.echo(f"nnc: {message}", err=True)

        images, export_s = [], 0.0
        if export_name is not None and rank == 0:
            images = table_images(Path(data))
            if time_limit is not None:   # the export's time is kept out of training's
                run_cfg = run_config(Path(out), resume, Path(init) if init else None, cfg)[2]
                images, export_s = plan_export(run_cfg, images, time_limit)
                say(f"--time-limit {time_limit:g} s includes the export, about "
                    f"{export_s:.0f} s (a shard table from {len(images)} images): training "
                    "stops early enough")
        limit = None
        if time_limit is not None:   # 1 s left for the end (startup: ~0.3 s before this)
            limit = time_limit - (time.monotonic() - t_start) - export_s - 1.0
            if limit <= 0:
                say("--time-limit leaves no time to train: one step only")
        if rank == 0 and world > 1:
            say(f"{world} processes, {batch // world} images each per step")
        ckpt = run_train(Path(data), Path(out), steps, batch=batch, crop=crop, lr=lr,
                         warmup=warmup, resume=resume, device=dev, cfg=cfg,
                         likelihood=likelihood, init=Path(init) if init else None,
                         progress=tty, report=None if tty else say, time_limit_s=limit,
                         lambda_power=lambda_power, compile=compile_, log_every=log_every)
        if rank != 0:
            return
        last = (Path(out) / "log.csv").read_text().splitlines()[-1].split(",")[0]
        say(f"checkpoint {ckpt} (step {last}; {time.monotonic() - t_start:.0f} s so far)")
        if export_name is not None:
            deadline = None if time_limit is None else t_start + time_limit - 0.5
            export_run(ckpt, export_name, images, {"training_data": str(data)}, make_default,
                       say, tty, deadline, replace)
            say(f"installed model {export_name!r}"
                + (" (now the default)" if make_default else
                   f"; use it with --model {export_name}"))
    _run(body)
